// Q6_K × Q8_K batch products that round exactly as llama.cpp's CPU backend.
//
// For a matrix product over 8 or more tokens llama.cpp takes its tiled K-quant path
// (ggml-cpu/tiled/tiled.cpp, ggml_compute_forward_mul_mat_tiled; GGML_CPU_TILED_MM unset) for
// Q6_K weights; fewer tokens go through ggml_vec_dot_q6_K_q8_K like decode (ck_vec_dot). The
// tiled AVX2 microkernel (tiled_run_microtile_avx2<16, false, 32, 1, true>) sums each super-block
// of a (row, token) into one exact integer s = Σ_g scale_g·Σ (q-32)·q8 and accumulates
//     acc = fma(d·float(s), d8, acc)      (d·float(s) rounded on its own)
// super-block by super-block from acc = 0. The integer part is the same as the decode kernel's
// (dots_avx2.c), only reduced per super-block.
#include "internal.h"
#include <immintrin.h>
#include <math.h>

// Σ_g scale_g·Σ (q-32)·q8 over super-block x·y, exact.
static int q6k_block_int(const blk_q6_K *x, const blk_q8_K *y) {
    int s = 0;
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = x->ql + 64 * h, *qh = x->qh + 32 * h;
        const int8_t *q8 = y->qs + 128 * h, *sc = x->scales + 8 * h;
        for (int l = 0; l < 32; l++) {
            const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
            const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            const int g = l / 16;
            s += sc[g] * q1 * q8[l] + sc[g + 2] * q2 * q8[l + 32] + sc[g + 4] * q3 * q8[l + 64] + sc[g + 6] * q4 * q8[l + 96];
        }
    }
    return s;
}

float ck_q6_K_tiled_scalar(int64_t n, const void *vx, const void *vy) {
    const blk_q6_K *x = vx;
    const blk_q8_K *y = vy;
    float acc = 0;
    for (int64_t i = 0; i < n / QKK; i++) acc = fmaf(h2f(x[i].d) * (float)q6k_block_int(&x[i], &y[i]), y[i].d, acc);
    return acc;
}

static inline CK_AVX2 __m128i hsum4_i32(__m256i p0, __m256i p1, __m256i p2, __m256i p3) {
    __m256i t0 = _mm256_add_epi32(_mm256_unpacklo_epi32(p0, p1), _mm256_unpackhi_epi32(p0, p1));
    __m256i t1 = _mm256_add_epi32(_mm256_unpacklo_epi32(p2, p3), _mm256_unpackhi_epi32(p2, p3));
    __m256i t = _mm256_add_epi32(_mm256_unpacklo_epi64(t0, t1), _mm256_unpackhi_epi64(t0, t1));
    return _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
}

static inline CK_AVX2 int hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

// The 6-bit codes (0..63) of one half (128 elements) of a block as 4 × 32 bytes, ggml's order.
static inline CK_AVX2 void q6_codes(const blk_q6_K *b, int h, __m256i q[4]) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(0x03);
    const uint8_t *ql = b->ql + 64 * h;
    const __m256i qhv = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * h));
    const __m256i qa = _mm256_loadu_si256((const __m256i *)ql), qb = _mm256_loadu_si256((const __m256i *)(ql + 32));
    q[0] = _mm256_or_si256(_mm256_and_si256(qa, m4), _mm256_slli_epi16(_mm256_and_si256(qhv, m3), 4));
    q[1] = _mm256_or_si256(_mm256_and_si256(qb, m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qhv, 2), m3), 4));
    q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qa, 4), m4),
                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qhv, 4), m3), 4));
    q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qb, 4), m4),
                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qhv, 6), m3), 4));
}

#define ACT(t) ((const blk_q8_K *)(a + (size_t)(t) * astride))

// One row × 4 tokens, to out[t * os].
static CK_AVX2 void tiled_1x4(int64_t n, const blk_q6_K *x, const uint8_t *a, size_t astride, float *out, int64_t os) {
    __m128 acc = _mm_setzero_ps();  // lanes = tokens
    for (int64_t i = 0; i < n / QKK; i++) {
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[i].scales));
        __m256i sumi[4];
        for (int t = 0; t < 4; t++) sumi[t] = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            __m256i q[4];
            q6_codes(&x[i], h, q);
            const int8_t *s = x[i].scales + 8 * h;
            for (int k = 0; k < 4; k++) {
                const __m256i scv = _mm256_set_m128i(_mm_set1_epi16(s[2 * k + 1]), _mm_set1_epi16(s[2 * k]));
                for (int t = 0; t < 4; t++) {
                    const int8_t *q8 = ACT(t)[i].qs + 128 * h + 32 * k;
                    __m256i p = _mm256_maddubs_epi16(q[k], _mm256_loadu_si256((const __m256i *)q8));
                    sumi[t] = _mm256_add_epi32(sumi[t], _mm256_madd_epi16(p, scv));
                }
            }
        }
        // the -32 offset of every code: 32·Σ_g scale_g·bsum_g
        for (int t = 0; t < 4; t++) {
            __m256i off = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)ACT(t)[i].bsums), sc16);
            sumi[t] = _mm256_sub_epi32(sumi[t], _mm256_slli_epi32(off, 5));
        }
        const __m128 s = _mm_cvtepi32_ps(hsum4_i32(sumi[0], sumi[1], sumi[2], sumi[3]));
        const __m128 yd = _mm_setr_ps(ACT(0)[i].d, ACT(1)[i].d, ACT(2)[i].d, ACT(3)[i].d);
        acc = _mm_fmadd_ps(_mm_mul_ps(_mm_set1_ps(_cvtsh_ss(x[i].d)), s), yd, acc);
    }
    float r[4];
    _mm_storeu_ps(r, acc);
    for (int t = 0; t < 4; t++) out[t * os] = r[t];
}

static CK_AVX2 float tiled_1x1(int64_t n, const blk_q6_K *x, const blk_q8_K *y) {
    float acc = 0;
    for (int64_t i = 0; i < n / QKK; i++) {
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[i].scales));
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            __m256i q[4];
            q6_codes(&x[i], h, q);
            const int8_t *s = x[i].scales + 8 * h;
            for (int k = 0; k < 4; k++) {
                const __m256i scv = _mm256_set_m128i(_mm_set1_epi16(s[2 * k + 1]), _mm_set1_epi16(s[2 * k]));
                __m256i p = _mm256_maddubs_epi16(q[k], _mm256_loadu_si256((const __m256i *)(y[i].qs + 128 * h + 32 * k)));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scv));
            }
        }
        __m256i off = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y[i].bsums), sc16);
        sumi = _mm256_sub_epi32(sumi, _mm256_slli_epi32(off, 5));
        acc = fmaf(_cvtsh_ss(x[i].d) * (float)hsum_i32(sumi), y[i].d, acc);
    }
    return acc;
}

void ck_q6_K_tile_tiled(int64_t n, const void *vw, size_t wstride, int64_t nrows, const void *va, size_t astride,
                        int64_t ntok, float *out, int64_t os) {
    const uint8_t *w = vw, *a = va;
    if (ck_use_avx2 < 0) ck_init_cpu();
    for (int64_t r = 0; r < nrows; r++) {
        const blk_q6_K *x = (const blk_q6_K *)(w + (size_t)r * wstride);
        int64_t t = 0;
        if (ck_use_avx2) {
            for (; t + 4 <= ntok; t += 4) tiled_1x4(n, x, a + (size_t)t * astride, astride, out + t * os + r, os);
            for (; t < ntok; t++) out[t * os + r] = tiled_1x1(n, x, ACT(t));
        }
        for (; t < ntok; t++) out[t * os + r] = ck_q6_K_tiled_scalar(n, x, ACT(t));
    }
}
