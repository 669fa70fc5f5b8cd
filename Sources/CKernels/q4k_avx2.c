// Q4_K × Q8_K products that round exactly as llama.cpp's CPU backend on AVX2.
//
// On AVX2 llama.cpp repacks every Q4_K matrix whose row count is a multiple of 8 into 8-row
// interleaved blocks (ggml-cpu/repack.cpp, block_q4_Kx8) and multiplies with
// ggml_gemv_q4_K_8x8_q8_K (one token) and ggml_gemm_q4_K_8x8_q8_K (groups of 4 tokens; a batch's
// last ntok % 4 tokens go through the gemv). The interleaving is only a layout: the integer
// sums are exact either way, so what fixes the float result of a (row, token) is where the
// integer sums meet the scales:
//   gemv, per 256-element super-block:   acc  = fma(float(Σ_j sc_j·Σ q4·q8), d·d8, acc)
//                                        accm = fma(float(Σ_j m_j·bsum_j),    dmin·d8, accm)
//   gemm, per 64 elements (sub-blocks 2k, 2k+1) with the same two chains,
// and the result is acc - accm. The activations of a 4-token group are quantized by
// ggml_quantize_mat_q8_K_4x8, whose scale is negative whenever some element equals +max|x|
// (quantize_row_q8_K_ref takes the sign of the first element reaching max|x|); the two differ
// only by negating a block's d, codes and bsums, which cancels exactly in every product below,
// so one quantization serves both paths. We keep ggml's row-major blocks (no repack) and sum 4 rows
// at a time: each row's 8-lane integer vector is reduced exactly, then one vector FMA serves
// four rows.
#include "internal.h"
#include <immintrin.h>
#include <math.h>

// ---- scalar twins (also the reference for the SIMD kernels) -------------------------------

// Per 64-element half-pair k (sub-blocks 2k and 2k+1) of super-block x·y: the scaled code sum
// and the min sum, exact integers.
static void q4k_block_ints(const blk_q4_K *x, const blk_q8_K *y, int isum[4], int imin[4]) {
    for (int k = 0; k < 4; k++) {
        isum[k] = 0;
        imin[k] = 0;
        for (int h = 0; h < 2; h++) {
            const int j = 2 * k + h;
            uint8_t sc, mn;
            ck_scale_min_k4(j, x->scales, &sc, &mn);
            int s = 0;
            for (int l = 0; l < 32; l++) {
                const int q = h ? x->qs[32 * k + l] >> 4 : x->qs[32 * k + l] & 0xF;
                s += q * y->qs[32 * j + l];
            }
            isum[k] += sc * s;
            imin[k] += mn * (y->bsums[2 * j] + y->bsums[2 * j + 1]);
        }
    }
}

float ck_q4_K_gemv_scalar(int64_t n, const void *vx, const void *vy) {
    const blk_q4_K *x = vx;
    const blk_q8_K *y = vy;
    float acc = 0, accm = 0;
    for (int64_t i = 0; i < n / QKK; i++) {
        int isum[4], imin[4];
        q4k_block_ints(&x[i], &y[i], isum, imin);
        acc = fmaf((float)(isum[0] + isum[1] + isum[2] + isum[3]), h2f(x[i].d) * y[i].d, acc);
        accm = fmaf((float)(imin[0] + imin[1] + imin[2] + imin[3]), h2f(x[i].dmin) * y[i].d, accm);
    }
    return acc - accm;
}

float ck_q4_K_gemm_scalar(int64_t n, const void *vx, const void *vy) {
    const blk_q4_K *x = vx;
    const blk_q8_K *y = vy;
    float acc = 0, accm = 0;
    for (int64_t i = 0; i < n / QKK; i++) {
        int isum[4], imin[4];
        q4k_block_ints(&x[i], &y[i], isum, imin);
        const float s = h2f(x[i].d) * y[i].d, sm = h2f(x[i].dmin) * y[i].d;
        for (int k = 0; k < 4; k++) {
            acc = fmaf((float)isum[k], s, acc);
            accm = fmaf((float)imin[k], sm, accm);
        }
    }
    return acc - accm;
}

// ---- AVX2 ------------------------------------------------------------------------------

static inline CK_AVX2 int hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

// Lanes of four vectors summed per vector: result lane r = Σ lanes of p_r (exact integers).
static inline CK_AVX2 __m128i hsum4_i32(__m256i p0, __m256i p1, __m256i p2, __m256i p3) {
    __m256i t0 = _mm256_add_epi32(_mm256_unpacklo_epi32(p0, p1), _mm256_unpackhi_epi32(p0, p1));
    __m256i t1 = _mm256_add_epi32(_mm256_unpacklo_epi32(p2, p3), _mm256_unpackhi_epi32(p2, p3));
    __m256i t = _mm256_add_epi32(_mm256_unpacklo_epi64(t0, t1), _mm256_unpackhi_epi64(t0, t1));
    return _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
}

// Scales (bytes 0..7) and mins (bytes 8..15) of a block as 16 int16: low half scales 0..7,
// high half mins 0..7 (the unpacking ggml's x86 q4_K kernels use).
static inline CK_AVX2 __m256i scales_mins(const uint8_t *s12) {
    uint32_t u[4];
    memcpy(u, s12, 12);
    u[3] = ((u[2] >> 4) & 0x0f0f0f0f) | (((u[1] >> 6) & 0x03030303) << 4);
    const uint32_t aux = u[1] & 0x3f3f3f3f;
    u[1] = (u[2] & 0x0f0f0f0f) | (((u[0] >> 6) & 0x03030303) << 4);
    u[2] = aux;
    u[0] &= 0x3f3f3f3f;
    return _mm256_cvtepu8_epi16(_mm_set_epi32((int)u[3], (int)u[2], (int)u[1], (int)u[0]));
}

// Scale j of the 8 (as int16 in both 128-bit halves of sc) broadcast to all 16 int16 lanes.
static inline CK_AVX2 __m256i scale_bcast(__m256i sc, int j) {
    return _mm256_shuffle_epi8(sc, _mm256_set1_epi16((short)(((2 * j + 1) << 8) | (2 * j))));
}

// Σ over 64 elements (sub-blocks 2k, 2k+1) of sc·q4·q8 for 32-byte code chunk k, as 8 int32.
static inline CK_AVX2 __m256i chunk_sum(__m256i raw, const int8_t *q8, __m256i s_lo, __m256i s_hi) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256i lo = _mm256_and_si256(raw, m4), hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
    __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)q8)), s_lo);
    __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(q8 + 32))), s_hi);
    return _mm256_add_epi32(p0, p1);
}

// The 8 activation sums over 32 elements (bsums in pairs) as int16.
static inline CK_AVX2 __m128i bsums32(const blk_q8_K *y) {
    return _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)y->bsums), _mm_loadu_si128((const __m128i *)(y->bsums + 8)));
}

// d and dmin of block i of 4 rows as two vectors of 4 floats.
static inline CK_AVX2 void heads4(const uint8_t *w, size_t wstride, int64_t i, __m128 *d, __m128 *dmin) {
    const uint8_t *p = w + (size_t)i * sizeof(blk_q4_K);
    int h0, h1, h2, h3;
    memcpy(&h0, p, 4); memcpy(&h1, p + wstride, 4); memcpy(&h2, p + 2 * wstride, 4); memcpy(&h3, p + 3 * wstride, 4);
    __m256 v = _mm256_cvtph_ps(_mm_setr_epi32(h0, h1, h2, h3));  // d0 m0 d1 m1 d2 m2 d3 m3
    v = _mm256_permutevar8x32_ps(v, _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
    *d = _mm256_castps256_ps128(v);
    *dmin = _mm256_extractf128_ps(v, 1);
}

#define ROW(r) ((const blk_q4_K *)(w + (size_t)(r) * wstride))

// gemv arithmetic, 4 rows (wstride bytes apart) × one token, to out[0..3].
static CK_AVX2 void gemv_rows4(int64_t n, const uint8_t *w, size_t wstride, const blk_q8_K *y, float *out) {
    __m128 acc = _mm_setzero_ps(), accm = _mm_setzero_ps();
    for (int64_t i = 0; i < n / QKK; i++) {
        // the next 4-row group follows in memory: fetch it while this one is summed
        const char *pf = (const char *)w + 4 * wstride + (size_t)i * sizeof(blk_q4_K);
        for (int r = 0; r < 4; r++) _mm_prefetch(pf + (size_t)r * wstride, _MM_HINT_T0);
        const __m128i bs = bsums32(&y[i]);
        __m256i sumi[4];
        __m128i mins[4];
        for (int r = 0; r < 4; r++) {
            const blk_q4_K *b = &ROW(r)[i];
            const __m256i sm = scales_mins(b->scales);
            const __m256i sc = _mm256_permute2x128_si256(sm, sm, 0x00);
            mins[r] = _mm_madd_epi16(_mm256_extracti128_si256(sm, 1), bs);
            __m256i s = _mm256_setzero_si256();
            for (int k = 0; k < 4; k++)
                s = _mm256_add_epi32(s, chunk_sum(_mm256_loadu_si256((const __m256i *)(b->qs + 32 * k)), y[i].qs + 64 * k,
                                                  scale_bcast(sc, 2 * k), scale_bcast(sc, 2 * k + 1)));
            sumi[r] = s;
        }
        const __m128i isum = hsum4_i32(sumi[0], sumi[1], sumi[2], sumi[3]);
        const __m128i imin = _mm_hadd_epi32(_mm_hadd_epi32(mins[0], mins[1]), _mm_hadd_epi32(mins[2], mins[3]));
        __m128 d, dmin;
        heads4(w, wstride, i, &d, &dmin);
        const __m128 yd = _mm_set1_ps(y[i].d);
        acc = _mm_fmadd_ps(_mm_cvtepi32_ps(isum), _mm_mul_ps(d, yd), acc);
        accm = _mm_fmadd_ps(_mm_cvtepi32_ps(imin), _mm_mul_ps(dmin, yd), accm);
    }
    _mm_storeu_ps(out, _mm_sub_ps(acc, accm));
}

// gemv arithmetic, one row × one token.
CK_AVX2 float ck_q4_K_gemv_avx2(int64_t n, const void *vx, const void *vy) {
    const blk_q4_K *x = vx;
    const blk_q8_K *y = vy;
    float acc = 0, accm = 0;
    for (int64_t i = 0; i < n / QKK; i++) {
        const __m256i sm = scales_mins(x[i].scales);
        const __m256i sc = _mm256_permute2x128_si256(sm, sm, 0x00);
        __m128i m = _mm_madd_epi16(_mm256_extracti128_si256(sm, 1), bsums32(&y[i]));
        m = _mm_add_epi32(m, _mm_shuffle_epi32(m, 0x4e));
        m = _mm_add_epi32(m, _mm_shuffle_epi32(m, 0xb1));
        __m256i s = _mm256_setzero_si256();
        for (int k = 0; k < 4; k++)
            s = _mm256_add_epi32(s, chunk_sum(_mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * k)), y[i].qs + 64 * k,
                                              scale_bcast(sc, 2 * k), scale_bcast(sc, 2 * k + 1)));
        acc = fmaf((float)hsum_i32(s), _cvtsh_ss(x[i].d) * y[i].d, acc);
        accm = fmaf((float)_mm_cvtsi128_si32(m), _cvtsh_ss(x[i].dmin) * y[i].d, accm);
    }
    return acc - accm;
}

// 4×4 transpose of int32: out[k] lane r = in[r] lane k.
static inline CK_AVX2 void transpose4_i32(const __m128i in[4], __m128i out[4]) {
    __m128i t0 = _mm_unpacklo_epi32(in[0], in[1]), t1 = _mm_unpacklo_epi32(in[2], in[3]);
    __m128i t2 = _mm_unpackhi_epi32(in[0], in[1]), t3 = _mm_unpackhi_epi32(in[2], in[3]);
    out[0] = _mm_unpacklo_epi64(t0, t1);
    out[1] = _mm_unpackhi_epi64(t0, t1);
    out[2] = _mm_unpacklo_epi64(t2, t3);
    out[3] = _mm_unpackhi_epi64(t2, t3);
}

#define ACT(t) ((const blk_q8_K *)(a + (size_t)(t) * astride))

// gemm arithmetic, 4 rows × 4 tokens, to out[t * os + r].
static CK_AVX2 void gemm_4x4(int64_t n, const uint8_t *w, size_t wstride, const uint8_t *a, size_t astride,
                             float *out, int64_t os) {
    __m128 acc[4], accm[4];
    for (int t = 0; t < 4; t++) { acc[t] = _mm_setzero_ps(); accm[t] = _mm_setzero_ps(); }
    for (int64_t i = 0; i < n / QKK; i++) {
        __m256i sc[4];
        __m128i mn[4];
        for (int r = 0; r < 4; r++) {
            const __m256i sm = scales_mins(ROW(r)[i].scales);
            sc[r] = _mm256_permute2x128_si256(sm, sm, 0x00);
            mn[r] = _mm256_extracti128_si256(sm, 1);
        }
        __m128 d, dmin;
        heads4(w, wstride, i, &d, &dmin);
        // per token: the min sums of every 64-element step, lanes = rows
        __m128i imin[4][4];
        __m128 s[4], sm[4];
        for (int t = 0; t < 4; t++) {
            const blk_q8_K *y = &ACT(t)[i];
            const __m128i bs = bsums32(y);
            __m128i m[4];
            for (int r = 0; r < 4; r++) m[r] = _mm_madd_epi16(mn[r], bs);
            transpose4_i32(m, imin[t]);
            const __m128 yd = _mm_set1_ps(y->d);
            s[t] = _mm_mul_ps(d, yd);
            sm[t] = _mm_mul_ps(dmin, yd);
        }
        const __m256i m4 = _mm256_set1_epi8(0x0F);
        for (int k = 0; k < 4; k++) {
            // each row's codes and scales for these 64 elements, unpacked once for the 4 tokens
            __m256i lo[4], hi[4], slo[4], shi[4];
            for (int r = 0; r < 4; r++) {
                const __m256i raw = _mm256_loadu_si256((const __m256i *)(ROW(r)[i].qs + 32 * k));
                lo[r] = _mm256_and_si256(raw, m4);
                hi[r] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
                slo[r] = scale_bcast(sc[r], 2 * k);
                shi[r] = scale_bcast(sc[r], 2 * k + 1);
            }
            for (int t = 0; t < 4; t++) {
                const int8_t *q8 = ACT(t)[i].qs + 64 * k;
                const __m256i yl = _mm256_loadu_si256((const __m256i *)q8), yh = _mm256_loadu_si256((const __m256i *)(q8 + 32));
                __m256i p[4];
                for (int r = 0; r < 4; r++)
                    p[r] = _mm256_add_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(lo[r], yl), slo[r]),
                                            _mm256_madd_epi16(_mm256_maddubs_epi16(hi[r], yh), shi[r]));
                __m128i isum = hsum4_i32(p[0], p[1], p[2], p[3]);
                acc[t] = _mm_fmadd_ps(_mm_cvtepi32_ps(isum), s[t], acc[t]);
                accm[t] = _mm_fmadd_ps(_mm_cvtepi32_ps(imin[t][k]), sm[t], accm[t]);
            }
        }
    }
    for (int t = 0; t < 4; t++) _mm_storeu_ps(out + t * os, _mm_sub_ps(acc[t], accm[t]));
}

// gemm arithmetic, one row × 4 tokens, to out[t * os].
static CK_AVX2 void gemm_1x4(int64_t n, const blk_q4_K *x, const uint8_t *a, size_t astride, float *out, int64_t os) {
    float acc[4] = { 0, 0, 0, 0 }, accm[4] = { 0, 0, 0, 0 };
    for (int64_t i = 0; i < n / QKK; i++) {
        const __m256i smv = scales_mins(x[i].scales);
        const __m256i sc = _mm256_permute2x128_si256(smv, smv, 0x00);
        const __m128i mn = _mm256_extracti128_si256(smv, 1);
        const float xd = _cvtsh_ss(x[i].d), xdmin = _cvtsh_ss(x[i].dmin);
        for (int t = 0; t < 4; t++) {
            const blk_q8_K *y = &ACT(t)[i];
            int imin[4];
            _mm_storeu_si128((__m128i *)imin, _mm_madd_epi16(mn, bsums32(y)));
            const float s = xd * y->d, sm = xdmin * y->d;
            for (int k = 0; k < 4; k++) {
                __m256i p = chunk_sum(_mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * k)), y->qs + 64 * k,
                                      scale_bcast(sc, 2 * k), scale_bcast(sc, 2 * k + 1));
                acc[t] = fmaf((float)hsum_i32(p), s, acc[t]);
                accm[t] = fmaf((float)imin[k], sm, accm[t]);
            }
        }
    }
    for (int t = 0; t < 4; t++) out[t * os] = acc[t] - accm[t];
}

CK_AVX2 void ck_q4_K_rows_avx2(int64_t n, const void *vw, size_t wstride, int64_t nrows, const void *y, float *out) {
    const uint8_t *w = vw;
    int64_t r = 0;
    for (; r + 4 <= nrows; r += 4) gemv_rows4(n, w + (size_t)r * wstride, wstride, y, out + r);
    for (; r < nrows; r++) out[r] = ck_q4_K_gemv_avx2(n, w + (size_t)r * wstride, y);
}

CK_AVX2 void ck_q4_K_tile_avx2(int64_t n, const void *vw, size_t wstride, int64_t nrows, const void *va,
                               size_t astride, int64_t ntok, float *out, int64_t os) {
    const uint8_t *w = vw, *a = va;
    const int64_t ngemm = ntok - ntok % 4;
    int64_t r = 0;
    for (; r + 4 <= nrows; r += 4) {
        const uint8_t *wr = w + (size_t)r * wstride;
        int64_t t = 0;
        for (; t < ngemm; t += 4) gemm_4x4(n, wr, wstride, a + (size_t)t * astride, astride, out + t * os + r, os);
        for (; t < ntok; t++) gemv_rows4(n, wr, wstride, (const blk_q8_K *)(a + (size_t)t * astride), out + t * os + r);
    }
    for (; r < nrows; r++) {
        const blk_q4_K *x = (const blk_q4_K *)(w + (size_t)r * wstride);
        int64_t t = 0;
        for (; t < ngemm; t += 4) gemm_1x4(n, x, a + (size_t)t * astride, astride, out + t * os + r, os);
        for (; t < ntok; t++) out[t * os + r] = ck_q4_K_gemv_avx2(n, x, a + (size_t)t * astride);
    }
}

void ck_q4_K_tile_scalar(int64_t n, const void *vw, size_t wstride, int64_t nrows, const void *va,
                         size_t astride, int64_t ntok, float *out, int64_t os) {
    const uint8_t *w = vw, *a = va;
    const int64_t ngemm = ntok - ntok % 4;
    for (int64_t t = 0; t < ntok; t++)
        for (int64_t r = 0; r < nrows; r++) {
            const void *x = w + (size_t)r * wstride, *y = a + (size_t)t * astride;
            out[t * os + r] = t < ngemm ? ck_q4_K_gemm_scalar(n, x, y) : ck_q4_K_gemv_scalar(n, x, y);
        }
}
