// Block layouts (ggml-common.h) and helpers shared by the CKernels sources.
#ifndef CKERNELS_INTERNAL_H
#define CKERNELS_INTERNAL_H
#include "include/ckernels.h"
#include <string.h>
#include <math.h>
#include <immintrin.h>

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
/// bfloat16 is the top half of a float32: widening is exact.
static inline float bf2f(uint16_t b) { uint32_t u = (uint32_t)b << 16; float f; memcpy(&f, &u, 4); return f; }

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

// ---- e^x as ggml's vector approximation (ggml_v_expf) computes it ---------------------------
// Its rounding, not just its accuracy: llama.cpp's SiLU and its tiled attention's softmax go
// through it, and greedy parity needs the same last bits.
// Cody-Waite reduction x = n·ln2 + b with n = round(x·log2 e) (found with the 1.5·2^23 rounding
// constant), a degree-5 polynomial p(b) ≈ exp(b) - 1, and 2^n built in the exponent bits; |n| >
// 126 and > 192 take the over/underflow-safe scalings. The scalar form does lane by lane what
// the AVX2 form does, operation for operation.

static inline uint32_t ck_f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float ck_u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static inline float ck_exp_approx_scalar(float x) {
    const float r = 0x1.8p23f;
    const float z = fmaf(x, 0x1.715476p+0f, r);
    const float n = z - r;
    const float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
    const uint32_t e = ck_f2u(z) << 23;
    const float k = ck_u2f(e + ck_f2u(1.0f));
    const int c = fabsf(n) > 126.0f;   // ordered compare: false for NaN
    const float u = b * b;
    const float j = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
                         u, 0x1.ffffecp-1f * b);
    if (!c) return fmaf(k, j, k);
    const uint32_t g = n <= 0.0f ? 0x82000000u : 0u;
    const float s1 = ck_u2f(g + 0x7f000000u);
    const float s2 = ck_u2f(e - g);
    if (fabsf(n) > 192.0f) return s1 * s1;
    return fmaf(s2, j, s2) * s1;
}

static inline CK_AVX2 __m256 ck_exp_approx_avx2(__m256 x) {
    const __m256 r = _mm256_set1_ps(0x1.8p23f);
    const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), r);
    const __m256 n = _mm256_sub_ps(z, r);
    const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f),
                                      _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
    const __m256i e = _mm256_slli_epi32(_mm256_castps_si256(z), 23);
    const __m256 k = _mm256_castsi256_ps(_mm256_add_epi32(e, _mm256_castps_si256(_mm256_set1_ps(1.0f))));
    const __m256 absn = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), n);
    const __m256 c = _mm256_cmp_ps(absn, _mm256_set1_ps(126.0f), _CMP_GT_OQ);
    const __m256 u = _mm256_mul_ps(b, b);
    const __m256 j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f)), u,
                        _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f))),
        u, _mm256_mul_ps(_mm256_set1_ps(0x1.ffffecp-1f), b));
    const __m256 normal = _mm256_fmadd_ps(k, j, k);
    if (!_mm256_movemask_ps(c)) return normal;
    const __m256i g = _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_LE_OQ)),
                                       _mm256_set1_epi32((int)0x82000000u));
    const __m256 s1 = _mm256_castsi256_ps(_mm256_add_epi32(g, _mm256_set1_epi32(0x7f000000)));
    const __m256 s2 = _mm256_castsi256_ps(_mm256_sub_epi32(e, g));
    const __m256 d = _mm256_cmp_ps(absn, _mm256_set1_ps(192.0f), _CMP_GT_OQ);
    const __m256 scaled = _mm256_mul_ps(_mm256_fmadd_ps(s2, j, s2), s1);
    return _mm256_blendv_ps(_mm256_blendv_ps(normal, scaled, c), _mm256_mul_ps(s1, s1), d);
}
#endif
