// Activation quantization, scalar dequantization and the scalar dot products.
// Rules follow ggml-quants.c (quantize_row_q8_0_ref, quantize_row_q8_1_ref,
// quantize_row_q8_K_ref, dequantize_row_*); the code is our own.
#include "internal.h"
#include <math.h>

int ck_use_avx2 = -1;
static int ck_cpu_avx2 = -1;

void ck_init_cpu(void) {
    if (ck_cpu_avx2 < 0) {
        __builtin_cpu_init();
        ck_cpu_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                      __builtin_cpu_supports("f16c");
        ck_use_avx2 = ck_cpu_avx2;
    }
}

int ck_cpu_has_avx2(void) { ck_init_cpu(); return ck_cpu_avx2; }
void ck_set_simd_enabled(int enabled) { ck_init_cpu(); ck_use_avx2 = enabled && ck_cpu_avx2; }
int ck_simd_enabled(void) { ck_init_cpu(); return ck_use_avx2; }

float ck_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else {  // subnormal: mant * 2^-24
            float f = (float)mant * (1.0f / 16777216.0f);
            memcpy(&bits, &f, 4);
            bits |= sign;
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    }
    float out;
    memcpy(&out, &bits, 4);
    return out;
}

uint16_t ck_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return sign | 0x7e00;        // NaN
    if (ax >= 0x477ff000u) return sign | 0x7c00;       // rounds to infinity
    if (ax < 0x38800000u) {                            // half subnormal (or zero)
        float af;
        memcpy(&af, &ax, 4);
        return sign | (uint16_t)lrintf(af * 16777216.0f);  // exact scaling, RNE rounding
    }
    uint32_t h = ((((ax >> 23) - 112) << 10)) | ((ax & 0x7fffff) >> 13);
    uint32_t rem = ax & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return sign | (uint16_t)h;
}

int64_t ck_block_size(int type) {
    switch (type) {
    case CK_F32: case CK_F16: case CK_BF16: return 1;
    case CK_Q4_0: case CK_Q4_1: case CK_Q5_0: case CK_Q5_1: case CK_Q8_0: case CK_Q8_1: return 32;
    case CK_Q2_K: case CK_Q3_K: case CK_Q4_K: case CK_Q5_K: case CK_Q6_K: case CK_Q8_K: return 256;
    default: return 0;
    }
}

static size_t block_bytes(int type) {
    switch (type) {
    case CK_F32: return 4;
    case CK_F16: case CK_BF16: return 2;
    case CK_Q4_0: return sizeof(blk_q4_0);
    case CK_Q4_1: return sizeof(blk_q4_1);
    case CK_Q5_0: return sizeof(blk_q5_0);
    case CK_Q5_1: return sizeof(blk_q5_1);
    case CK_Q8_0: return sizeof(blk_q8_0);
    case CK_Q8_1: return sizeof(blk_q8_1);
    case CK_Q2_K: return sizeof(blk_q2_K);
    case CK_Q3_K: return sizeof(blk_q3_K);
    case CK_Q4_K: return sizeof(blk_q4_K);
    case CK_Q5_K: return sizeof(blk_q5_K);
    case CK_Q6_K: return sizeof(blk_q6_K);
    case CK_Q8_K: return sizeof(blk_q8_K);
    default: return 0;
    }
}

size_t ck_row_bytes(int type, int64_t n) {
    int64_t bs = ck_block_size(type);
    if (bs == 0 || n < 0 || n % bs != 0) return 0;
    return (size_t)(n / bs) * block_bytes(type);
}

int ck_vec_dot_type(int type) {
    switch (type) {
    case CK_F32: case CK_F16: case CK_BF16: return CK_F32;
    case CK_Q4_0: case CK_Q5_0: case CK_Q8_0: return CK_Q8_0;
    case CK_Q4_1: case CK_Q5_1: return CK_Q8_1;
    case CK_Q2_K: case CK_Q3_K: case CK_Q4_K: case CK_Q5_K: case CK_Q6_K: return CK_Q8_K;
    default: return -1;
    }
}

// ---- activation quantization (scalar) ------------------------------------------------------

void ck_quantize_row_q8_0_scalar(const float *x, void *vy, int64_t n) {
    blk_q8_0 *y = vy;
    for (int64_t i = 0; i < n / QK; i++, x += QK) {
        float amax = 0;
        for (int j = 0; j < QK; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.0f;
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;  // ggml's x86 rule (see dots_avx2.c)
        y[i].d = ck_f32_to_f16(d);
        for (int j = 0; j < QK; j++) y[i].qs[j] = (int8_t)nearbyintf(x[j] * id);
    }
}

void ck_quantize_row_q8_1_scalar(const float *x, void *vy, int64_t n) {
    blk_q8_1 *y = vy;
    for (int64_t i = 0; i < n / QK; i++, x += QK) {
        float amax = 0;
        for (int j = 0; j < QK; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.0f;
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;  // ggml's x86 rule (see dots_avx2.c)
        y[i].d = ck_f32_to_f16(d);
        int sum = 0;
        for (int j = 0; j < QK; j++) {
            y[i].qs[j] = (int8_t)nearbyintf(x[j] * id);
            sum += y[i].qs[j];
        }
        y[i].s = ck_f32_to_f16(d * (float)sum);
    }
}

// ggml's nearest_int: round half to even (the float "magic number" trick) for |f| < 2^22.
static inline int nearest_int(float f) {
    float v = f + 12582912.f;
    int i;
    memcpy(&i, &v, 4);
    return (i & 0x007fffff) - 0x00400000;
}

void ck_quantize_row_q8_K_scalar(const float *x, void *vy, int64_t n) {
    blk_q8_K *y = vy;
    for (int64_t i = 0; i < n / QKK; i++, x += QKK) {
        float max = 0, amax = 0;
        for (int j = 0; j < QKK; j++) {
            float ax = fabsf(x[j]);
            if (ax > amax) { amax = ax; max = x[j]; }
        }
        if (amax == 0) {
            memset(&y[i], 0, sizeof(y[i]));
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < QKK; j++) {
            int v = nearest_int(iscale * x[j]);
            y[i].qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int j = 0; j < 16; j++) s += y[i].qs[16 * g + j];
            y[i].bsums[g] = (int16_t)s;
        }
        y[i].d = 1 / iscale;
    }
}

// ---- scalar dequantization (reference) -----------------------------------------------------

// Unpacks one q3_K block's 16 six-bit scales (bias 32 removed by caller).
static void q3k_scales(const uint8_t *s, int *out) {
    for (int i = 0; i < 16; i++) {
        int low = i < 8 ? (s[i] & 0xF) : (s[i - 8] >> 4);
        int high = (s[8 + (i % 4)] >> (2 * (i / 4))) & 3;
        out[i] = (low | (high << 4)) - 32;
    }
}

// Integer codes of one K-quant block in element order, with per-16 (q2/q3/q6) or per-32
// (q4/q5) scales and mins, so every K type's scalar dot is the same loop.
typedef struct { int8_t q[256]; int scale[16]; int min[16]; float d, dmin; int group; } kdecoded;

static void decode_k(int type, const void *vb, kdecoded *o) {
    memset(o->min, 0, sizeof(o->min));
    switch (type) {
    case CK_Q2_K: {
        const blk_q2_K *b = vb;
        o->d = h2f(b->d); o->dmin = h2f(b->dmin); o->group = 16;
        for (int g = 0; g < 16; g++) { o->scale[g] = b->scales[g] & 0xF; o->min[g] = b->scales[g] >> 4; }
        for (int n = 0; n < 2; n++)
            for (int j = 0; j < 4; j++)
                for (int l = 0; l < 32; l++)
                    o->q[128 * n + 32 * j + l] = (int8_t)((b->qs[32 * n + l] >> (2 * j)) & 3);
        break;
    }
    case CK_Q3_K: {
        const blk_q3_K *b = vb;
        o->d = h2f(b->d); o->dmin = 0; o->group = 16;
        q3k_scales(b->scales, o->scale);
        for (int n = 0; n < 2; n++)
            for (int j = 0; j < 4; j++) {
                uint8_t m = (uint8_t)(1u << (4 * n + j));
                for (int l = 0; l < 32; l++) {
                    int q = (b->qs[32 * n + l] >> (2 * j)) & 3;
                    o->q[128 * n + 32 * j + l] = (int8_t)(q - ((b->hmask[l] & m) ? 0 : 4));
                }
            }
        break;
    }
    case CK_Q4_K: case CK_Q5_K: {
        const uint8_t *scales, *qs, *qh = NULL;
        if (type == CK_Q4_K) {
            const blk_q4_K *b = vb;
            o->d = h2f(b->d); o->dmin = h2f(b->dmin); scales = b->scales; qs = b->qs;
        } else {
            const blk_q5_K *b = vb;
            o->d = h2f(b->d); o->dmin = h2f(b->dmin); scales = b->scales; qs = b->qs; qh = b->qh;
        }
        o->group = 32;
        for (int j = 0; j < 8; j++) {
            uint8_t sc, mn;
            ck_scale_min_k4(j, scales, &sc, &mn);
            o->scale[j] = sc; o->min[j] = mn;
        }
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) {
                int lo = qs[32 * c + l] & 0xF, hi = qs[32 * c + l] >> 4;
                if (qh) {
                    lo |= ((qh[l] >> (2 * c)) & 1) << 4;
                    hi |= ((qh[l] >> (2 * c + 1)) & 1) << 4;
                }
                o->q[64 * c + l] = (int8_t)lo;
                o->q[64 * c + 32 + l] = (int8_t)hi;
            }
        break;
    }
    case CK_Q6_K: {
        const blk_q6_K *b = vb;
        o->d = h2f(b->d); o->dmin = 0; o->group = 16;
        for (int g = 0; g < 16; g++) o->scale[g] = b->scales[g];
        for (int n = 0; n < 2; n++) {
            const uint8_t *ql = b->ql + 64 * n, *qh = b->qh + 32 * n;
            int8_t *q = o->q + 128 * n;
            for (int l = 0; l < 32; l++) {
                q[l] = (int8_t)(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
                q[l + 32] = (int8_t)(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
                q[l + 64] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
                q[l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
            }
        }
        break;
    }
    }
}

int ck_dequantize_row(int type, const void *vx, float *y, int64_t n) {
    int64_t bs = ck_block_size(type);
    if (bs == 0 || n % bs != 0) return 0;
    const uint8_t *p = vx;
    size_t bb = block_bytes(type);
    for (int64_t i = 0; i < n / bs; i++, p += bb, y += bs) {
        switch (type) {
        case CK_F32: memcpy(y, p, 4); break;
        case CK_F16: { uint16_t h; memcpy(&h, p, 2); y[0] = h2f(h); break; }
        case CK_BF16: { uint16_t h; memcpy(&h, p, 2); y[0] = bf2f(h); break; }
        case CK_Q4_0: {
            const blk_q4_0 *b = (const void *)p; float d = h2f(b->d);
            for (int j = 0; j < 16; j++) {
                y[j] = ((b->qs[j] & 0xF) - 8) * d;
                y[j + 16] = ((b->qs[j] >> 4) - 8) * d;
            }
            break;
        }
        case CK_Q4_1: {
            const blk_q4_1 *b = (const void *)p; float d = h2f(b->d), m = h2f(b->m);
            for (int j = 0; j < 16; j++) {
                y[j] = (b->qs[j] & 0xF) * d + m;
                y[j + 16] = (b->qs[j] >> 4) * d + m;
            }
            break;
        }
        case CK_Q5_0: case CK_Q5_1: {
            const uint8_t *qs, *qhp; float d, m = 0; int off;
            if (type == CK_Q5_0) {
                const blk_q5_0 *b = (const void *)p; d = h2f(b->d); qs = b->qs; qhp = b->qh; off = 16;
            } else {
                const blk_q5_1 *b = (const void *)p; d = h2f(b->d); m = h2f(b->m); qs = b->qs; qhp = b->qh; off = 0;
            }
            uint32_t qh; memcpy(&qh, qhp, 4);
            for (int j = 0; j < 16; j++) {
                int x0 = (qs[j] & 0xF) | (((qh >> j) << 4) & 0x10);
                int x1 = (qs[j] >> 4) | ((qh >> (j + 12)) & 0x10);
                y[j] = (x0 - off) * d + m;
                y[j + 16] = (x1 - off) * d + m;
            }
            break;
        }
        case CK_Q8_0: {
            const blk_q8_0 *b = (const void *)p; float d = h2f(b->d);
            for (int j = 0; j < 32; j++) y[j] = b->qs[j] * d;
            break;
        }
        case CK_Q8_1: {
            const blk_q8_1 *b = (const void *)p; float d = h2f(b->d);
            for (int j = 0; j < 32; j++) y[j] = b->qs[j] * d;
            break;
        }
        case CK_Q8_K: {
            const blk_q8_K *b = (const void *)p;
            for (int j = 0; j < 256; j++) y[j] = b->qs[j] * b->d;
            break;
        }
        default: {
            kdecoded k;
            decode_k(type, p, &k);
            for (int j = 0; j < 256; j++) {
                int g = j / k.group;
                y[j] = k.d * (float)k.scale[g] * k.q[j] - k.dmin * (float)k.min[g];
            }
        }
        }
    }
    return 1;
}

// ---- scalar dot products ---------------------------------------------------------------

static float dot_q4_0_scalar(int64_t n, const blk_q4_0 *x, const blk_q8_0 *y) {
    float sum = 0;
    for (int64_t i = 0; i < n / QK; i++) {
        int s = 0;
        for (int j = 0; j < 16; j++)
            s += ((x[i].qs[j] & 0xF) - 8) * y[i].qs[j] + ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + 16];
        sum += (float)s * h2f(x[i].d) * h2f(y[i].d);
    }
    return sum;
}

static float dot_q4_1_scalar(int64_t n, const blk_q4_1 *x, const blk_q8_1 *y) {
    float sum = 0;
    for (int64_t i = 0; i < n / QK; i++) {
        int s = 0;
        for (int j = 0; j < 16; j++)
            s += (x[i].qs[j] & 0xF) * y[i].qs[j] + (x[i].qs[j] >> 4) * y[i].qs[j + 16];
        sum += (float)s * h2f(x[i].d) * h2f(y[i].d) + h2f(x[i].m) * h2f(y[i].s);
    }
    return sum;
}

static float dot_q5_scalar(int64_t n, const void *vx, const void *vy, int is_q5_1) {
    float sum = 0;
    for (int64_t i = 0; i < n / QK; i++) {
        const uint8_t *qs, *qhp; float d, m = 0; int off;
        if (!is_q5_1) {
            const blk_q5_0 *b = (const blk_q5_0 *)vx + i; d = h2f(b->d); qs = b->qs; qhp = b->qh; off = 16;
        } else {
            const blk_q5_1 *b = (const blk_q5_1 *)vx + i; d = h2f(b->d); m = h2f(b->m); qs = b->qs; qhp = b->qh; off = 0;
        }
        const int8_t *yq; float yd, ys = 0;
        if (!is_q5_1) { const blk_q8_0 *b = (const blk_q8_0 *)vy + i; yq = b->qs; yd = h2f(b->d); }
        else { const blk_q8_1 *b = (const blk_q8_1 *)vy + i; yq = b->qs; yd = h2f(b->d); ys = h2f(b->s); }
        uint32_t qh; memcpy(&qh, qhp, 4);
        int s = 0;
        for (int j = 0; j < 16; j++) {
            int x0 = ((qs[j] & 0xF) | (((qh >> j) << 4) & 0x10)) - off;
            int x1 = ((qs[j] >> 4) | ((qh >> (j + 12)) & 0x10)) - off;
            s += x0 * yq[j] + x1 * yq[j + 16];
        }
        sum += (float)s * d * yd + m * ys;
    }
    return sum;
}

static float dot_q8_0_scalar(int64_t n, const blk_q8_0 *x, const blk_q8_0 *y) {
    float sum = 0;
    for (int64_t i = 0; i < n / QK; i++) {
        int s = 0;
        for (int j = 0; j < 32; j++) s += x[i].qs[j] * y[i].qs[j];
        sum += (float)s * h2f(x[i].d) * h2f(y[i].d);
    }
    return sum;
}

static float dot_k_scalar(int type, int64_t n, const void *vx, const blk_q8_K *y) {
    const size_t bb = block_bytes(type);
    float sum = 0;
    kdecoded k;
    for (int64_t i = 0; i < n / QKK; i++) {
        decode_k(type, (const uint8_t *)vx + i * bb, &k);
        int isum = 0, msum = 0;
        for (int g = 0; g < 256 / k.group; g++) {
            int s = 0;
            for (int j = 0; j < k.group; j++) s += k.q[g * k.group + j] * y[i].qs[g * k.group + j];
            isum += k.scale[g] * s;
            int ysum = 0;  // sum of the activation codes under this group, from bsums
            for (int b = g * k.group / 16; b < (g + 1) * k.group / 16; b++) ysum += y[i].bsums[b];
            msum += k.min[g] * ysum;
        }
        sum += y[i].d * (k.d * (float)isum - k.dmin * (float)msum);
    }
    return sum;
}

static float dot_f16_scalar(int64_t n, const uint16_t *x, const float *y) {
    float sum = 0;
    for (int64_t i = 0; i < n; i++) sum += h2f(x[i]) * y[i];
    return sum;
}

static float dot_bf16_scalar(int64_t n, const uint16_t *x, const float *y) {
    float sum = 0;
    for (int64_t i = 0; i < n; i++) sum += bf2f(x[i]) * y[i];
    return sum;
}

static float dot_f32_scalar(int64_t n, const float *x, const float *y) {
    float sum = 0;
    for (int64_t i = 0; i < n; i++) sum += x[i] * y[i];
    return sum;
}

float ck_vec_dot_scalar(int type, int64_t n, const void *w, const void *a) {
    switch (type) {
    case CK_F32: return dot_f32_scalar(n, w, a);
    case CK_F16: return dot_f16_scalar(n, w, a);
    case CK_BF16: return dot_bf16_scalar(n, w, a);
    case CK_Q4_0: return dot_q4_0_scalar(n, w, a);
    case CK_Q4_1: return dot_q4_1_scalar(n, w, a);
    case CK_Q5_0: return dot_q5_scalar(n, w, a, 0);
    case CK_Q5_1: return dot_q5_scalar(n, w, a, 1);
    case CK_Q8_0: return dot_q8_0_scalar(n, w, a);
    case CK_Q4_K: return ck_q4_K_gemv_scalar(n, w, a);  // llama.cpp's order (q4k_avx2.c)
    case CK_Q2_K: case CK_Q3_K: case CK_Q5_K: case CK_Q6_K:
        return dot_k_scalar(type, n, w, a);
    default: return 0;
    }
}
