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
    const int64_t tt = 16;  // tokens per tile
    for (int64_t r0 = b; r0 < e; r0 += tr) {
        int64_t r1 = r0 + tr < e ? r0 + tr : e;
        for (int64_t t0 = 0; t0 < j->ntok; t0 += tt) {
            int64_t t1 = t0 + tt < j->ntok ? t0 + tt : j->ntok;
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
