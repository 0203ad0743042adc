/* Library-wide thread count; see threads.h. */
#include "threads.h"

#ifdef _OPENMP
#include <omp.h>
#endif

static int gd_user_threads = 0;

int gd_num_threads(void)
{
    int n = gd_user_threads;
#ifdef _OPENMP
    if (n <= 0) {
        n = omp_get_max_threads();
    }
#else
    n = 1;
#endif
    return n > 0 ? n : 1;
}

void gd_set_num_threads(int n) { gd_user_threads = n > 0 ? n : 0; }

int gd_user_num_threads(void) { return gd_user_threads; }

int gd_have_openmp(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}
