// Float vector ops for the transformer layers: norms, softmax, activations, rotary embedding.
// ggml's definitions (ggml-cpu ops.cpp: rms_norm, soft_max, gelu tanh form, rope) are the
// reference; exp is our own AVX2 polynomial (Cody–Waite reduction + degree-7 Taylor series).
#include "internal.h"
#include <immintrin.h>
#include <math.h>
#include <pthread.h>

// ---- exp --------------------------------------------------------------------------------

static inline CK_AVX2 __m256 exp256(__m256 x) {
    const __m256 hi = _mm256_set1_ps(88.7f), lo = _mm256_set1_ps(-87.3f);
    __m256 underflow = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);  // also catches -inf
    x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    // 2^n: n in [-126, 128]; split as 2^(n/2)·2^(n - n/2) so n = 128 doesn't overflow the exponent.
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, _mm256_set1_epi32(127)), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, _mm256_set1_epi32(127)), 23));
    p = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
    return _mm256_andnot_ps(underflow, p);
}

static CK_AVX2 void exp_avx2(const float *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, exp256(_mm256_loadu_ps(x + i)));
    for (; i < n; i++) y[i] = expf(x[i]);
}

void ck_exp(const float *x, float *y, int64_t n) {
    if (ck_use_avx2 < 0) ck_init_cpu();
    if (ck_use_avx2) { exp_avx2(x, y, n); return; }
    for (int64_t i = 0; i < n; i++) y[i] = expf(x[i]);
}

// ---- activations ----------------------------------------------------------------------------

// ggml_v_silu: x / (1 + e^(0 - x)), with ggml's exp.
static CK_AVX2 void silu_avx2(const float *x, float *y, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 e = ck_exp_approx_avx2(_mm256_sub_ps(_mm256_setzero_ps(), v));
        _mm256_storeu_ps(y + i, _mm256_div_ps(v, _mm256_add_ps(one, e)));
    }
    for (; i < n; i++) y[i] = x[i] / (1.0f + expf(-x[i]));
}

void ck_silu(const float *x, float *y, int64_t n) {
    if (ck_use_avx2 < 0) ck_init_cpu();
    if (ck_use_avx2) { silu_avx2(x, y, n); return; }
    for (int64_t i = 0; i < n; i++) y[i] = x[i] / (1.0f + expf(-x[i]));
}

#define GELU_C 0.7978845608028654f  // sqrt(2/pi)
#define GELU_A 0.044715f

// 0.5·x·(1 + tanh(u)) = x / (1 + e^{-2u}): the same function without the cancellation of
// 1 + tanh(u) near u → -∞.
static CK_AVX2 void gelu_avx2(const float *x, float *y, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f), m2c = _mm256_set1_ps(-2.0f * GELU_C);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 inner = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(GELU_A), v), _mm256_mul_ps(v, v), v);
        __m256 e = exp256(_mm256_mul_ps(m2c, inner));
        _mm256_storeu_ps(y + i, _mm256_div_ps(v, _mm256_add_ps(one, e)));
    }
    for (; i < n; i++) {
        float v = x[i];
        y[i] = v / (1.0f + expf(-2.0f * GELU_C * v * (1.0f + GELU_A * v * v)));
    }
}

void ck_gelu(const float *x, float *y, int64_t n) {
    if (ck_use_avx2 < 0) ck_init_cpu();
    if (ck_use_avx2) { gelu_avx2(x, y, n); return; }
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        y[i] = v / (1.0f + expf(-2.0f * GELU_C * v * (1.0f + GELU_A * v * v)));
    }
}

// ---- softmax ----------------------------------------------------------------------------------

static CK_AVX2 void softmax_avx2(float *x, int64_t n) {
    float m = -INFINITY;
    int64_t i = 0;
    __m256 vm = _mm256_set1_ps(-INFINITY);
    for (; i + 8 <= n; i += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(x + i));
    float tmp[8];
    _mm256_storeu_ps(tmp, vm);
    for (int k = 0; k < 8; k++) m = fmaxf(m, tmp[k]);
    for (; i < n; i++) m = fmaxf(m, x[i]);
    if (m == -INFINITY) {  // nothing to attend to: all zeros rather than NaN
        for (i = 0; i < n; i++) x[i] = 0;
        return;
    }
    __m256 sum = _mm256_setzero_ps();
    const __m256 mv = _mm256_set1_ps(m);
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv));
        _mm256_storeu_ps(x + i, e);
        sum = _mm256_add_ps(sum, e);
    }
    _mm256_storeu_ps(tmp, sum);
    double s = 0;
    for (int k = 0; k < 8; k++) s += tmp[k];
    for (; i < n; i++) { x[i] = expf(x[i] - m); s += x[i]; }
    const __m256 inv = _mm256_set1_ps((float)(1.0 / s));
    for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
    for (; i < n; i++) x[i] *= (float)(1.0 / s);
}

void ck_softmax(float *x, int64_t n) {
    if (ck_use_avx2 < 0) ck_init_cpu();
    if (ck_use_avx2) { softmax_avx2(x, n); return; }
    float m = -INFINITY;
    for (int64_t i = 0; i < n; i++) m = fmaxf(m, x[i]);
    if (m == -INFINITY) { for (int64_t i = 0; i < n; i++) x[i] = 0; return; }
    double s = 0;
    for (int64_t i = 0; i < n; i++) { x[i] = expf(x[i] - m); s += x[i]; }
    const float inv = (float)(1.0 / s);
    for (int64_t i = 0; i < n; i++) x[i] *= inv;
}

// ---- norms ---------------------------------------------------------------------------------

static CK_AVX2 void scale_mul_avx2(const float *x, const float *w, float *y, int64_t n, float s) {
    const __m256 sv = _mm256_set1_ps(s);
    int64_t i = 0;
    if (w) {
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), sv), _mm256_loadu_ps(w + i)));
        for (; i < n; i++) y[i] = x[i] * s * w[i];
    } else {
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), sv));
        for (; i < n; i++) y[i] = x[i] * s;
    }
}

void ck_rmsnorm(const float *x, const float *w, float *y, int64_t n, float eps) {
    if (n <= 0) return;
    if (ck_use_avx2 < 0) ck_init_cpu();
    // As ggml's rms_norm: float squares summed one after another in double (the order matters
    // for the last bit of the mean).
    double ss = 0;
    for (int64_t i = 0; i < n; i++) ss += (double)(x[i] * x[i]);
    const float scale = 1.0f / sqrtf((float)(ss / (double)n) + eps);
    if (ck_use_avx2) { scale_mul_avx2(x, w, y, n, scale); return; }
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * scale * (w ? w[i] : 1.0f);
}

void ck_layernorm(const float *x, const float *w, const float *b, float *y, int64_t n, float eps) {
    if (n <= 0) return;
    double mean = 0;
    for (int64_t i = 0; i < n; i++) mean += x[i];
    mean /= (double)n;
    double var = 0;
    for (int64_t i = 0; i < n; i++) { double d = x[i] - mean; var += d * d; }
    var /= (double)n;
    const float scale = 1.0f / sqrtf((float)var + eps);
    const float fm = (float)mean;
    for (int64_t i = 0; i < n; i++) {
        float v = (x[i] - fm) * scale;
        if (w) v *= w[i];
        if (b) v += b[i];
        y[i] = v;
    }
}

// ---- elementwise ------------------------------------------------------------------------------
// Plain loops; the AVX2 copies let the compiler vectorize them with 256-bit registers.

#define ELEMENTWISE(name, params, body)                                 \
    static CK_AVX2 void name##_avx2 params { body }                     \
    static void name##_plain params { body }

ELEMENTWISE(mul, (const float *a, const float *b, float *y, int64_t n),
            for (int64_t i = 0; i < n; i++) y[i] = a[i] * b[i];)
ELEMENTWISE(add, (const float *a, const float *b, float *y, int64_t n),
            for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];)
ELEMENTWISE(axpy, (float a, const float *x, float *y, int64_t n),
            for (int64_t i = 0; i < n; i++) y[i] += a * x[i];)
ELEMENTWISE(scale, (float *x, float s, int64_t n),
            for (int64_t i = 0; i < n; i++) x[i] *= s;)

void ck_mul(const float *a, const float *b, float *y, int64_t n) {
    if (ck_use_avx2 < 0) ck_init_cpu();
    if (ck_use_avx2) mul_avx2(a, b, y, n); else mul_plain(a, b, y, n);
}
void ck_add(const float *a, const float *b, float *y, int64_t n) {
    if (ck_use_avx2 < 0) ck_init_cpu();
    if (ck_use_avx2) add_avx2(a, b, y, n); else add_plain(a, b, y, n);
}
void ck_axpy(float a, const float *x, float *y, int64_t n) {
    if (ck_use_avx2 < 0) ck_init_cpu();
    if (ck_use_avx2) axpy_avx2(a, x, y, n); else axpy_plain(a, x, y, n);
}
void ck_scale(float *x, float s, int64_t n) {
    if (ck_use_avx2 < 0) ck_init_cpu();
    if (ck_use_avx2) scale_avx2(x, s, n); else scale_plain(x, s, n);
}
float ck_dot_f32(const float *a, const float *b, int64_t n) { return ck_vec_dot(CK_F32, n, a, b); }

// ---- rotary embedding -----------------------------------------------------------------------

void ck_rope_cache(float pos, int64_t n_dims, float freq_base, float freq_scale, float *cos_out,
                   float *sin_out) {
    const float theta_scale = powf(freq_base, -2.0f / (float)n_dims);
    float theta = pos;
    for (int64_t i = 0; i < n_dims / 2; i++) {
        const float t = freq_scale * theta;
        cos_out[i] = cosf(t);
        sin_out[i] = sinf(t);
        theta *= theta_scale;
    }
}

// As ggml's rotate_pairs compiled by GCC (-ffp-contract=fast contracts the first product of each
// line): x0·cos − x1·sin = fma(x0, cos, −(x1·sin)), x0·sin + x1·cos = fma(x0, sin, x1·cos).
#define ROPE_BODY                                                                  \
    const int64_t half = n_dims / 2;                                               \
    for (int64_t h = 0; h < n_heads; h++) {                                        \
        float *v = x + h * head_dim;                                               \
        for (int64_t i = 0; i < half; i++) {                                       \
            const int64_t a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;   \
            const float x0 = v[a], x1 = v[b];                                      \
            v[a] = fmaf(x0, c[i], -(x1 * s[i]));                                   \
            v[b] = fmaf(x0, s[i], x1 * c[i]);                                      \
        }                                                                          \
    }

static CK_AVX2 void rope_apply_avx2(float *x, int64_t n_heads, int64_t head_dim, int64_t n_dims, const float *c,
                                    const float *s, int neox) { ROPE_BODY }
static void rope_apply_plain(float *x, int64_t n_heads, int64_t head_dim, int64_t n_dims, const float *c,
                             const float *s, int neox) { ROPE_BODY }

void ck_rope_apply(float *x, int64_t n_heads, int64_t head_dim, int64_t n_dims, const float *c,
                   const float *s, int neox) {
    if (ck_use_avx2 < 0) ck_init_cpu();
    if (ck_use_avx2) rope_apply_avx2(x, n_heads, head_dim, n_dims, c, s, neox);
    else rope_apply_plain(x, n_heads, head_dim, n_dims, c, s, neox);
}

// ---- GELU as llama.cpp's CPU backend computes it ---------------------------------------------
// ggml_vec_gelu_f32 / ggml_vec_geglu_f32 with GGML_GELU_FP16 (on by default): x <= -10 gives 0,
// x >= 10 gives x, anything else is rounded to f16 and looked up in a table holding, for every
// f16 value f, f16(ggml_gelu_f32(f)) (ggml-cpu.c builds it once at init). ggml_gelu_f32 is
// 0.5f*x*(1.0f + tanhf(SQRT_2_OVER_PI*x*(1.0f + GELU_COEF_A*x*x))) in f32; built with FMA the
// compiler fuses the inner 1 + a·x·x into fma(a·x, x, 1), which we write out so the table does
// not depend on how this file is compiled. scripts/ggml-kernel-check compares the whole table
// with the peer's.
#define GGML_SQRT_2_OVER_PI 0.79788456080286535587989211986876f
static uint16_t gelu_f16_table[65536];
static pthread_once_t gelu_f16_once = PTHREAD_ONCE_INIT;

static void gelu_f16_table_init(void) {
    for (int i = 0; i < 65536; i++) {
        const float f = ck_f16_to_f32((uint16_t)i);
        const float inner = fmaf(GELU_A * f, f, 1.0f);
        const float u = GGML_SQRT_2_OVER_PI * f * inner;
        gelu_f16_table[i] = ck_f32_to_f16(0.5f * f * (1.0f + tanhf(u)));
    }
}

uint16_t ck_gelu_f16_table_entry(uint16_t h) {
    pthread_once(&gelu_f16_once, gelu_f16_table_init);
    return gelu_f16_table[h];
}

static CK_AVX2 void gelu_table_avx2(const float *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        const __m128i h = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        uint16_t hs[8], g[8];
        _mm_storeu_si128((__m128i *)hs, h);
        for (int k = 0; k < 8; k++) g[k] = gelu_f16_table[hs[k]];
        __m256 r = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)g));
        // x <= -10 → 0, x >= 10 → x
        r = _mm256_andnot_ps(_mm256_cmp_ps(v, _mm256_set1_ps(-10.0f), _CMP_LE_OQ), r);
        r = _mm256_blendv_ps(r, v, _mm256_cmp_ps(v, _mm256_set1_ps(10.0f), _CMP_GE_OQ));
        _mm256_storeu_ps(y + i, r);
    }
    for (; i < n; i++) {
        const float v = x[i];
        y[i] = v <= -10.0f ? 0.0f : v >= 10.0f ? v : _cvtsh_ss(gelu_f16_table[_cvtss_sh(v, 0)]);
    }
}

void ck_gelu_f16_table(const float *x, float *y, int64_t n) {
    pthread_once(&gelu_f16_once, gelu_f16_table_init);
    if (ck_use_avx2 < 0) ck_init_cpu();
    if (ck_use_avx2) { gelu_table_avx2(x, y, n); return; }
    for (int64_t i = 0; i < n; i++) {
        const float v = x[i];
        y[i] = v <= -10.0f ? 0.0f : v >= 10.0f ? v : ck_f16_to_f32(gelu_f16_table[ck_f32_to_f16(v)]);
    }
}
