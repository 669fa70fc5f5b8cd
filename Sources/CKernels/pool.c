// A persistent thread pool for the many short parallel loops of decoding (a 135M model runs
// ~200 matrix-vector products per token, each tens of microseconds). Workers spin on a job
// counter for a while after each job so the next one starts within a microsecond or so, then
// sleep on a condition variable so an idle engine costs no CPU.
#define _GNU_SOURCE
#include "internal.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <immintrin.h>

struct ck_pool {
    int n_threads;
    pthread_t *threads;
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    _Atomic uint64_t generation;   // bumped once per job
    _Atomic int sleepers;
    _Atomic int done;              // workers finished with the current job
    _Atomic int stop;
    _Atomic int64_t next;          // next unclaimed index of the current job
    _Atomic int64_t spin_ns;
    // current job (written before generation is bumped)
    ck_task_fn fn;
    void *ctx;
    int64_t n, chunk;
};

typedef struct { ck_pool *pool; int index; } worker_arg;

static inline int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void run_chunks(ck_pool *p, int thread) {
    const int64_t n = p->n, chunk = p->chunk;
    for (;;) {
        int64_t b = atomic_fetch_add_explicit(&p->next, chunk, memory_order_relaxed);
        if (b >= n) break;
        int64_t e = b + chunk < n ? b + chunk : n;
        p->fn(p->ctx, b, e, thread);
    }
}

static void *worker_main(void *varg) {
    worker_arg *arg = varg;
    ck_pool *p = arg->pool;
    const int index = arg->index;
    free(arg);
    uint64_t seen = 0;
    for (;;) {
        uint64_t g = atomic_load_explicit(&p->generation, memory_order_acquire);
        if (g == seen) {
            int64_t start = now_ns(), limit = atomic_load_explicit(&p->spin_ns, memory_order_relaxed);
            int spins = 0;
            while ((g = atomic_load_explicit(&p->generation, memory_order_acquire)) == seen) {
                _mm_pause();
                if ((++spins & 255) == 0 && now_ns() - start > limit) {
                    pthread_mutex_lock(&p->mutex);
                    atomic_fetch_add(&p->sleepers, 1);
                    while ((g = atomic_load(&p->generation)) == seen && !atomic_load(&p->stop))
                        pthread_cond_wait(&p->cond, &p->mutex);
                    atomic_fetch_sub(&p->sleepers, 1);
                    pthread_mutex_unlock(&p->mutex);
                    break;
                }
            }
        }
        seen = g;
        if (atomic_load_explicit(&p->stop, memory_order_acquire)) break;
        run_chunks(p, index);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
    }
    return NULL;
}

ck_pool *ck_pool_create(int n_threads) {
    if (n_threads < 1) n_threads = 1;
    ck_pool *p = calloc(1, sizeof(ck_pool));
    if (!p) return NULL;
    p->n_threads = n_threads;
    atomic_store(&p->spin_ns, (int64_t)2000000);
    pthread_mutex_init(&p->mutex, NULL);
    pthread_cond_init(&p->cond, NULL);
    p->threads = calloc((size_t)n_threads, sizeof(pthread_t));
    if (!p->threads) { free(p); return NULL; }
    for (int i = 1; i < n_threads; i++) {
        worker_arg *arg = malloc(sizeof(worker_arg));
        if (!arg) { p->n_threads = i; break; }
        arg->pool = p;
        arg->index = i;
        if (pthread_create(&p->threads[i], NULL, worker_main, arg) != 0) {
            free(arg);
            p->n_threads = i;
            break;
        }
    }
    return p;
}

void ck_pool_destroy(ck_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mutex);
    atomic_store(&p->stop, 1);
    atomic_fetch_add(&p->generation, 1);
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->mutex);
    for (int i = 1; i < p->n_threads; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mutex);
    pthread_cond_destroy(&p->cond);
    free(p->threads);
    free(p);
}

int ck_pool_threads(const ck_pool *p) { return p ? p->n_threads : 1; }

void ck_pool_set_spin_us(ck_pool *p, int64_t us) {
    if (p) atomic_store(&p->spin_ns, us * 1000);
}

void ck_pool_parallel_for(ck_pool *p, int64_t n, int64_t chunk, ck_task_fn fn, void *ctx) {
    if (n <= 0) return;
    if (chunk < 1) chunk = 1;
    if (!p || p->n_threads == 1 || n <= chunk) {
        fn(ctx, 0, n, 0);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->chunk = chunk;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    atomic_fetch_add(&p->generation, 1);  // seq_cst: pairs with the sleepers check below
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mutex);
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->mutex);
    }
    run_chunks(p, 0);
    const int workers = p->n_threads - 1;
    int spins = 0;
    while (atomic_load_explicit(&p->done, memory_order_acquire) < workers) {
        _mm_pause();
        if (++spins > 100000) sched_yield();  // a worker was descheduled: don't burn its core
    }
}
