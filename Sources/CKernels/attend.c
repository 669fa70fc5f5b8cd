// Attention of one query head over a range of cached positions, with K and V in f16 as
// llama.cpp keeps them by default: scores = scale · q·k_p (f32 accumulation), softmax in f32,
// out = Σ_p softmax_p · v_p. V is stored transposed (one row of positions per value dimension),
// as in llama.cpp's non-flash path, so the weighted sum is a dot product per dimension.
// Replaces per-position and per-dimension ck_vec_dot calls (O(n²·heads) small calls in prefill).
#include "internal.h"
#include <immintrin.h>
#include <math.h>

void ck_attention_f16_scalar(const float *q, const uint16_t *k, int64_t k_stride, const uint16_t *vt,
                             int64_t vt_stride, int64_t head_dim, int64_t value_dim, int64_t count,
                             float scale, float *scores, float *out) {
    for (int64_t p = 0; p < count; p++) {
        const uint16_t *kp = k + p * k_stride;
        float s = 0;
        for (int64_t d = 0; d < head_dim; d++) s += h2f(kp[d]) * q[d];
        scores[p] = s * scale;
    }
    ck_softmax(scores, count);
    for (int64_t d = 0; d < value_dim; d++) {
        const uint16_t *v = vt + d * vt_stride;
        float s = 0;
        for (int64_t p = 0; p < count; p++) s += h2f(v[p]) * scores[p];
        out[d] = s;
    }
}

static inline CK_AVX2 __m256 ld_h8(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }

// [Σa0, Σa1, Σa2, Σa3] of four 8-lane vectors.
static inline CK_AVX2 __m128 hsum4(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
    __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

static inline CK_AVX2 float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static CK_AVX2 void attention_avx2(const float *q, const uint16_t *k, int64_t k_stride, const uint16_t *vt,
                                   int64_t vt_stride, int64_t head_dim, int64_t value_dim, int64_t count,
                                   float scale, float *scores, float *out) {
    const __m128 vscale = _mm_set1_ps(scale);
    // scores, four positions at a time (four independent chains, one reduction)
    int64_t p = 0;
    for (; p + 4 <= count; p += 4) {
        const uint16_t *k0 = k + p * k_stride, *k1 = k0 + k_stride, *k2 = k1 + k_stride, *k3 = k2 + k_stride;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t d = 0; d < head_dim; d += 8) {
            __m256 qv = _mm256_loadu_ps(q + d);
            a0 = _mm256_fmadd_ps(ld_h8(k0 + d), qv, a0);
            a1 = _mm256_fmadd_ps(ld_h8(k1 + d), qv, a1);
            a2 = _mm256_fmadd_ps(ld_h8(k2 + d), qv, a2);
            a3 = _mm256_fmadd_ps(ld_h8(k3 + d), qv, a3);
        }
        _mm_storeu_ps(scores + p, _mm_mul_ps(hsum4(a0, a1, a2, a3), vscale));
    }
    for (; p < count; p++) {
        const uint16_t *kp = k + p * k_stride;
        __m256 a = _mm256_setzero_ps();
        for (int64_t d = 0; d < head_dim; d += 8) a = _mm256_fmadd_ps(ld_h8(kp + d), _mm256_loadu_ps(q + d), a);
        scores[p] = hsum8(a) * scale;
    }
    ck_softmax(scores, count);
    // weighted sum of values, four dimensions at a time
    const int64_t c8 = count / 8 * 8;
    int64_t d = 0;
    for (; d + 4 <= value_dim; d += 4) {
        const uint16_t *v0 = vt + d * vt_stride, *v1 = v0 + vt_stride, *v2 = v1 + vt_stride, *v3 = v2 + vt_stride;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t i = 0; i < c8; i += 8) {
            __m256 sv = _mm256_loadu_ps(scores + i);
            a0 = _mm256_fmadd_ps(ld_h8(v0 + i), sv, a0);
            a1 = _mm256_fmadd_ps(ld_h8(v1 + i), sv, a1);
            a2 = _mm256_fmadd_ps(ld_h8(v2 + i), sv, a2);
            a3 = _mm256_fmadd_ps(ld_h8(v3 + i), sv, a3);
        }
        float r[4];
        _mm_storeu_ps(r, hsum4(a0, a1, a2, a3));
        for (int64_t i = c8; i < count; i++) {
            const float s = scores[i];
            r[0] += h2f(v0[i]) * s; r[1] += h2f(v1[i]) * s; r[2] += h2f(v2[i]) * s; r[3] += h2f(v3[i]) * s;
        }
        out[d] = r[0]; out[d + 1] = r[1]; out[d + 2] = r[2]; out[d + 3] = r[3];
    }
    for (; d < value_dim; d++) {
        const uint16_t *v = vt + d * vt_stride;
        __m256 a = _mm256_setzero_ps();
        for (int64_t i = 0; i < c8; i += 8) a = _mm256_fmadd_ps(ld_h8(v + i), _mm256_loadu_ps(scores + i), a);
        float s = hsum8(a);
        for (int64_t i = c8; i < count; i++) s += h2f(v[i]) * scores[i];
        out[d] = s;
    }
}

void ck_attention_f16(const float *q, const uint16_t *k, int64_t k_stride, const uint16_t *vt, int64_t vt_stride,
                      int64_t head_dim, int64_t value_dim, int64_t count, float scale, float *scores, float *out) {
    if (count <= 0) {
        for (int64_t d = 0; d < value_dim; d++) out[d] = 0;
        return;
    }
    if (ck_use_avx2 < 0) ck_init_cpu();
    if (ck_use_avx2 && head_dim % 8 == 0)
        attention_avx2(q, k, k_stride, vt, vt_stride, head_dim, value_dim, count, scale, scores, out);
    else
        ck_attention_f16_scalar(q, k, k_stride, vt, vt_stride, head_dim, value_dim, count, scale, scores, out);
}
