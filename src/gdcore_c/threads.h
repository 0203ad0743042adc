/* Library-wide thread count for gdcore's parallel regions.
 *
 * omp_set_num_threads() only affects the calling OS thread, so gdcore keeps its own count and
 * passes it to every region through a num_threads() clause. A count of 0 means "not set": the
 * regions then follow omp_get_max_threads() of the calling thread, which is what
 * OMP_NUM_THREADS and threadpoolctl control.
 */
#ifndef GDCORE_THREADS_H
#define GDCORE_THREADS_H

/* Threads a parallel region of the calling thread should use (>= 1). */
int gd_num_threads(void);

/* Largest count a region uses: 4 threads per processor (1 without OpenMP). */
int gd_max_threads(void);

/* Set the library-wide count; n <= 0 returns to following the OpenMP runtime. */
void gd_set_num_threads(int n);

/* The count last set with gd_set_num_threads (0 when none is set). */
int gd_user_num_threads(void);

/* 1 when the module was compiled with OpenMP, else 0. */
int gd_have_openmp(void);

#endif
