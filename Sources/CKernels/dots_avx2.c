// AVX2/FMA/F16C fast paths for activation quantization and the quantized dot products.
// Each one is checked against its scalar twin in quants.c by KernelsTests.
#include "internal.h"
#include <immintrin.h>
#include <math.h>

static inline CK_AVX2 float hf(uint16_t h) { return _cvtsh_ss(h); }

static inline CK_AVX2 float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline CK_AVX2 int hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

// Sum of adjacent products of unsigned bytes u and signed bytes s, as 8 int32.
static inline CK_AVX2 __m256i dot_u8_i8(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

// Same for two signed byte vectors: move x's sign onto y so maddubs sees |x| unsigned.
static inline CK_AVX2 __m256i dot_i8_i8(__m256i x, __m256i y) {
    return dot_u8_i8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

// 32 nibbles: low nibbles to bytes 0..15, high nibbles to bytes 16..31 (ggml element order).
static inline CK_AVX2 __m256i unpack_nibbles(const uint8_t *p) {
    __m128i t = _mm_loadu_si128((const __m128i *)p);
    __m256i b = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
    return _mm256_and_si256(b, _mm256_set1_epi8(0x0F));
}

// 32 bits to 32 bytes: byte i is 0xFF when bit i is set.
static inline CK_AVX2 __m256i bits_to_bytes(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    const __m256i pick = _mm256_set_epi64x(0x0303030303030303LL, 0x0202020202020202LL,
                                           0x0101010101010101LL, 0);
    __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32((int)v), pick);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    return _mm256_cmpeq_epi8(_mm256_and_si256(b, bit), bit);
}

// ---- quantization ----------------------------------------------------------------------

// Pack 4×8 int32 (each within int8) into 32 bytes in order.
static inline CK_AVX2 __m256i pack_i32x4(__m256i a, __m256i b, __m256i c, __m256i d) {
    __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
    __m256i r = _mm256_packs_epi16(ab, cd);
    return _mm256_permutevar8x32_epi32(r, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

static inline CK_AVX2 void quant_block_32(const float *x, int8_t *qs, float *d_out, int *sum_out) {
    const __m256 signbit = _mm256_set1_ps(-0.0f);
    __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8);
    __m256 v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
    __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(signbit, v0), _mm256_andnot_ps(signbit, v1)),
                             _mm256_max_ps(_mm256_andnot_ps(signbit, v2), _mm256_andnot_ps(signbit, v3)));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    const float amax = _mm_cvtss_f32(h);
    // As ggml's x86 quantize_row_q8_0/q8_1 (what llama.cpp runs on AVX2, not the _ref rule):
    // the multiplier is 127/amax and halves round to even.
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    const __m256 mul = _mm256_set1_ps(id);
#define RNE (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
    __m256i i0 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v0, mul), RNE));
    __m256i i1 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v1, mul), RNE));
    __m256i i2 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v2, mul), RNE));
    __m256i i3 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v3, mul), RNE));
    if (sum_out) *sum_out = hsum_epi32(_mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3)));
    _mm256_storeu_si256((__m256i *)qs, pack_i32x4(i0, i1, i2, i3));
    *d_out = d;
}

CK_AVX2 void ck_quantize_row_q8_0_avx2(const float *x, void *vy, int64_t n) {
    blk_q8_0 *y = vy;
    for (int64_t i = 0; i < n / QK; i++) {
        float d;
        quant_block_32(x + i * QK, y[i].qs, &d, NULL);
        y[i].d = _cvtss_sh(d, 0);
    }
}

CK_AVX2 void ck_quantize_row_q8_1_avx2(const float *x, void *vy, int64_t n) {
    blk_q8_1 *y = vy;
    for (int64_t i = 0; i < n / QK; i++) {
        float d;
        int sum;
        quant_block_32(x + i * QK, y[i].qs, &d, &sum);
        y[i].d = _cvtss_sh(d, 0);
        y[i].s = _cvtss_sh(d * (float)sum, 0);
    }
}

CK_AVX2 void ck_quantize_row_q8_K_avx2(const float *x, void *vy, int64_t n) {
    blk_q8_K *y = vy;
    const __m256 signbit = _mm256_set1_ps(-0.0f);
    for (int64_t i = 0; i < n / QKK; i++, x += QKK) {
        __m256 m = _mm256_setzero_ps();
        for (int j = 0; j < QKK; j += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(signbit, _mm256_loadu_ps(x + j)));
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        h = _mm_max_ss(h, _mm_movehdup_ps(h));
        const float amax = _mm_cvtss_f32(h);
        if (amax == 0) {
            memset(&y[i], 0, sizeof(y[i]));
            continue;
        }
        // The reference keeps the sign of the first element reaching amax.
        float max = amax;
        const __m256 va = _mm256_set1_ps(amax);
        for (int j = 0; j < QKK; j += 8) {
            int mask = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(signbit, _mm256_loadu_ps(x + j)), va, _CMP_EQ_OQ));
            if (mask) { max = x[j + __builtin_ctz((unsigned)mask)]; break; }
        }
        const float iscale = -127.f / max;
        const __m256 mul = _mm256_set1_ps(iscale);
        const __m256i top = _mm256_set1_epi32(127);
        for (int j = 0; j < QKK; j += 32) {
            __m256i q[4];
            for (int k = 0; k < 4; k++) {
                __m256 v = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + j + 8 * k), mul),
                                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                q[k] = _mm256_min_epi32(_mm256_cvtps_epi32(v), top);
            }
            __m256i packed = pack_i32x4(q[0], q[1], q[2], q[3]);
            _mm256_storeu_si256((__m256i *)(y[i].qs + j), packed);
            // bsums for these two groups of 16
            __m256i s16 = _mm256_maddubs_epi16(_mm256_set1_epi8(1), packed);
            __m256i s32 = _mm256_madd_epi16(s16, _mm256_set1_epi16(1));
            __m128i lo = _mm256_castsi256_si128(s32), hi = _mm256_extracti128_si256(s32, 1);
            lo = _mm_add_epi32(lo, _mm_shuffle_epi32(lo, 0x4e)); lo = _mm_add_epi32(lo, _mm_shuffle_epi32(lo, 0xb1));
            hi = _mm_add_epi32(hi, _mm_shuffle_epi32(hi, 0x4e)); hi = _mm_add_epi32(hi, _mm_shuffle_epi32(hi, 0xb1));
            y[i].bsums[j / 16] = (int16_t)_mm_cvtsi128_si32(lo);
            y[i].bsums[j / 16 + 1] = (int16_t)_mm_cvtsi128_si32(hi);
        }
        y[i].d = 1 / iscale;
    }
}

// ---- dot products ------------------------------------------------------------------------

// Two f16 values at p (e.g. a block's d and m) as floats in lanes 0 and 1.
static inline CK_AVX2 __m128 load_2h(const void *p) {
    int v;
    memcpy(&v, p, 4);
    return _mm_cvtph_ps(_mm_cvtsi32_si128(v));
}

// The per-32 kernels below run two blocks per iteration into two accumulators: the FMA into
// a single accumulator is a 4-cycle dependency chain, longer than the rest of a block's work.

static CK_AVX2 void rows_q8_0(int64_t n, const uint8_t *w, size_t wstride, const blk_q8_0 *y, float *out);

CK_AVX2 float ck_dot_q8_0_avx2(int64_t n, const void *vx, const void *vy) {
    // ggml_vec_dot_q8_0_q8_0 (AVX2): one accumulator chain acc = fma(dx·dy, Σ4 products per lane,
    // acc), then hsum. rows_q8_0 runs the same chain per row, so decode and batches agree.
    const blk_q8_0 *x = vx;
    const blk_q8_0 *y = vy;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK; i++) {
        __m256i qx = _mm256_loadu_si256((const __m256i *)x[i].qs);
        __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        __m256 p = _mm256_cvtepi32_ps(dot_i8_i8(qx, qy));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(hf(x[i].d) * hf(y[i].d)), p, acc);
    }
    return hsum_ps(acc);
}

CK_AVX2 float ck_dot_q4_0_avx2(int64_t n, const void *vx, const void *vy) {
    const blk_q4_0 *x = vx;
    const blk_q8_0 *y = vy;
    __m256 acc[2] = { _mm256_setzero_ps(), _mm256_setzero_ps() };
    const __m256i eight = _mm256_set1_epi8(8);
    for (int64_t i = 0; i < n / QK; i++) {
        __m256i qx = _mm256_sub_epi8(unpack_nibbles(x[i].qs), eight);
        __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        __m256 p = _mm256_cvtepi32_ps(dot_i8_i8(qx, qy));
        acc[i & 1] = _mm256_fmadd_ps(_mm256_set1_ps(hf(x[i].d) * hf(y[i].d)), p, acc[i & 1]);
    }
    return hsum_ps(_mm256_add_ps(acc[0], acc[1]));
}

CK_AVX2 float ck_dot_q4_1_avx2(int64_t n, const void *vx, const void *vy) {
    // Same order as ggml_vec_dot_q4_1_q8_1 and rows_q4_1: one chain for d·d'·Σq·q', and the
    // mins m·s summed with fused multiply-adds.
    const blk_q4_1 *x = vx;
    const blk_q8_1 *y = vy;
    __m256 acc = _mm256_setzero_ps();
    float summs = 0.0f;
    for (int64_t i = 0; i < n / QK; i++) {
        __m256i qx = unpack_nibbles(x[i].qs);
        __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        __m256 p = _mm256_cvtepi32_ps(dot_u8_i8(qx, qy));
        summs = fmaf(hf(x[i].m), hf(y[i].s), summs);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(hf(x[i].d) * hf(y[i].d)), p, acc);
    }
    return hsum_ps(acc) + summs;
}

// Q5_0 codes as signed bytes: (q | bit<<4) - 16, i.e. set the high nibble (0xF0 = -16) where
// the 5th bit is clear.
static inline CK_AVX2 __m256i q5_0_codes(const blk_q5_0 *b) {
    __m256i hi = _mm256_andnot_si256(bits_to_bytes(b->qh), _mm256_set1_epi8((char)0xF0));
    return _mm256_or_si256(unpack_nibbles(b->qs), hi);
}

CK_AVX2 float ck_dot_q5_0_avx2(int64_t n, const void *vx, const void *vy) {
    // One accumulator chain, as ggml_vec_dot_q5_0_q8_0 and rows_q5_0.
    const blk_q5_0 *x = vx;
    const blk_q8_0 *y = vy;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK; i++) {
        __m256i qx = q5_0_codes(&x[i]);
        __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        __m256 p = _mm256_cvtepi32_ps(dot_i8_i8(qx, qy));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(hf(x[i].d) * hf(y[i].d)), p, acc);
    }
    return hsum_ps(acc);
}

CK_AVX2 float ck_dot_q5_1_avx2(int64_t n, const void *vx, const void *vy) {
    const blk_q5_1 *x = vx;
    const blk_q8_1 *y = vy;
    __m256 acc = _mm256_setzero_ps();
    float summs = 0;
    for (int64_t i = 0; i < n / QK; i++) {
        __m256i q4 = unpack_nibbles(x[i].qs);
        __m256i hi = _mm256_and_si256(bits_to_bytes(x[i].qh), _mm256_set1_epi8(0x10));
        __m256i qx = _mm256_or_si256(q4, hi);
        __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        __m256 p = _mm256_cvtepi32_ps(dot_u8_i8(qx, qy));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(hf(x[i].d) * hf(y[i].d)), p, acc);
        summs += hf(x[i].m) * hf(y[i].s);
    }
    return hsum_ps(acc) + summs;
}

// Sum over the 8 sub-blocks of min_j × (activation sum over sub-block j).
static inline int k4_mins_dot(const uint8_t *mins, const int16_t *bsums) {
    int s = 0;
    for (int j = 0; j < 8; j++) s += mins[j] * (bsums[2 * j] + bsums[2 * j + 1]);
    return s;
}

CK_AVX2 float ck_dot_q5_K_avx2(int64_t n, const void *vx, const void *vy) {
    const blk_q5_K *x = vx;
    const blk_q8_K *y = vy;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i one = _mm256_set1_epi8(1);
    __m256 acc = _mm256_setzero_ps();
    float accm = 0;
    for (int64_t i = 0; i < n / QKK; i++) {
        uint8_t sc[8], mn[8];
        for (int j = 0; j < 8; j++) ck_scale_min_k4(j, x[i].scales, &sc[j], &mn[j]);
        const float d = y[i].d * hf(x[i].d);
        accm += y[i].d * hf(x[i].dmin) * (float)k4_mins_dot(mn, y[i].bsums);
        __m256i qh = _mm256_loadu_si256((const __m256i *)x[i].qh);
        __m256i sumi = _mm256_setzero_si256();
        const int8_t *q8 = y[i].qs;
        for (int c = 0; c < 4; c++) {
            __m256i q4 = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * c));
            // bit 2c of qh[l] is element 64c+l's 5th bit, bit 2c+1 is element 64c+32+l's.
            __m256i hlo = _mm256_slli_epi16(_mm256_and_si256(qh, one), 4);
            __m256i hhi = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 1), one), 4);
            qh = _mm256_srli_epi16(qh, 2);
            __m256i lo = _mm256_or_si256(_mm256_and_si256(q4, m4), hlo);
            __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4, 4), m4), hhi);
            __m256i p0 = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(q8 + 64 * c)));
            __m256i p1 = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(q8 + 64 * c + 32)));
            p0 = _mm256_madd_epi16(p0, _mm256_set1_epi16(sc[2 * c]));
            p1 = _mm256_madd_epi16(p1, _mm256_set1_epi16(sc[2 * c + 1]));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum_ps(acc) - accm;
}

CK_AVX2 float ck_dot_q6_K_avx2(int64_t n, const void *vx, const void *vy) {
    const blk_q6_K *x = vx;
    const blk_q8_K *y = vy;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i m3 = _mm256_set1_epi8(0x03);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QKK; i++) {
        // Scales cover 16 elements each, as do Q8_K's bsums, so the -32 offset of every code
        // comes from Σ scale_g × bsum_g.
        __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[i].scales));
        __m256i bs = _mm256_loadu_si256((const __m256i *)y[i].bsums);
        const int8_t *sc = x[i].scales;
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = x[i].ql + 64 * h;
            const int8_t *q8 = y[i].qs + 128 * h;
            const int8_t *s = sc + 8 * h;
            __m256i qhv = _mm256_loadu_si256((const __m256i *)(x[i].qh + 32 * h));
            __m256i qa = _mm256_loadu_si256((const __m256i *)ql);
            __m256i qb = _mm256_loadu_si256((const __m256i *)(ql + 32));
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(qa, m4), _mm256_slli_epi16(_mm256_and_si256(qhv, m3), 4));
            q[1] = _mm256_or_si256(_mm256_and_si256(qb, m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qhv, 2), m3), 4));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qa, 4), m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qhv, 4), m3), 4));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qb, 4), m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qhv, 6), m3), 4));
            for (int k = 0; k < 4; k++) {
                __m256i p = _mm256_maddubs_epi16(q[k], _mm256_loadu_si256((const __m256i *)(q8 + 32 * k)));
                __m256i scv = _mm256_set_m128i(_mm_set1_epi16(s[2 * k + 1]), _mm_set1_epi16(s[2 * k]));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scv));
            }
        }
        // As ggml_vec_dot_q6_K_q8_K (AVX2): the offset leaves each int32 lane before the one FMA,
        // lane l losing 32·(bsum[2l]·scale[2l] + bsum[2l+1]·scale[2l+1]).
        const float d = y[i].d * hf(x[i].d);
        sumi = _mm256_sub_epi32(sumi, _mm256_slli_epi32(_mm256_madd_epi16(bs, sc16), 5));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum_ps(acc);
}

// Float-like weights (f16, bf16, f32) · f32 activations: widen 8 weights, FMA into four
// accumulators 32 at a time, then 8 at a time into the first, fold, and the tail in scalar.
static inline CK_AVX2 __m256 f16x8(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
// bf16 widens exactly: a 16-bit shift into a float's top half.
static inline CK_AVX2 __m256 bf16x8(const uint16_t *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}
static inline float f32_1(float v) { return v; }

#define CK_WIDE_DOT(NAME, T, LOAD8, WIDEN1)                                                   \
    CK_AVX2 float NAME(int64_t n, const void *vx, const void *vy) {                           \
        const T *x = vx;                                                                      \
        const float *y = vy;                                                                  \
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                           \
        int64_t i = 0;                                                                        \
        for (; i + 32 <= n; i += 32) {                                                        \
            a0 = _mm256_fmadd_ps(LOAD8(x + i), _mm256_loadu_ps(y + i), a0);                   \
            a1 = _mm256_fmadd_ps(LOAD8(x + i + 8), _mm256_loadu_ps(y + i + 8), a1);           \
            a2 = _mm256_fmadd_ps(LOAD8(x + i + 16), _mm256_loadu_ps(y + i + 16), a2);         \
            a3 = _mm256_fmadd_ps(LOAD8(x + i + 24), _mm256_loadu_ps(y + i + 24), a3);         \
        }                                                                                     \
        for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(LOAD8(x + i), _mm256_loadu_ps(y + i), a0); \
        float s = hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));      \
        for (; i < n; i++) s += WIDEN1(x[i]) * y[i];                                          \
        return s;                                                                             \
    }

CK_WIDE_DOT(ck_dot_f16_avx2, uint16_t, f16x8, hf)
CK_WIDE_DOT(ck_dot_bf16_avx2, uint16_t, bf16x8, bf2f)
CK_WIDE_DOT(ck_dot_f32_avx2, float, _mm256_loadu_ps, f32_1)

// ---- dispatch ------------------------------------------------------------------------------

void ck_quantize_row_q8_0(const float *x, void *y, int64_t n) {
    if (ck_use_avx2 < 0) ck_init_cpu();
    if (ck_use_avx2) ck_quantize_row_q8_0_avx2(x, y, n); else ck_quantize_row_q8_0_scalar(x, y, n);
}
void ck_quantize_row_q8_1(const float *x, void *y, int64_t n) {
    if (ck_use_avx2 < 0) ck_init_cpu();
    if (ck_use_avx2) ck_quantize_row_q8_1_avx2(x, y, n); else ck_quantize_row_q8_1_scalar(x, y, n);
}
void ck_quantize_row_q8_K(const float *x, void *y, int64_t n) {
    if (ck_use_avx2 < 0) ck_init_cpu();
    if (ck_use_avx2) ck_quantize_row_q8_K_avx2(x, y, n); else ck_quantize_row_q8_K_scalar(x, y, n);
}

void ck_quantize_activation(int weight_type, const float *x, void *y, int64_t n) {
    switch (ck_vec_dot_type(weight_type)) {
    case CK_Q8_0: ck_quantize_row_q8_0(x, y, n); break;
    case CK_Q8_1: ck_quantize_row_q8_1(x, y, n); break;
    case CK_Q8_K: ck_quantize_row_q8_K(x, y, n); break;
    case CK_F32: memmove(y, x, (size_t)n * sizeof(float)); break;
    default: break;
    }
}

float ck_vec_dot(int type, int64_t n, const void *w, const void *a) {
    if (ck_use_avx2 < 0) ck_init_cpu();
    if (!ck_use_avx2) return ck_vec_dot_scalar(type, n, w, a);
    switch (type) {
    case CK_F32: return ck_dot_f32_avx2(n, w, a);
    case CK_F16: return ck_dot_f16_avx2(n, w, a);
    case CK_BF16: return ck_dot_bf16_avx2(n, w, a);
    case CK_Q4_0: return ck_dot_q4_0_avx2(n, w, a);
    case CK_Q4_1: return ck_dot_q4_1_avx2(n, w, a);
    case CK_Q5_0: return ck_dot_q5_0_avx2(n, w, a);
    case CK_Q5_1: return ck_dot_q5_1_avx2(n, w, a);
    case CK_Q8_0: return ck_dot_q8_0_avx2(n, w, a);
    case CK_Q4_K: return ck_q4_K_gemv_avx2(n, w, a);  // q4k_avx2.c
    case CK_Q5_K: return ck_dot_q5_K_avx2(n, w, a);
    case CK_Q6_K: return ck_dot_q6_K_avx2(n, w, a);
    default: return ck_vec_dot_scalar(type, n, w, a);
    }
}

// ---- one weight row × 4 tokens (prefill) ------------------------------------------------------
// The weight block is unpacked and its scales converted once, then used for four activation
// rows; the four accumulators are independent chains.

#define NT 4
#define ACT(t, type) ((const type *)(a + (size_t)(t) * astride))

static CK_AVX2 void multi_q5_0(int64_t n, const blk_q5_0 *x, const uint8_t *a, size_t astride, float *out, int64_t os) {
    __m256 acc[NT];
    for (int t = 0; t < NT; t++) acc[t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK; i++) {
        __m256i qx = q5_0_codes(&x[i]);
        __m256i ax = _mm256_sign_epi8(qx, qx);
        const float dx = hf(x[i].d);
        for (int t = 0; t < NT; t++) {
            const blk_q8_0 *y = ACT(t, blk_q8_0) + i;
            __m256i sy = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)y->qs), qx);
            __m256 p = _mm256_cvtepi32_ps(dot_u8_i8(ax, sy));
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(dx * hf(y->d)), p, acc[t]);
        }
    }
    for (int t = 0; t < NT; t++) out[t * os] = hsum_ps(acc[t]);
}

static CK_AVX2 void multi_q4_1(int64_t n, const blk_q4_1 *x, const uint8_t *a, size_t astride, float *out, int64_t os) {
    __m256 acc[NT];
    __m128 summ[NT];
    for (int t = 0; t < NT; t++) { acc[t] = _mm256_setzero_ps(); summ[t] = _mm_setzero_ps(); }
    for (int64_t i = 0; i < n / QK; i++) {
        __m256i qx = unpack_nibbles(x[i].qs);
        __m128 dm = load_2h(&x[i].d);
        for (int t = 0; t < NT; t++) {
            const blk_q8_1 *y = ACT(t, blk_q8_1) + i;
            __m256 p = _mm256_cvtepi32_ps(dot_u8_i8(qx, _mm256_loadu_si256((const __m256i *)y->qs)));
            __m128 prod = _mm_mul_ps(dm, load_2h(&y->d));
            acc[t] = _mm256_fmadd_ps(_mm256_broadcastss_ps(prod), p, acc[t]);
            summ[t] = _mm_add_ps(summ[t], prod);
        }
    }
    for (int t = 0; t < NT; t++)
        out[t * os] = hsum_ps(acc[t]) + _mm_cvtss_f32(_mm_shuffle_ps(summ[t], summ[t], 1));
}

static CK_AVX2 void multi_q6_K(int64_t n, const blk_q6_K *x, const uint8_t *a, size_t astride, float *out, int64_t os) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(0x03);
    __m256 acc[NT];
    for (int t = 0; t < NT; t++) acc[t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QKK; i++) {
        const int8_t *sc = x[i].scales;
        __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)sc));
        __m256i sumi[NT];
        for (int t = 0; t < NT; t++) sumi[t] = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = x[i].ql + 64 * h;
            const int8_t *s = sc + 8 * h;
            __m256i qhv = _mm256_loadu_si256((const __m256i *)(x[i].qh + 32 * h));
            __m256i qa = _mm256_loadu_si256((const __m256i *)ql);
            __m256i qb = _mm256_loadu_si256((const __m256i *)(ql + 32));
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(qa, m4), _mm256_slli_epi16(_mm256_and_si256(qhv, m3), 4));
            q[1] = _mm256_or_si256(_mm256_and_si256(qb, m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qhv, 2), m3), 4));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qa, 4), m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qhv, 4), m3), 4));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qb, 4), m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qhv, 6), m3), 4));
            for (int k = 0; k < 4; k++) {
                __m256i scv = _mm256_set_m128i(_mm_set1_epi16(s[2 * k + 1]), _mm_set1_epi16(s[2 * k]));
                for (int t = 0; t < NT; t++) {
                    const int8_t *q8 = ACT(t, blk_q8_K)[i].qs + 128 * h + 32 * k;
                    __m256i p = _mm256_maddubs_epi16(q[k], _mm256_loadu_si256((const __m256i *)q8));
                    sumi[t] = _mm256_add_epi32(sumi[t], _mm256_madd_epi16(p, scv));
                }
            }
        }
        const float xd = hf(x[i].d);
        for (int t = 0; t < NT; t++) {
            const blk_q8_K *y = ACT(t, blk_q8_K) + i;
            const float d = y->d * xd;
            // the same steps as ck_dot_q6_K_avx2 (ggml's order), so batch and single-token results agree
            __m256i off = _mm256_slli_epi32(_mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y->bsums), sc16), 5);
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(_mm256_sub_epi32(sumi[t], off)), acc[t]);
        }
    }
    for (int t = 0; t < NT; t++) out[t * os] = hsum_ps(acc[t]);
}

// ---- 4 weight rows × one token (decode) -----------------------------------------------------
// Shares the activation load and scale conversion between rows, keeps four independent
// accumulator chains, and pays the call and horizontal-sum overhead once per four rows.

#define NR 4
#define WROW(r, type) ((const type *)(w + (size_t)(r) * wstride))


// 16 nibbles of two weight blocks, row a's in the low 128 bits and row b's in the high:
// low nibbles (elements 0..15) to *lo, high nibbles (elements 16..31) to *hi.
static inline CK_AVX2 void nibbles_2rows(const uint8_t *a, const uint8_t *b, __m256i *lo, __m256i *hi) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)a)),
                                        _mm_loadu_si128((const __m128i *)b), 1);
    *lo = _mm256_and_si256(v, m4);
    *hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
}

// The 4-byte heads (d, or d and m) of block i of 4 rows as 8 floats (f16 pairs converted).
static inline CK_AVX2 __m256 heads4(const uint8_t *w, size_t wstride, size_t bbytes, int64_t i) {
    const uint8_t *p = w + (size_t)i * bbytes;
    int h0, h1, h2, h3;
    memcpy(&h0, p, 4); memcpy(&h1, p + wstride, 4); memcpy(&h2, p + 2 * wstride, 4); memcpy(&h3, p + 3 * wstride, 4);
    return _mm256_cvtph_ps(_mm_setr_epi32(h0, h1, h2, h3));
}

// Block i of the next 4-row group (adjacent in memory), fetched while this group is summed:
// decode streams each weight matrix from DRAM once, and the hardware prefetcher alone lags.
static inline CK_AVX2 void prefetch_next_group(const uint8_t *w, size_t wstride, size_t bbytes, int64_t i) {
    const char *pf = (const char *)w + (size_t)NR * wstride + (size_t)i * bbytes;
    for (int r = 0; r < NR; r++) _mm_prefetch(pf + (size_t)r * wstride, _MM_HINT_T0);
}

static CK_AVX2 void rows_q8_0(int64_t n, const uint8_t *w, size_t wstride, const blk_q8_0 *y, float *out) {
    // Four rows, each summed exactly as ggml_vec_dot_q8_0_q8_0 (see ck_dot_q8_0_avx2): lane l of
    // row r's accumulator gets fma(dx·dy, Σ of products 4l..4l+3, acc) block by block.
    __m256 acc[NR];
    for (int r = 0; r < NR; r++) acc[r] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK; i++) {
        __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        const float dy = hf(y[i].d);
        // The 4-row groups are adjacent in memory, so the next group starts 4 rows on: pull it in
        // while this one is being summed (decode of the big Q8_0 output matrix is DRAM-bound).
        prefetch_next_group(w, wstride, sizeof(blk_q8_0), i);
        for (int r = 0; r < NR; r++) {
            const blk_q8_0 *b = &WROW(r, blk_q8_0)[i];
            __m256i qx = _mm256_loadu_si256((const __m256i *)b->qs);
            __m256 p = _mm256_cvtepi32_ps(dot_i8_i8(qx, qy));
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(hf(b->d) * dy), p, acc[r]);
        }
    }
    for (int r = 0; r < NR; r++) out[r] = hsum_ps(acc[r]);
}

static CK_AVX2 void rows_q5_0(int64_t n, const uint8_t *w, size_t wstride, const blk_q8_0 *y, float *out);

// hsum_float_8 of the 8-lane sums of rows 0..3 held in pair layout: row 2p's lanes 0..3 are
// lo[p] lanes 0..3 and its lanes 4..7 are hi[p] lanes 0..3; row 2p+1's are lanes 4..7 of the
// same vectors. Folds as ggml: ((x4+x0)+(x6+x2)) + ((x5+x1)+(x7+x3)); returns rows 0..3.
static inline CK_AVX2 __m128 hsum_pairs4(__m256 lo01, __m256 hi01, __m256 lo23, __m256 hi23) {
    const __m256 t01 = _mm256_add_ps(hi01, lo01), t23 = _mm256_add_ps(hi23, lo23);
    const __m256 a = _mm256_shuffle_ps(t01, t23, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 b = _mm256_shuffle_ps(t01, t23, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 c = _mm256_add_ps(a, b);  // [x0+x2, x1+x3] of rows 0 and 2 | of rows 1 and 3
    const __m256 d = _mm256_add_ps(_mm256_shuffle_ps(c, c, _MM_SHUFFLE(2, 0, 2, 0)),
                                   _mm256_shuffle_ps(c, c, _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm_unpacklo_ps(_mm256_castps256_ps128(d), _mm256_extractf128_ps(d, 1));
}

static CK_AVX2 void rows_q4_1(int64_t n, const uint8_t *w, size_t wstride, const blk_q8_1 *y, float *out) {
    // Four rows, each summed exactly as ggml_vec_dot_q4_1_q8_1 (AVX2): lane l of a row's
    // accumulator gets fma(d·dy, Σ of products 4l..4l+3, acc) block by block (low nibbles are
    // elements 0..15), the mins m·s are summed one block at a time, and the result is
    // hsum(acc) + mins. Two rows share a vector (pair layout, see hsum_pairs4), so each
    // maddubs, madd, convert and FMA serves two rows without mixing their lanes.
    __m256 lo01 = _mm256_setzero_ps(), hi01 = _mm256_setzero_ps(), lo23 = _mm256_setzero_ps(), hi23 = _mm256_setzero_ps();
    __m128 summs = _mm_setzero_ps();
    const __m256i ones = _mm256_set1_epi16(1);
    const __m256i pick01 = _mm256_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2), pick23 = _mm256_setr_epi32(4, 4, 4, 4, 6, 6, 6, 6);
    const __m256i pickm = _mm256_setr_epi32(1, 3, 5, 7, 1, 3, 5, 7);
    for (int64_t i = 0; i < n / QK; i++) {
        prefetch_next_group(w, wstride, sizeof(blk_q4_1), i);
        const __m256i ylo = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)y[i].qs));
        const __m256i yhi = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(y[i].qs + 16)));
        const __m256 hm = heads4(w, wstride, sizeof(blk_q4_1), i);  // [d0 m0 d1 m1 d2 m2 d3 m3]
        const __m256 dy = _mm256_set1_ps(hf(y[i].d));
        // m·s is exact in f32 (two f16 values), so this fused step rounds as ggml's add
        summs = _mm_fmadd_ps(_mm256_castps256_ps128(_mm256_permutevar8x32_ps(hm, pickm)), _mm_set1_ps(hf(y[i].s)), summs);
        const __m256 s01 = _mm256_mul_ps(_mm256_permutevar8x32_ps(hm, pick01), dy);
        const __m256 s23 = _mm256_mul_ps(_mm256_permutevar8x32_ps(hm, pick23), dy);
        __m256i l, h;
        nibbles_2rows(WROW(0, blk_q4_1)[i].qs, WROW(1, blk_q4_1)[i].qs, &l, &h);
        lo01 = _mm256_fmadd_ps(s01, _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(l, ylo), ones)), lo01);
        hi01 = _mm256_fmadd_ps(s01, _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(h, yhi), ones)), hi01);
        nibbles_2rows(WROW(2, blk_q4_1)[i].qs, WROW(3, blk_q4_1)[i].qs, &l, &h);
        lo23 = _mm256_fmadd_ps(s23, _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(l, ylo), ones)), lo23);
        hi23 = _mm256_fmadd_ps(s23, _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(h, yhi), ones)), hi23);
    }
    _mm_storeu_ps(out, _mm_add_ps(hsum_pairs4(lo01, hi01, lo23, hi23), summs));
}

void ck_vec_dot_rows(int type, int64_t n, const void *vw, size_t wstride, int64_t nrows,
                     const void *a, float *out) {
    const uint8_t *w = vw;
    int64_t r = 0;
    if (ck_use_avx2 < 0) ck_init_cpu();
    if (ck_use_avx2 && type == CK_Q4_K) { ck_q4_K_rows_avx2(n, w, wstride, nrows, a, out); return; }  // q4k_avx2.c
    if (ck_use_avx2 && (type == CK_Q8_0 || type == CK_Q5_0 || type == CK_Q4_1)) {
        for (; r + NR <= nrows; r += NR) {
            const uint8_t *wr = w + (size_t)r * wstride;
            switch (type) {
            case CK_Q8_0: rows_q8_0(n, wr, wstride, a, out + r); break;
            case CK_Q5_0: rows_q5_0(n, wr, wstride, a, out + r); break;
            default: rows_q4_1(n, wr, wstride, a, out + r); break;
            }
        }
    }
    for (; r < nrows; r++) out[r] = ck_vec_dot(type, n, w + (size_t)r * wstride, a);
}

void ck_vec_dot_multi(int type, int64_t n, const void *w, const void *va, size_t astride,
                      int64_t ntok, float *out, int64_t os) {
    const uint8_t *a = va;
    int64_t t = 0;
    if (type == CK_Q4_K) { ck_vec_dot_tile(type, n, w, 0, 1, va, astride, ntok, out, os); return; }  // q4k_avx2.c
    if (ck_use_avx2 < 0) ck_init_cpu();
    if (ck_use_avx2) {
        for (; t + NT <= ntok; t += NT) {
            const uint8_t *at = a + (size_t)t * astride;
            float *o = out + t * os;
            switch (type) {
            case CK_Q8_0:  // per token through the decode kernel's arithmetic (see ck_dot_q8_0_avx2)
                for (int k = 0; k < NT; k++) o[k * os] = ck_dot_q8_0_avx2(n, w, at + (size_t)k * astride);
                break;
            case CK_Q5_0: multi_q5_0(n, w, at, astride, o, os); break;
            case CK_Q4_1: multi_q4_1(n, w, at, astride, o, os); break;
            case CK_Q6_K: multi_q6_K(n, w, at, astride, o, os); break;
            default:
                for (int k = 0; k < NT; k++) o[k * os] = ck_vec_dot(type, n, w, at + (size_t)k * astride);
            }
        }
    }
    for (; t < ntok; t++) out[t * os] = ck_vec_dot(type, n, w, a + (size_t)t * astride);
}

// ---- 2 weight rows × 4 tokens (prefill, batched decode) ---------------------------------------
// Each weight block is unpacked once for four tokens; two rows share every vector (pair layout:
// row r's 16 code bytes in the low half, row r+1's in the high half, activation halves broadcast
// to match) while each row keeps ggml's eight lanes apart, so every (row, token) is bitwise
// ggml's vec_dot. Results: out[t * os + r].

// Q5_0 codes of block i of two rows as signed bytes (code - 16) in pair layout: *lo holds row
// a's elements 0..15 then row b's elements 0..15, *hi their elements 16..31.
static inline CK_AVX2 void q5_0_pair_signed(const blk_q5_0 *ra, const blk_q5_0 *rb, __m256i *lo, __m256i *hi) {
    __m256i nlo, nhi;
    nibbles_2rows(ra->qs, rb->qs, &nlo, &nhi);
    uint32_t ha, hb;
    memcpy(&ha, ra->qh, 4);
    memcpy(&hb, rb->qh, 4);
    const uint32_t blo = (ha & 0xFFFFu) | (hb << 16), bhi = (ha >> 16) | (hb & 0xFFFF0000u);
    const __m256i f0 = _mm256_set1_epi8((char)0xF0);
    *lo = _mm256_or_si256(nlo, _mm256_andnot_si256(bits_to_bytes((const uint8_t *)&blo), f0));
    *hi = _mm256_or_si256(nhi, _mm256_andnot_si256(bits_to_bytes((const uint8_t *)&bhi), f0));
}

// hsum_float_8 of one row held in pair layout: its lanes 0..3 in l[0..3], lanes 4..7 in h[0..3]
// (see tile2x4_q5_0), folded as ggml folds: ((x4+x0)+(x6+x2)) + ((x5+x1)+(x7+x3)).
static inline float hsum_pair_row(const float *l, const float *h) {
    return ((h[0] + l[0]) + (h[2] + l[2])) + ((h[1] + l[1]) + (h[3] + l[3]));
}

// Two Q5_0 rows' block i unpacked: the signed codes in pair layout (lo, hi), their absolute
// values, and the pair's scales. Done once per block and token group, or once per block for a
// whole tile of tokens (q5_0_prepare_pair); the per-token arithmetic is the same either way.
typedef struct { __m256i lo, hi, alo, ahi; __m256 dpair; } q5_0_pair_block;
#define Q5_0_PREP_MAX 256  // blocks (8192 columns) a tile prepares at most; wider rows unpack per group

static inline CK_AVX2 void q5_0_prepare_pair(int64_t nb, const blk_q5_0 *ra, const blk_q5_0 *rb, q5_0_pair_block *out) {
    for (int64_t i = 0; i < nb; i++) {
        q5_0_pair_signed(&ra[i], &rb[i], &out[i].lo, &out[i].hi);
        out[i].alo = _mm256_sign_epi8(out[i].lo, out[i].lo);
        out[i].ahi = _mm256_sign_epi8(out[i].hi, out[i].hi);
        out[i].dpair = _mm256_set_m128(_mm_set1_ps(hf(rb[i].d)), _mm_set1_ps(hf(ra[i].d)));
    }
}

// Block i of a prepared pair against NT tokens' Q8_0 block i, into their accumulators.
static inline CK_AVX2 void q5_0_pair_tokens(const q5_0_pair_block *b, const uint8_t *a, size_t astride, int64_t i,
                                            __m256 *lacc, __m256 *hacc) {
    const __m256i ones = _mm256_set1_epi16(1);
    for (int t = 0; t < NT; t++) {
        const blk_q8_0 *y = ACT(t, blk_q8_0) + i;
        const __m256i ylo = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)y->qs));
        const __m256i yhi = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(y->qs + 16)));
        const __m256 sc = _mm256_mul_ps(b->dpair, _mm256_set1_ps(hf(y->d)));
        const __m256 pl = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(b->alo, _mm256_sign_epi8(ylo, b->lo)), ones));
        const __m256 ph = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(b->ahi, _mm256_sign_epi8(yhi, b->hi)), ones));
        lacc[t] = _mm256_fmadd_ps(sc, pl, lacc[t]);
        hacc[t] = _mm256_fmadd_ps(sc, ph, hacc[t]);
    }
}

// Each (row, token) of a pair's accumulators folded as ggml folds, plus S[2t + row] when given.
static inline CK_AVX2 void fold_pair_tokens(const __m256 *lacc, const __m256 *hacc, const float *S, float *out, int64_t os) {
    for (int t = 0; t < NT; t++) {
        float L[8], H[8];
        _mm256_storeu_ps(L, lacc[t]);
        _mm256_storeu_ps(H, hacc[t]);
        for (int k = 0; k < 2; k++) {
            const float v = hsum_pair_row(L + 4 * k, H + 4 * k);
            out[t * os + k] = S ? v + S[2 * t + k] : v;
        }
    }
}

// 2 weight rows × 4 tokens of Q5_0, each (row, token) summed exactly as ggml_vec_dot_q5_0_q8_0:
// its 8 lanes (4 adjacent products each) are the low half of a row's lo accumulator (lanes
// 0..3) and of its hi accumulator (lanes 4..7), so two rows share every maddubs, madd, convert
// and FMA without mixing; hsum_pair_row folds each row as hsum_float_8 does.
// `prep` holds the pair's blocks already unpacked, or is NULL to unpack each block here.
static CK_AVX2 void tile2x4_q5_0(int64_t n, const uint8_t *w, size_t wstride, const q5_0_pair_block *prep,
                                 const uint8_t *a, size_t astride, float *out, int64_t os) {
    __m256 lacc[NT], hacc[NT];
    for (int t = 0; t < NT; t++) { lacc[t] = _mm256_setzero_ps(); hacc[t] = _mm256_setzero_ps(); }
    for (int64_t i = 0; i < n / QK; i++) {
        q5_0_pair_block b;
        if (!prep) q5_0_prepare_pair(1, &WROW(0, blk_q5_0)[i], &WROW(1, blk_q5_0)[i], &b);
        q5_0_pair_tokens(prep ? &prep[i] : &b, a, astride, i, lacc, hacc);
    }
    fold_pair_tokens(lacc, hacc, NULL, out, os);
}

// 2 weight rows × 4 tokens of Q4_1, each (row, token) summed exactly as ggml_vec_dot_q4_1_q8_1
// (and rows_q4_1): pair layout as in tile2x4_q5_0, and the mins m·s of (row, token) in lane
// 2t + row of one vector, a block at a time, added after the fold.
static CK_AVX2 void tile2x4_q4_1(int64_t n, const uint8_t *w, size_t wstride, const uint8_t *a, size_t astride,
                                 float *out, int64_t os) {
    __m256 lacc[NT], hacc[NT], summs = _mm256_setzero_ps();
    for (int t = 0; t < NT; t++) { lacc[t] = _mm256_setzero_ps(); hacc[t] = _mm256_setzero_ps(); }
    const __m256i ones = _mm256_set1_epi16(1);
    const __m256i pick_s = _mm256_setr_epi32(1, 1, 3, 3, 5, 5, 7, 7);
    for (int64_t i = 0; i < n / QK; i++) {
        const blk_q4_1 *ra = &WROW(0, blk_q4_1)[i], *rb = &WROW(1, blk_q4_1)[i];
        __m256i lo, hi;
        nibbles_2rows(ra->qs, rb->qs, &lo, &hi);
        const float da = hf(ra->d), db = hf(rb->d);
        const __m256 dpair = _mm256_set_m128(_mm_set1_ps(db), _mm_set1_ps(da));
        const __m256 mpair = _mm256_setr_ps(hf(ra->m), hf(rb->m), hf(ra->m), hf(rb->m), hf(ra->m), hf(rb->m), hf(ra->m), hf(rb->m));
        const __m256 ds = heads4(a, astride, sizeof(blk_q8_1), i);  // [dy0 s0 dy1 s1 dy2 s2 dy3 s3]
        summs = _mm256_fmadd_ps(mpair, _mm256_permutevar8x32_ps(ds, pick_s), summs);
        for (int t = 0; t < NT; t++) {
            const blk_q8_1 *y = ACT(t, blk_q8_1) + i;
            const __m256i ylo = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)y->qs));
            const __m256i yhi = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(y->qs + 16)));
            const __m256 sc = _mm256_mul_ps(dpair, _mm256_permutevar8x32_ps(ds, _mm256_set1_epi32(2 * t)));
            lacc[t] = _mm256_fmadd_ps(sc, _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(lo, ylo), ones)), lacc[t]);
            hacc[t] = _mm256_fmadd_ps(sc, _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(hi, yhi), ones)), hacc[t]);
        }
    }
    float S[8];
    _mm256_storeu_ps(S, summs);
    fold_pair_tokens(lacc, hacc, S, out, os);
}

void ck_vec_dot_tile(int type, int64_t n, const void *vw, size_t wstride, int64_t nrows, const void *va,
                     size_t astride, int64_t ntok, float *out, int64_t os) {
    const uint8_t *w = vw, *a = va;
    int64_t r = 0;
    if (ck_use_avx2 < 0) ck_init_cpu();
    if (type == CK_Q4_K) {  // llama.cpp's repack gemm/gemv arithmetic (q4k_avx2.c)
        if (ck_use_avx2) ck_q4_K_tile_avx2(n, vw, wstride, nrows, va, astride, ntok, out, os);
        else ck_q4_K_tile_scalar(n, vw, wstride, nrows, va, astride, ntok, out, os);
        return;
    }
    if (ck_use_avx2 && type == CK_Q8_0) {
        // The decode kernel per token over 4 rows: the tile's rows stay in L1 across tokens, and
        // each token's results are bitwise those of decode.
        for (; r + NR <= nrows; r += NR)
            for (int64_t t = 0; t < ntok; t++)
                rows_q8_0(n, w + (size_t)r * wstride, wstride, (const blk_q8_0 *)(a + (size_t)t * astride), out + t * os + r);
    }
    if (ck_use_avx2 && (type == CK_Q5_0 || type == CK_Q4_1)) {
        for (; r + 2 <= nrows; r += 2) {
            const uint8_t *wr = w + (size_t)r * wstride;
            int64_t t = 0;
            // Q5_0: unpack the two rows once for all of this tile's tokens when there are several groups.
            q5_0_pair_block prep[Q5_0_PREP_MAX];
            const int prepared = type == CK_Q5_0 && ntok >= 2 * NT && n / QK <= Q5_0_PREP_MAX;
            if (prepared) q5_0_prepare_pair(n / QK, (const blk_q5_0 *)wr, (const blk_q5_0 *)(wr + wstride), prep);
            for (; t + NT <= ntok; t += NT) {
                if (type == CK_Q5_0) tile2x4_q5_0(n, wr, wstride, prepared ? prep : NULL, a + (size_t)t * astride, astride, out + t * os + r, os);
                else tile2x4_q4_1(n, wr, wstride, a + (size_t)t * astride, astride, out + t * os + r, os);
            }
            for (; t < ntok; t++)
                for (int k = 0; k < 2; k++)
                    out[t * os + r + k] = ck_vec_dot(type, n, wr + (size_t)k * wstride, a + (size_t)t * astride);
        }
    }
    for (; r < nrows; r++) ck_vec_dot_multi(type, n, w + (size_t)r * wstride, a, astride, ntok, out + r, os);
}

// Four rows, each summed exactly as ggml_vec_dot_q5_0_q8_0 (and llamafile's tinyBLAS, which
// llama.cpp uses for Q5_0 batches, sums each row × token the same way): lane l of a row's
// accumulator gets fma(d·dy, Σ of signed products 4l..4l+3, acc) block by block, then hsum.
static CK_AVX2 void rows_q5_0(int64_t n, const uint8_t *w, size_t wstride, const blk_q8_0 *y, float *out) {
    __m256 acc[NR];
    for (int r = 0; r < NR; r++) acc[r] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK; i++) {
        prefetch_next_group(w, wstride, sizeof(blk_q5_0), i);
        __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        const float dy = hf(y[i].d);
        for (int r = 0; r < NR; r++) {
            const blk_q5_0 *b = &WROW(r, blk_q5_0)[i];
            __m256 p = _mm256_cvtepi32_ps(dot_i8_i8(q5_0_codes(b), qy));
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(hf(b->d) * dy), p, acc[r]);
        }
    }
    for (int r = 0; r < NR; r++) out[r] = hsum_ps(acc[r]);
}
