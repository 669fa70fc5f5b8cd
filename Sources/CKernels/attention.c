// One query head of attention with llama.cpp's CPU flash-attention roundings (see ckattention.h).
#include "internal.h"
#include "ckattention.h"
#include <immintrin.h>
#include <math.h>

// ---- scalar twin ----------------------------------------------------------------------------

static float dot_f16_scalar(int64_t n, const uint16_t *x, const uint16_t *y) {
    // Same association as the AVX2 path: 4 accumulators of 8 lanes over 32-element steps,
    // reduced as (a0 + a2) + (a1 + a3), then the 8 lanes folded as _mm_hadd does.
    float acc[4][8] = {{0}};
    int64_t np = n & ~(int64_t)31;
    for (int64_t i = 0; i < np; i += 32)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 8; l++)
                acc[j][l] = fmaf(ck_f16_to_f32(x[i + j * 8 + l]), ck_f16_to_f32(y[i + j * 8 + l]), acc[j][l]);
    float r[8];
    for (int l = 0; l < 8; l++) r[l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
    float t[4];
    for (int l = 0; l < 4; l++) t[l] = r[l] + r[l + 4];
    float h0 = t[0] + t[1], h1 = t[2] + t[3];
    double sum = (double)(h0 + h1);
    for (int64_t i = np; i < n; i++) sum += (double)(ck_f16_to_f32(x[i]) * ck_f16_to_f32(y[i]));
    return (float)sum;
}

void ck_attention_head_f16_scalar(const float *q, int64_t dk, int64_t dv, const uint16_t *k, size_t k_stride,
                                  const uint16_t *v, size_t v_stride, int64_t lo, int64_t hi, float scale,
                                  float *out, uint16_t *q16, uint16_t *acc16) {
    for (int64_t d = 0; d < dk; d++) q16[d] = ck_f32_to_f16(q[d]);
    for (int64_t d = 0; d < dv; d++) acc16[d] = 0;
    float S = 0.0f, M = -INFINITY;
    for (int64_t p = lo; p <= hi; p++) {
        float s = dot_f16_scalar(dk, k + (size_t)p * k_stride, q16) * scale;
        float ms = 1.0f, vs = 1.0f;
        if (s > M) {
            float Mold = M;
            M = s;
            ms = expf(Mold - M);
            for (int64_t d = 0; d < dv; d++) acc16[d] = ck_f32_to_f16(ck_f16_to_f32(acc16[d]) * ms);
        } else {
            vs = expf(s - M);
        }
        const uint16_t *vr = v + (size_t)p * v_stride;
        for (int64_t d = 0; d < dv; d++)
            acc16[d] = ck_f32_to_f16(fmaf(ck_f16_to_f32(vr[d]), vs, ck_f16_to_f32(acc16[d])));
        S = fmaf(S, ms, vs);  // as GCC contracts ggml's S*ms + vs
    }
    const float inv = S == 0.0f ? 0.0f : 1.0f / S;
    for (int64_t d = 0; d < dv; d++) out[d] = ck_f16_to_f32(acc16[d]) * inv;
}

// ---- AVX2 + F16C ----------------------------------------------------------------------------

static CK_AVX2 float dot_f16_avx2(int64_t n, const uint16_t *x, const uint16_t *y) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t np = n & ~(int64_t)31;
    for (int64_t i = 0; i < np; i += 32) {
        for (int j = 0; j < 4; j++) {
            __m256 ax = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i + j * 8)));
            __m256 ay = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + i + j * 8)));
            acc[j] = _mm256_fmadd_ps(ax, ay, acc[j]);
        }
    }
    // GGML_F32x8_REDUCE's order: (a0 + a2) + (a1 + a3)
    acc[0] = _mm256_add_ps(acc[0], acc[2]);
    acc[1] = _mm256_add_ps(acc[1], acc[3]);
    acc[0] = _mm256_add_ps(acc[0], acc[1]);
    __m128 t0 = _mm_add_ps(_mm256_castps256_ps128(acc[0]), _mm256_extractf128_ps(acc[0], 1));
    __m128 t1 = _mm_hadd_ps(t0, t0);
    double sum = (double)_mm_cvtss_f32(_mm_hadd_ps(t1, t1));
    for (int64_t i = np; i < n; i++) sum += (double)(ck_f16_to_f32(x[i]) * ck_f16_to_f32(y[i]));
    return (float)sum;
}

static CK_AVX2 void scale_f16_avx2(int64_t n, uint16_t *y, float v) {
    const __m256 vv = _mm256_set1_ps(v);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 a = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + i)));
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_mul_ps(a, vv), 0));
    }
    for (; i < n; i++) y[i] = ck_f32_to_f16(ck_f16_to_f32(y[i]) * v);
}

static CK_AVX2 void mad_f16_avx2(int64_t n, uint16_t *y, const uint16_t *x, float v) {
    const __m256 vv = _mm256_set1_ps(v);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 ax = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i)));
        __m256 ay = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + i)));
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_fmadd_ps(ax, vv, ay), 0));
    }
    // tail: the same fused multiply-add as the vector lanes (and the scalar twin)
    for (; i < n; i++) y[i] = ck_f32_to_f16(fmaf(ck_f16_to_f32(x[i]), v, ck_f16_to_f32(y[i])));
}

static CK_AVX2 void to_f16_avx2(int64_t n, const float *x, uint16_t *y) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), 0));
    for (; i < n; i++) y[i] = ck_f32_to_f16(x[i]);
}

static CK_AVX2 void attention_head_avx2(const float *q, int64_t dk, int64_t dv, const uint16_t *k, size_t k_stride,
                                         const uint16_t *v, size_t v_stride, int64_t lo, int64_t hi, float scale,
                                         float *out, uint16_t *q16, uint16_t *acc16) {
    to_f16_avx2(dk, q, q16);
    for (int64_t d = 0; d < dv; d++) acc16[d] = 0;
    float S = 0.0f, M = -INFINITY;
    for (int64_t p = lo; p <= hi; p++) {
        float s = dot_f16_avx2(dk, k + (size_t)p * k_stride, q16) * scale;
        float ms = 1.0f, vs = 1.0f;
        if (s > M) {
            float Mold = M;
            M = s;
            ms = expf(Mold - M);
            scale_f16_avx2(dv, acc16, ms);
        } else {
            vs = expf(s - M);
        }
        mad_f16_avx2(dv, acc16, v + (size_t)p * v_stride, vs);
        S = fmaf(S, ms, vs);  // as GCC contracts ggml's S*ms + vs
    }
    const float inv = S == 0.0f ? 0.0f : 1.0f / S;
    int64_t d = 0;
    const __m256 vi = _mm256_set1_ps(inv);
    for (; d + 8 <= dv; d += 8)
        _mm256_storeu_ps(out + d, _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(acc16 + d))), vi));
    for (; d < dv; d++) out[d] = ck_f16_to_f32(acc16[d]) * inv;
}

void ck_attention_head_f16(const float *q, int64_t dk, int64_t dv, const uint16_t *k, size_t k_stride,
                           const uint16_t *v, size_t v_stride, int64_t lo, int64_t hi, float scale,
                           float *out, uint16_t *q16, uint16_t *acc16) {
    if (ck_use_avx2 < 0) ck_init_cpu();
    if (ck_use_avx2) attention_head_avx2(q, dk, dv, k, k_stride, v, v_stride, lo, hi, scale, out, q16, acc16);
    else ck_attention_head_f16_scalar(q, dk, dv, k, k_stride, v, v_stride, lo, hi, scale, out, q16, acc16);
}
