// Matrix-vector and matrix-matrix products over quantized weights, split over the pool.
// Prefill speed comes from reuse: activations are quantized once, and each tile of weight rows
// is dotted with every token while it sits in L1, so weights stream from DRAM once per matmul.
#include "internal.h"
#include <stdlib.h>

typedef struct {
    int type;
    const uint8_t *w;
    size_t w_row;       // bytes per weight row
    int64_t rows, cols;
    const uint8_t *a;   // quantized activations
    size_t a_row;
    const float *x;
    int64_t ntok;
    float *y;
} mm_job;

static void quantize_task(void *vctx, int64_t b, int64_t e, int thread) {
    (void)thread;
    mm_job *j = vctx;
    for (int64_t t = b; t < e; t++)
        ck_quantize_activation(j->type, j->x + t * j->cols, (uint8_t *)j->a + t * j->a_row, j->cols);
}

// Weight rows per tile when several tokens share it: small enough to stay in L1 with room
// for a few activation rows.
static int64_t tile_rows(size_t w_row) {
    int64_t r = (int64_t)(16384 / (w_row ? w_row : 1));
    if (r < 1) r = 1;
    if (r > 64) r = 64;
    return r < 4 ? r : r / 4 * 4;  // whole groups for the 4-row kernels
}

static void matmul_task(void *vctx, int64_t b, int64_t e, int thread) {
    (void)thread;
    mm_job *j = vctx;
    if (j->ntok == 1) {
        ck_vec_dot_rows(j->type, j->cols, j->w + b * j->w_row, j->w_row, e - b, j->a, j->y + b);
        return;
    }
    const int64_t tr = tile_rows(j->w_row);
    const int64_t tt = 16;  // tokens per tile (a multiple of 4: Q4_K batches sum in 4-token groups)
    // llama.cpp multiplies Q6_K over 8+ tokens on its tiled path, which rounds differently from
    // its vec_dot (ck_vec_dot_tile's arithmetic, and decode's)
    const int q6_tiled = j->type == CK_Q6_K && j->ntok >= 8;
    for (int64_t r0 = b; r0 < e; r0 += tr) {
        int64_t r1 = r0 + tr < e ? r0 + tr : e;
        for (int64_t t0 = 0; t0 < j->ntok; t0 += tt) {
            int64_t t1 = t0 + tt < j->ntok ? t0 + tt : j->ntok;
            if (q6_tiled)
                ck_q6_K_tile_tiled(j->cols, j->w + r0 * j->w_row, j->w_row, r1 - r0, j->a + t0 * j->a_row,
                                   j->a_row, t1 - t0, j->y + t0 * j->rows + r0, j->rows);
            else
                ck_vec_dot_tile(j->type, j->cols, j->w + r0 * j->w_row, j->w_row, r1 - r0, j->a + t0 * j->a_row,
                                j->a_row, t1 - t0, j->y + t0 * j->rows + r0, j->rows);
        }
    }
}

size_t ck_matmul_scratch_bytes(int type, int64_t cols, int64_t ntok) {
    int at = ck_vec_dot_type(type);
    if (at < 0 || ntok < 0) return 0;
    size_t r = ck_row_bytes(at, cols);
    if (r == 0) return 0;
    return r * (size_t)ntok;
}

int ck_matmul(ck_pool *pool, int type, const void *w, int64_t rows, int64_t cols, const float *x,
              int64_t ntok, float *y, void *scratch) {
    int at = ck_vec_dot_type(type);
    if (at < 0 || rows < 0 || ntok < 0 || cols <= 0) return -1;
    size_t w_row = ck_row_bytes(type, cols), a_row = ck_row_bytes(at, cols);
    if (w_row == 0 || a_row == 0) return -1;
    if (rows == 0 || ntok == 0) return 0;
    mm_job j = { type, w, w_row, rows, cols, scratch, a_row, x, ntok, y };
    const int nt = ck_pool_threads(pool);
    if (ntok == 1) {
        ck_quantize_activation(type, x, scratch, cols);
    } else {
        int64_t qc = ntok / (4 * nt);
        ck_pool_parallel_for(pool, ntok, qc < 1 ? 1 : qc, quantize_task, &j);
    }
    // Chunks: about 8 per thread so a descheduled or slower thread doesn't hold everyone,
    // rounded to the tile size for batches.
    int64_t chunk = (rows + 8 * nt - 1) / (8 * nt);
    if (ntok > 1) {
        int64_t tr = tile_rows(w_row);
        chunk = (chunk + tr - 1) / tr * tr;
    }
    chunk = (chunk + 3) / 4 * 4;  // whole groups for the 4-row kernels
    if (chunk < 4) chunk = 4;
    ck_pool_parallel_for(pool, rows, chunk, matmul_task, &j);
    return 0;
}

// ---- several matrices over the same input ------------------------------------------------------
// q/k/v (and gate/up) read the same normed activations: quantize them once and run every
// matrix's rows in one parallel loop, so a layer pays one hand-out and one wait instead of three.

#define MANY_MAX_CHUNKS 512
typedef struct {
    mm_job jobs[CK_MATMUL_MANY_MAX];
    struct { int16_t job; int64_t b, e; } chunks[MANY_MAX_CHUNKS];
} many_job;

static void many_task(void *vctx, int64_t b, int64_t e, int thread) {
    many_job *m = vctx;
    for (int64_t c = b; c < e; c++)
        matmul_task(&m->jobs[m->chunks[c].job], m->chunks[c].b, m->chunks[c].e, thread);
}

int ck_matmul_many(ck_pool *pool, int count, const int *types, const void *const *ws, const int64_t *rows,
                   int64_t cols, const float *x, int64_t ntok, float *const *ys, void *scratch) {
    if (count < 1 || count > CK_MATMUL_MANY_MAX || cols <= 0 || ntok < 0) return -1;
    const int at = ck_vec_dot_type(types[0]);
    int same = at >= 0;
    for (int i = 1; i < count; i++) same = same && ck_vec_dot_type(types[i]) == at;
    if (!same) {  // activation types differ: one product at a time
        for (int i = 0; i < count; i++)
            if (ck_matmul(pool, types[i], ws[i], rows[i], cols, x, ntok, ys[i], scratch) != 0) return -1;
        return 0;
    }
    if (ntok == 0) return 0;
    many_job m;
    const size_t a_row = ck_row_bytes(at, cols);
    int64_t total = 0;
    for (int i = 0; i < count; i++) {
        size_t w_row = ck_row_bytes(types[i], cols);
        if (w_row == 0 || a_row == 0 || rows[i] < 0) return -1;
        m.jobs[i] = (mm_job){ types[i], ws[i], w_row, rows[i], cols, scratch, a_row, x, ntok, ys[i] };
        total += rows[i];
    }
    const int nt = ck_pool_threads(pool);
    if (ntok == 1) {
        ck_quantize_activation(types[0], x, scratch, cols);
    } else {
        int64_t qc = ntok / (4 * nt);
        ck_pool_parallel_for(pool, ntok, qc < 1 ? 1 : qc, quantize_task, &m.jobs[0]);
    }
    // Chunks of about total / (8 · threads) rows, never straddling two matrices.
    int64_t chunk = (total + 8 * nt - 1) / (8 * nt);
    int nchunks = 0;
    for (int i = 0; i < count; i++) {
        int64_t c = chunk;
        if (ntok > 1) { int64_t tr = tile_rows(m.jobs[i].w_row); c = (c + tr - 1) / tr * tr; }
        c = (c + 3) / 4 * 4;
        if (c < 4) c = 4;
        while (rows[i] / c + count + nchunks >= MANY_MAX_CHUNKS) c *= 2;
        for (int64_t b = 0; b < rows[i]; b += c) {
            m.chunks[nchunks].job = (int16_t)i;
            m.chunks[nchunks].b = b;
            m.chunks[nchunks].e = b + c < rows[i] ? b + c : rows[i];
            nchunks++;
        }
    }
    ck_pool_parallel_for(pool, nchunks, 1, many_task, &m);
    return 0;
}
