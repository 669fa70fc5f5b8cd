// Block layouts (ggml-common.h) and helpers shared by the CKernels sources.
#ifndef CKERNELS_INTERNAL_H
#define CKERNELS_INTERNAL_H
#include "include/ckernels.h"
#include <string.h>

#define CK_AVX2 __attribute__((target("avx2,fma,f16c")))
#define QK 32
#define QKK 256

typedef struct { uint16_t d; uint8_t qs[16]; } blk_q4_0;
typedef struct { uint16_t d, m; uint8_t qs[16]; } blk_q4_1;
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; } blk_q5_0;
typedef struct { uint16_t d, m; uint8_t qh[4]; uint8_t qs[16]; } blk_q5_1;
typedef struct { uint16_t d; int8_t qs[32]; } blk_q8_0;
typedef struct { uint16_t d, s; int8_t qs[32]; } blk_q8_1;
typedef struct { uint8_t scales[16]; uint8_t qs[64]; uint16_t d, dmin; } blk_q2_K;
typedef struct { uint8_t hmask[32]; uint8_t qs[64]; uint8_t scales[12]; uint16_t d; } blk_q3_K;
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; } blk_q4_K;
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; } blk_q5_K;
typedef struct { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; } blk_q6_K;
typedef struct { float d; int8_t qs[256]; int16_t bsums[16]; } blk_q8_K;

_Static_assert(sizeof(blk_q4_0) == 18, "q4_0");
_Static_assert(sizeof(blk_q4_1) == 20, "q4_1");
_Static_assert(sizeof(blk_q5_0) == 22, "q5_0");
_Static_assert(sizeof(blk_q5_1) == 24, "q5_1");
_Static_assert(sizeof(blk_q8_0) == 34, "q8_0");
_Static_assert(sizeof(blk_q8_1) == 36, "q8_1");
_Static_assert(sizeof(blk_q2_K) == 84, "q2_K");
_Static_assert(sizeof(blk_q3_K) == 110, "q3_K");
_Static_assert(sizeof(blk_q4_K) == 144, "q4_K");
_Static_assert(sizeof(blk_q5_K) == 176, "q5_K");
_Static_assert(sizeof(blk_q6_K) == 210, "q6_K");
_Static_assert(sizeof(blk_q8_K) == 292, "q8_K");

extern int ck_use_avx2;  // set once from cpuid, cleared by ck_set_simd_enabled(0)
void ck_init_cpu(void);

static inline float h2f(uint16_t h) { return ck_f16_to_f32(h); }

/// 6-bit scale and min j (0..7) of a q4_K / q5_K block (ggml's get_scale_min_k4 layout).
static inline void ck_scale_min_k4(int j, const uint8_t *q, uint8_t *sc, uint8_t *mn) {
    if (j < 4) {
        *sc = q[j] & 63;
        *mn = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *mn = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

// Q4_K × Q8_K in llama.cpp's AVX2 repack arithmetic (q4k_avx2.c): "gemv" is how it sums one
// token, "gemm" how it sums each token of a 4-token group. Tiles: tokens in whole groups of 4
// from the first get the gemm arithmetic, the last ntok % 4 the gemv arithmetic.
float ck_q4_K_gemv_scalar(int64_t n, const void *x, const void *y);
float ck_q4_K_gemm_scalar(int64_t n, const void *x, const void *y);
float ck_q4_K_gemv_avx2(int64_t n, const void *x, const void *y);
void ck_q4_K_rows_avx2(int64_t n, const void *w, size_t wstride, int64_t nrows, const void *y, float *out);
void ck_q4_K_tile_avx2(int64_t n, const void *w, size_t wstride, int64_t nrows, const void *a, size_t astride,
                       int64_t ntok, float *out, int64_t os);
void ck_q4_K_tile_scalar(int64_t n, const void *w, size_t wstride, int64_t nrows, const void *a, size_t astride,
                         int64_t ntok, float *out, int64_t os);

// Q6_K batches of 8+ tokens in llama.cpp's tiled-path arithmetic (q6k_avx2.c): per (row,
// token) acc = fma(d·float(block integer), d8, acc) block by block.
float ck_q6_K_tiled_scalar(int64_t n, const void *x, const void *y);
void ck_q6_K_tile_tiled(int64_t n, const void *w, size_t wstride, int64_t nrows, const void *a, size_t astride,
                        int64_t ntok, float *out, int64_t os);
#endif
