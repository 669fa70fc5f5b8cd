// A persistent thread pool for the many short parallel loops of decoding (a 135M model runs
// ~200 matrix-vector products per token, each tens of microseconds). Workers spin on a job
// counter for a while after each job so the next one starts within a microsecond or so, then
// sleep on a condition variable so an idle engine costs no CPU.
#define _GNU_SOURCE
#include "internal.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <immintrin.h>

// Job hand-out: `state` packs generation (20 bits), chunk count (22) and next chunk index (22).
// Threads claim chunks by compare-and-swap, which fails for a thread still holding an older
// generation, so a worker that was descheduled mid-job can't run chunks of the next one; job
// fields are read only after a successful claim (the job can't be replaced before that chunk
// is done). The caller waits only for claimed chunks to finish (`pending`), never for slow
// workers to show up.
#define GEN_SHIFT 44
#define CNT_SHIFT 22
#define IDX_MASK ((1ull << 22) - 1)
#define MAX_CHUNKS ((int64_t)IDX_MASK)
struct ck_pool {
    int n_threads;
    pthread_t *threads;
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    _Atomic uint64_t state;
    _Atomic int64_t pending;       // chunks of the current job not yet finished
    _Atomic int sleepers;
    _Atomic int stop;
    _Atomic int64_t spin_ns;
    // current job (written before `state` publishes its generation)
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

static void run_chunks(ck_pool *p, uint32_t gen, int thread) {
    uint64_t s = atomic_load_explicit(&p->state, memory_order_acquire);
    for (;;) {
        const uint64_t idx = s & IDX_MASK, cnt = (s >> CNT_SHIFT) & IDX_MASK;
        if ((uint32_t)(s >> GEN_SHIFT) != gen || idx >= cnt) return;
        if (!atomic_compare_exchange_weak_explicit(&p->state, &s, s + 1, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue;
        const int64_t n = p->n, chunk = p->chunk;
        const int64_t b = (int64_t)idx * chunk;
        const int64_t e = b + chunk < n ? b + chunk : n;
        p->fn(p->ctx, b, e, thread);
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel);
        s = atomic_load_explicit(&p->state, memory_order_acquire);
    }
}

static void *worker_main(void *varg) {
    worker_arg *arg = varg;
    ck_pool *p = arg->pool;
    const int index = arg->index;
    free(arg);
    uint32_t seen = 0;
    for (;;) {
        uint32_t g = (uint32_t)(atomic_load_explicit(&p->state, memory_order_acquire) >> GEN_SHIFT);
        if (g == seen) {
            int64_t start = now_ns(), limit = atomic_load_explicit(&p->spin_ns, memory_order_relaxed);
            unsigned spins = 0;
            while ((g = (uint32_t)(atomic_load_explicit(&p->state, memory_order_acquire) >> GEN_SHIFT)) == seen &&
                   !atomic_load_explicit(&p->stop, memory_order_relaxed)) {
                // Pause briefly, then yield between checks: on an idle machine sched_yield
                // returns at once, but when threads outnumber cores it hands the core to the
                // thread that has work (often the caller) instead of burning its time slice.
                if (++spins < 2000) _mm_pause(); else sched_yield();
                if ((spins & 255) == 0 && now_ns() - start > limit) {
                    pthread_mutex_lock(&p->mutex);
                    atomic_fetch_add(&p->sleepers, 1);
                    while ((g = (uint32_t)(atomic_load(&p->state) >> GEN_SHIFT)) == seen && !atomic_load(&p->stop))
                        pthread_cond_wait(&p->cond, &p->mutex);
                    atomic_fetch_sub(&p->sleepers, 1);
                    pthread_mutex_unlock(&p->mutex);
                    break;
                }
            }
        }
        seen = g;
        if (atomic_load_explicit(&p->stop, memory_order_acquire)) break;
        run_chunks(p, g, index);
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
    int64_t n_chunks = (n + chunk - 1) / chunk;
    if (n_chunks > MAX_CHUNKS) {  // keep the count within its 22 bits of `state`
        chunk = (n + MAX_CHUNKS - 1) / MAX_CHUNKS;
        n_chunks = (n + chunk - 1) / chunk;
    }
    if (!p || p->n_threads == 1 || n_chunks == 1) {
        fn(ctx, 0, n, 0);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->chunk = chunk;
    atomic_store_explicit(&p->pending, n_chunks, memory_order_relaxed);
    const uint32_t gen = ((uint32_t)(atomic_load_explicit(&p->state, memory_order_relaxed) >> GEN_SHIFT) + 1) & 0xfffff;
    atomic_store(&p->state, ((uint64_t)gen << GEN_SHIFT) | ((uint64_t)n_chunks << CNT_SHIFT));  // seq_cst: publishes the job; pairs with sleepers
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mutex);
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->mutex);
    }
    run_chunks(p, gen, 0);
    int spins = 0;
    while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0) {
        if (spins < 2000) { spins++; _mm_pause(); } else sched_yield();  // a descheduled worker holds a chunk: give way
    }
}
