// Prefill attention: up to 64 consecutive query rows of one head at a time, with the arithmetic
// llama.cpp's CPU backend uses for a batch of 64 or more queries
// (ggml_compute_forward_flash_attn_ext_tiled). Per query row:
//   - keys and values are widened from f16 to f32; the query stays f32;
//   - each score is a chain of fused multiply-adds over the head dimension, in order, then
//     multiplied by the scale;
//   - keys go in tiles of 64 aligned to position 0; a tile's maximum updates the running
//     maximum M (rescaling the accumulated values and sum by expf(Mold - Mnew), libm's expf);
//   - the tile's exponentials use ggml's vector exp approximation, in groups of 8 keys, each
//     group summed as a horizontal add and added to the running sum in double;
//   - values accumulate in f32 as a chain of fused multiply-adds over the tile's keys in order;
//   - at the end the accumulated row is multiplied by 1/S.
// Each row's result depends only on its own query and the visible keys, so how rows are grouped
// into tiles or split over threads never changes it. Keys a row cannot see contribute exactly
// zero (their weight is exp(-inf) = 0), so they are skipped rather than multiplied by zero.
#include "internal.h"
#include "ckattention.h"
#include <immintrin.h>
#include <math.h>

#define KVT 64   // keys per tile, as GGML_FA_TILE_KV
#define QT 64    // query rows per call, as GGML_FA_TILE_Q

size_t ck_attention_tiled_scratch_floats(int64_t dk, int64_t dv) {
    // transposed K tile, V tile, scores, accumulators
    return (size_t)(dk * KVT + KVT * dv + QT * KVT + QT * dv);
}

// Exponentials of x[0..63] - max in place; returns their sum: groups of 8 folded as
// ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)), each group's float added in double.
static double softmax_tile_scalar(float *x, float max) {
    double sum = 0;
    for (int g = 0; g < KVT; g += 8) {
        float v[8];
        for (int l = 0; l < 8; l++) x[g + l] = v[l] = ck_exp_approx_scalar(x[g + l] - max);
        float t0 = v[0] + v[4], t1 = v[1] + v[5], t2 = v[2] + v[6], t3 = v[3] + v[7];
        sum += (double)((t0 + t2) + (t1 + t3));
    }
    return sum;
}

static CK_AVX2 double softmax_tile_avx2(float *x, float max) {
    double sum = 0;
    const __m256 vm = _mm256_set1_ps(max);
    for (int g = 0; g < KVT; g += 8) {
        __m256 v = ck_exp_approx_avx2(_mm256_sub_ps(_mm256_loadu_ps(x + g), vm));
        _mm256_storeu_ps(x + g, v);
        __m128 s = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        s = _mm_add_ss(s, _mm_movehdup_ps(s));
        sum += (double)_mm_cvtss_f32(s);
    }
    return sum;
}

// ---- the tile loop --------------------------------------------------------------------------

typedef struct {
    const float *q; size_t q_stride; int64_t nq, dk, dv;
    const uint16_t *k; size_t k_stride; const uint16_t *v; size_t v_stride;
    int64_t pos0, window; float scale;
} tile_args;

static inline int64_t first_visible(const tile_args *a, int64_t pos) {
    return a->window > 0 && pos - a->window + 1 > 0 ? pos - a->window + 1 : 0;
}

// Scores of rows [r0, r1) against the tile's keys [0, nk): KQ[r][t] = Σ_d q[r][d]·K[t][d] as a
// fused multiply-add chain in d order, times scale. Kt is the tile transposed: Kt[d·KVT + t].
static void scores_scalar(const tile_args *a, const float *Kt, int64_t nk, float *KQ) {
    for (int64_t r = 0; r < a->nq; r++) {
        const float *qr = a->q + (size_t)r * a->q_stride;
        for (int64_t t = 0; t < nk; t++) {
            float s = 0.0f;
            for (int64_t d = 0; d < a->dk; d++) s = fmaf(Kt[d * KVT + t], qr[d], s);
            KQ[r * KVT + t] = s * a->scale;
        }
    }
}

static CK_AVX2 void scores_avx2(const tile_args *a, const float *Kt, int64_t nk, float *KQ) {
    // 4 rows × 16 keys per block: 8 accumulators, each lane its own (row, key) chain.
    const __m256 vs = _mm256_set1_ps(a->scale);
    const int64_t nk16 = (nk + 15) / 16 * 16;  // Kt is zero-padded to 64 keys
    int64_t r = 0;
    for (; r < a->nq; r += 4) {
        const int rows = a->nq - r < 4 ? (int)(a->nq - r) : 4;
        const float *qr[4];
        for (int i = 0; i < 4; i++) qr[i] = a->q + (size_t)(r + (i < rows ? i : 0)) * a->q_stride;
        for (int64_t t = 0; t < nk16; t += 16) {
            __m256 acc[4][2];
            for (int i = 0; i < 4; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
            for (int64_t d = 0; d < a->dk; d++) {
                __m256 k0 = _mm256_loadu_ps(Kt + d * KVT + t), k1 = _mm256_loadu_ps(Kt + d * KVT + t + 8);
                for (int i = 0; i < 4; i++) {
                    __m256 qv = _mm256_broadcast_ss(qr[i] + d);
                    acc[i][0] = _mm256_fmadd_ps(k0, qv, acc[i][0]);
                    acc[i][1] = _mm256_fmadd_ps(k1, qv, acc[i][1]);
                }
            }
            for (int i = 0; i < rows; i++) {
                _mm256_storeu_ps(KQ + (r + i) * KVT + t, _mm256_mul_ps(acc[i][0], vs));
                _mm256_storeu_ps(KQ + (r + i) * KVT + t + 8, _mm256_mul_ps(acc[i][1], vs));
            }
        }
    }
}

// VKQ[r][j] += Σ_t KQ[r][t]·V[t][j], a fused multiply-add chain over t in order, for t in
// [t0[r], t1[r]) (the row's visible keys in this tile).
static void accumulate_scalar(const tile_args *a, const float *KQ, const float *V32, const int64_t *t0,
                              const int64_t *t1, float *VKQ) {
    for (int64_t r = 0; r < a->nq; r++)
        for (int64_t j = 0; j < a->dv; j++) {
            float acc = VKQ[r * a->dv + j];
            for (int64_t t = t0[r]; t < t1[r]; t++) acc = fmaf(V32[t * a->dv + j], KQ[r * KVT + t], acc);
            VKQ[r * a->dv + j] = acc;
        }
}

static CK_AVX2 void accumulate_avx2(const tile_args *a, const float *KQ, const float *V32, const int64_t *t0,
                                    const int64_t *t1, float *VKQ) {
    // Two rows at a time share each V load: 8 independent chains keep both FMA ports busy. Keys
    // one row of the pair cannot see are simply not added to that row.
    const int64_t dv = a->dv, dv32 = dv / 32 * 32;
    int64_t r = 0;
    for (; r + 2 <= a->nq; r += 2) {
        float *o0 = VKQ + r * dv, *o1 = o0 + dv;
        const float *p0 = KQ + r * KVT, *p1 = p0 + KVT;
        const int64_t lo = t0[r] < t0[r + 1] ? t0[r] : t0[r + 1];
        const int64_t hi = t1[r] > t1[r + 1] ? t1[r] : t1[r + 1];
        for (int64_t j = 0; j < dv32; j += 32) {
            __m256 c[2][4];
            for (int i = 0; i < 4; i++) { c[0][i] = _mm256_loadu_ps(o0 + j + 8 * i); c[1][i] = _mm256_loadu_ps(o1 + j + 8 * i); }
            for (int64_t t = lo; t < hi; t++) {
                const float *vr = V32 + t * dv + j;
                const __m256 v0 = _mm256_loadu_ps(vr), v1 = _mm256_loadu_ps(vr + 8);
                const __m256 v2 = _mm256_loadu_ps(vr + 16), v3 = _mm256_loadu_ps(vr + 24);
                if (t >= t0[r] && t < t1[r]) {
                    const __m256 pv = _mm256_broadcast_ss(p0 + t);
                    c[0][0] = _mm256_fmadd_ps(v0, pv, c[0][0]); c[0][1] = _mm256_fmadd_ps(v1, pv, c[0][1]);
                    c[0][2] = _mm256_fmadd_ps(v2, pv, c[0][2]); c[0][3] = _mm256_fmadd_ps(v3, pv, c[0][3]);
                }
                if (t >= t0[r + 1] && t < t1[r + 1]) {
                    const __m256 pv = _mm256_broadcast_ss(p1 + t);
                    c[1][0] = _mm256_fmadd_ps(v0, pv, c[1][0]); c[1][1] = _mm256_fmadd_ps(v1, pv, c[1][1]);
                    c[1][2] = _mm256_fmadd_ps(v2, pv, c[1][2]); c[1][3] = _mm256_fmadd_ps(v3, pv, c[1][3]);
                }
            }
            for (int i = 0; i < 4; i++) { _mm256_storeu_ps(o0 + j + 8 * i, c[0][i]); _mm256_storeu_ps(o1 + j + 8 * i, c[1][i]); }
        }
        for (int k = 0; k < 2; k++) {
            float *o = VKQ + (r + k) * dv;
            const float *p = KQ + (r + k) * KVT;
            for (int64_t j = dv32; j < dv; j++) {
                float acc = o[j];
                for (int64_t t = t0[r + k]; t < t1[r + k]; t++) acc = fmaf(V32[t * dv + j], p[t], acc);
                o[j] = acc;
            }
        }
    }
    if (r < a->nq) {  // odd row count: the last row alone
        float *o = VKQ + r * dv;
        const float *p = KQ + r * KVT;
        for (int64_t j = 0; j < dv; j++) {
            float acc = o[j];
            for (int64_t t = t0[r]; t < t1[r]; t++) acc = fmaf(V32[t * dv + j], p[t], acc);
            o[j] = acc;
        }
    }
}

// K tile transposed (Kt[d·KVT + t], zero past nk) and V tile, widened from f16.
static void load_tile_scalar(const tile_args *a, int64_t ic, int64_t nk, float *Kt, float *V32) {
    for (int64_t d = 0; d < a->dk; d++)
        for (int64_t t = 0; t < KVT; t++)
            Kt[d * KVT + t] = t < nk ? ck_f16_to_f32(a->k[(size_t)(ic + t) * a->k_stride + d]) : 0.0f;
    for (int64_t t = 0; t < nk; t++) {
        const uint16_t *vr = a->v + (size_t)(ic + t) * a->v_stride;
        for (int64_t j = 0; j < a->dv; j++) V32[t * a->dv + j] = ck_f16_to_f32(vr[j]);
    }
}

static CK_AVX2 void load_tile_avx2(const tile_args *a, int64_t ic, int64_t nk, float *Kt, float *V32) {
    const int64_t dk = a->dk, dv = a->dv;
    if (dk % 8 != 0 || dv % 8 != 0) { load_tile_scalar(a, ic, nk, Kt, V32); return; }
    // 8 keys × 8 dimensions at a time: widen the 8 rows, transpose the 8×8 block, store.
    for (int64_t t = 0; t < KVT; t += 8) {
        for (int64_t d = 0; d < dk; d += 8) {
            __m256 r[8];
            for (int i = 0; i < 8; i++)
                r[i] = t + i < nk ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a->k + (size_t)(ic + t + i) * a->k_stride + d)))
                                  : _mm256_setzero_ps();
            __m256 u0 = _mm256_unpacklo_ps(r[0], r[1]), u1 = _mm256_unpackhi_ps(r[0], r[1]);
            __m256 u2 = _mm256_unpacklo_ps(r[2], r[3]), u3 = _mm256_unpackhi_ps(r[2], r[3]);
            __m256 u4 = _mm256_unpacklo_ps(r[4], r[5]), u5 = _mm256_unpackhi_ps(r[4], r[5]);
            __m256 u6 = _mm256_unpacklo_ps(r[6], r[7]), u7 = _mm256_unpackhi_ps(r[6], r[7]);
            __m256 s0 = _mm256_shuffle_ps(u0, u2, 0x44), s1 = _mm256_shuffle_ps(u0, u2, 0xEE);
            __m256 s2 = _mm256_shuffle_ps(u1, u3, 0x44), s3 = _mm256_shuffle_ps(u1, u3, 0xEE);
            __m256 s4 = _mm256_shuffle_ps(u4, u6, 0x44), s5 = _mm256_shuffle_ps(u4, u6, 0xEE);
            __m256 s6 = _mm256_shuffle_ps(u5, u7, 0x44), s7 = _mm256_shuffle_ps(u5, u7, 0xEE);
            float *o = Kt + d * KVT + t;
            _mm256_storeu_ps(o + 0 * KVT, _mm256_permute2f128_ps(s0, s4, 0x20));
            _mm256_storeu_ps(o + 1 * KVT, _mm256_permute2f128_ps(s1, s5, 0x20));
            _mm256_storeu_ps(o + 2 * KVT, _mm256_permute2f128_ps(s2, s6, 0x20));
            _mm256_storeu_ps(o + 3 * KVT, _mm256_permute2f128_ps(s3, s7, 0x20));
            _mm256_storeu_ps(o + 4 * KVT, _mm256_permute2f128_ps(s0, s4, 0x31));
            _mm256_storeu_ps(o + 5 * KVT, _mm256_permute2f128_ps(s1, s5, 0x31));
            _mm256_storeu_ps(o + 6 * KVT, _mm256_permute2f128_ps(s2, s6, 0x31));
            _mm256_storeu_ps(o + 7 * KVT, _mm256_permute2f128_ps(s3, s7, 0x31));
        }
    }
    for (int64_t t = 0; t < nk; t++) {
        const uint16_t *vr = a->v + (size_t)(ic + t) * a->v_stride;
        for (int64_t j = 0; j < dv; j += 8)
            _mm256_storeu_ps(V32 + t * dv + j, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(vr + j))));
    }
}

static CK_AVX2 void scale_row_avx2(float *x, int64_t n, float v) {
    const __m256 vv = _mm256_set1_ps(v);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) _mm256_storeu_ps(x + j, _mm256_mul_ps(_mm256_loadu_ps(x + j), vv));
    for (; j < n; j++) x[j] *= v;
}

static void scale_row(float *x, int64_t n, float v, int simd) {
    if (simd) { scale_row_avx2(x, n, v); return; }
    for (int64_t j = 0; j < n; j++) x[j] *= v;
}

static void attention_tiled(const tile_args *a, float *out, size_t out_stride, float *scratch, int simd) {
    const int64_t dk = a->dk, dv = a->dv, nq = a->nq;
    float *Kt = scratch, *V32 = Kt + dk * KVT, *KQ = V32 + KVT * dv, *VKQ = KQ + QT * KVT;
    float M[QT], S[QT];
    int64_t t0[QT], t1[QT];
    for (int64_t r = 0; r < nq; r++) { M[r] = -INFINITY; S[r] = 0.0f; }
    memset(VKQ, 0, sizeof(float) * (size_t)(nq * dv));
    const int64_t last = a->pos0 + nq - 1;
    for (int64_t ic = first_visible(a, a->pos0) / KVT * KVT; ic <= last; ic += KVT) {
        const int64_t nk = ic + KVT <= last + 1 ? KVT : last + 1 - ic;  // keys the rows may see here
        if (simd) load_tile_avx2(a, ic, nk, Kt, V32); else load_tile_scalar(a, ic, nk, Kt, V32);
        if (simd) scores_avx2(a, Kt, nk, KQ); else scores_scalar(a, Kt, nk, KQ);
        for (int64_t r = 0; r < nq; r++) {
            const int64_t pos = a->pos0 + r;
            float *row = KQ + r * KVT;
            int64_t lo = first_visible(a, pos) - ic, hi = pos - ic + 1;  // visible: [lo, hi)
            if (lo < 0) lo = 0;
            if (hi > nk) hi = nk;
            t0[r] = lo; t1[r] = lo < hi ? hi : lo;
            for (int64_t t = 0; t < KVT; t++) if (t < lo || t >= hi) row[t] = -INFINITY;
            float tmax = -INFINITY;
            for (int64_t t = 0; t < KVT; t++) tmax = fmaxf(tmax, row[t]);
            if (tmax == -INFINITY) { t1[r] = t0[r]; continue; }
            const float Mnew = fmaxf(M[r], tmax);
            if (Mnew > M[r]) {
                const float ms = expf(M[r] - Mnew);
                scale_row(VKQ + r * dv, dv, ms, simd);
                S[r] *= ms;
            }
            M[r] = Mnew;
            S[r] = (float)((double)S[r] + (simd ? softmax_tile_avx2(row, Mnew) : softmax_tile_scalar(row, Mnew)));
        }
        if (simd) accumulate_avx2(a, KQ, V32, t0, t1, VKQ); else accumulate_scalar(a, KQ, V32, t0, t1, VKQ);
    }
    for (int64_t r = 0; r < nq; r++) {
        const float inv = S[r] == 0.0f ? 0.0f : 1.0f / S[r];
        memcpy(out + (size_t)r * out_stride, VKQ + r * dv, sizeof(float) * (size_t)dv);
        scale_row(out + (size_t)r * out_stride, dv, inv, simd);
    }
}

static int tiled_args_ok(int64_t nq, int64_t dk, int64_t dv) {
    return nq >= 1 && nq <= QT && dk > 0 && dv > 0;
}

void ck_attention_tiled(const float *q, size_t q_stride, int64_t nq, int64_t dk, int64_t dv,
                        const uint16_t *k, size_t k_stride, const uint16_t *v, size_t v_stride,
                        int64_t pos0, int64_t window, float scale, float *out, size_t out_stride, float *scratch) {
    if (!tiled_args_ok(nq, dk, dv)) return;
    if (ck_use_avx2 < 0) ck_init_cpu();
    tile_args a = { q, q_stride, nq, dk, dv, k, k_stride, v, v_stride, pos0, window, scale };
    attention_tiled(&a, out, out_stride, scratch, ck_use_avx2);
}

void ck_attention_tiled_scalar(const float *q, size_t q_stride, int64_t nq, int64_t dk, int64_t dv,
                               const uint16_t *k, size_t k_stride, const uint16_t *v, size_t v_stride,
                               int64_t pos0, int64_t window, float scale, float *out, size_t out_stride, float *scratch) {
    if (!tiled_args_ok(nq, dk, dv)) return;
    tile_args a = { q, q_stride, nq, dk, dv, k, k_stride, v, v_stride, pos0, window, scale };
    attention_tiled(&a, out, out_stride, scratch, 0);
}

float ck_exp_approx(float x) { return ck_exp_approx_scalar(x); }
