/* Library-wide thread count; see threads.h. */
#include "threads.h"

#ifdef _OPENMP
#include <omp.h>
#endif

static int gd_user_threads = 0;

int gd_max_threads(void)
{
#ifdef _OPENMP
    int procs = omp_get_num_procs();
    return procs > 0 ? 4 * procs : 4;
#else
    return 1;
#endif
}

int gd_num_threads(void)
{
    int n = gd_user_threads;
#ifdef _OPENMP
    if (n <= 0) {
        n = omp_get_max_threads();
    }
    /* A count set through the OpenMP runtime (threadpoolctl, omp_set_num_threads) is
     * capped too: the runtime aborts when it cannot create the threads asked for. */
    if (n > gd_max_threads()) {
        n = gd_max_threads();
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
