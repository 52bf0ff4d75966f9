/* kiln_blas_share.h: NumPy's OpenBLAS runs its threads on Kiln's OpenMP team.
 *
 * OpenBLAS (>= 0.3.27) lets its caller own the threads: with a callback registered through
 * openblas_set_threads_callback_function, every threaded BLAS call hands its jobs to the
 * callback instead of waking OpenBLAS's own pthread pool. kiln.backends.c.threads registers
 * kiln_blas_threads with the OpenBLAS that NumPy bundles, so a process that uses NumPy and
 * Kiln has one pool (libgomp's, whose idle workers Kiln keeps from spinning) instead of two
 * that busy-wait on each other's cores (issue 13; benchmarks/threads.py measures it).
 *
 * The jobs of one call wait for each other (OpenBLAS's threaded level-3 driver hands packed
 * panels between them), so they must all run at once: a team smaller than numjobs (nested
 * inside a parallel region, OMP_THREAD_LIMIT, OMP_DYNAMIC) gets the missing jobs on plain
 * threads started for this call. job i gets thread number i: OpenBLAS indexes per-thread
 * buffers by it.
 *
 * Included once, in the translation unit holding kiln_run, when built with OpenMP.
 */
#ifndef KILN_BLAS_SHARE_H
#define KILN_BLAS_SHARE_H

#include <omp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>

typedef void (*kiln_blas_dojob)(int thread_num, void *jobdata, int dojob_data);

struct kiln__blas_job {
    kiln_blas_dojob dojob;
    void *jobdata;
    int thread_num, dojob_data;
};

static void *kiln__blas_job_main(void *arg)
{
    struct kiln__blas_job *j = (struct kiln__blas_job *)arg;
    j->dojob(j->thread_num, j->jobdata, j->dojob_data);
    return NULL;
}

/* Runs jobs [first, numjobs) on threads of their own, job `own` here, then joins them.
 * Should the system refuse a thread (or the memory to track it), that job runs here before
 * the others: it may then wait on jobs not started yet, but nothing better is left. */
static void kiln__blas_jobs_on_threads(kiln_blas_dojob dojob, int first, int numjobs,
                                       size_t elsize, char *jobdata, int dojob_data, int own)
{
    const int extra = numjobs - first;
    pthread_t *tid = (pthread_t *)calloc((size_t)extra, sizeof *tid);
    struct kiln__blas_job *job = (struct kiln__blas_job *)calloc((size_t)extra, sizeof *job);
    char *started = (char *)calloc((size_t)extra, 1);
    for (int i = 0; i < extra; ++i) {
        const int t = first + i;
        struct kiln__blas_job one = {dojob, jobdata + (size_t)t * elsize, t, dojob_data};
        if (tid && job && started) {
            job[i] = one;
            started[i] = pthread_create(&tid[i], NULL, kiln__blas_job_main, &job[i]) == 0;
            if (started[i]) continue;
        }
        kiln__blas_job_main(&one);
    }
    if (own >= 0) dojob(own, jobdata + (size_t)own * elsize, dojob_data);
    for (int i = 0; tid && job && started && i < extra; ++i)
        if (started[i]) pthread_join(tid[i], NULL);
    free(tid);
    free(job);
    free(started);
}

void kiln_blas_threads(int sync, kiln_blas_dojob dojob, int numjobs, size_t elsize,
                       void *jobdata, int dojob_data)
{
    (void)sync; /* every call returns when its jobs are done, which is what sync asks */
    char *data = (char *)jobdata;
    if (numjobs <= 1) {
        if (numjobs == 1) dojob(0, data, dojob_data);
        return;
    }
    if (omp_in_parallel()) { /* nested: the team would be one thread */
        kiln__blas_jobs_on_threads(dojob, 1, numjobs, elsize, data, dojob_data, 0);
        return;
    }
#pragma omp parallel num_threads(numjobs)
    {
        const int t = omp_get_thread_num(), team = omp_get_num_threads();
        if (t == 0 && team < numjobs)
            kiln__blas_jobs_on_threads(dojob, team, numjobs, elsize, data, dojob_data, 0);
        else
            dojob(t, data + (size_t)t * elsize, dojob_data);
    }
}

#endif /* KILN_BLAS_SHARE_H */
