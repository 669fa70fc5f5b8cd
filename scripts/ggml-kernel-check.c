// Tooling only: compares Steward's CKernels (compiled in) with the peer's libggml-cpu bit for
// bit on random data: activation quantization (from_float of each vec_dot type) and the dot
// products ggml picks for single-row products (vec_dot), through all our entry points
// (ck_vec_dot, ck_vec_dot_rows, ck_vec_dot_multi, ck_vec_dot_tile).
// Build and run: scripts/ggml-kernel-check
#include "ggml.h"
#include "ggml-cpu.h"
#include "ckernels.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rs = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) { rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17; return rs; }
static float frand(void) { return (float)((rnd() >> 11) * (1.0 / 9007199254740992.0)) * 2 - 1; }

// Activations like a transformer's: mostly small, a few large outliers (SmolLM2 has hundreds).
static void fill_act(float *x, int n, float big) {
    for (int i = 0; i < n; i++) {
        float v = frand() * 3;
        if (rnd() % 64 == 0) v *= big;
        x[i] = v;
    }
}

// Weight blocks: random bytes, with every f16 field made a sane small value.
static void fill_weights(int type, uint8_t *w, size_t bytes, int64_t nblocks, size_t bb) {
    for (size_t i = 0; i < bytes; i++) w[i] = (uint8_t)rnd();
    for (int64_t b = 0; b < nblocks; b++) {
        uint8_t *p = w + b * bb;
        uint16_t h1 = ck_f32_to_f16(frand() * 0.02f), h2 = ck_f32_to_f16(frand() * 0.02f);
        switch (type) {
        case CK_Q4_0: case CK_Q5_0: case CK_Q8_0: memcpy(p, &h1, 2); break;
        case CK_Q4_1: case CK_Q5_1: memcpy(p, &h1, 2); memcpy(p + 2, &h2, 2); break;
        case CK_Q4_K: case CK_Q5_K: memcpy(p, &h1, 2); memcpy(p + 2, &h2, 2); break;
        case CK_Q2_K: memcpy(p + 80, &h1, 2); memcpy(p + 82, &h2, 2); break;
        case CK_Q3_K: memcpy(p + 108, &h1, 2); break;
        case CK_Q6_K: memcpy(p + 208, &h1, 2); break;
        }
    }
}

static int failures = 0;
static void report(const char *what, int type, int64_t n, int bad, int total) {
    printf("%-28s type %2d n %5lld: %s (%d/%d differ)\n", what, type, (long long)n, bad ? "DIFFERS" : "bit-identical", bad, total);
    if (bad) failures++;
}

int main(int argc, char **argv) {
    ggml_cpu_init();
    const int types[] = { CK_Q4_0, CK_Q4_1, CK_Q5_0, CK_Q5_1, CK_Q8_0, CK_Q2_K, CK_Q3_K, CK_Q4_K, CK_Q5_K, CK_Q6_K };
    const int64_t ns[] = { 256, 576, 640, 1024, 1536, 2048 };
    const int trials = argc > 1 ? atoi(argv[1]) : 50;
    // activation quantization
    for (int qt = 0; qt < 3; qt++) {
        int at = qt == 0 ? CK_Q8_0 : qt == 1 ? CK_Q8_1 : CK_Q8_K;
        const struct ggml_type_traits_cpu *tr = ggml_get_type_traits_cpu((enum ggml_type)at);
        int bad = 0, total = 0;
        for (int k = 0; k < trials; k++) {
            int64_t n = 1536;
            float x[1536];
            fill_act(x, (int)n, k % 2 ? 100.0f : 3.0f);
            if (k % 5 == 0) for (int i = 0; i < 64; i++) x[i] = i % 32 == 0 ? 127.0f : (float)(i % 17) + 0.5f;  // halves
            uint8_t a[2048], b[2048];
            size_t bytes = ck_row_bytes(at, n);
            memset(a, 0, sizeof a); memset(b, 0, sizeof b);
            tr->from_float(x, a, n);
            ck_quantize_row_q8_0(x, b, 0);
            if (at == CK_Q8_0) ck_quantize_row_q8_0(x, b, n);
            else if (at == CK_Q8_1) ck_quantize_row_q8_1(x, b, n);
            else ck_quantize_row_q8_K(x, b, n);
            total++;
            if (memcmp(a, b, bytes)) bad++;
        }
        report("quantize", at, 1536, bad, total);
    }
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
        int type = types[ti];
        const struct ggml_type_traits_cpu *tr = ggml_get_type_traits_cpu((enum ggml_type)type);
        const struct ggml_type_traits_cpu *atr = ggml_get_type_traits_cpu(tr->vec_dot_type);
        int bad1 = 0, badr = 0, badm = 0, badt = 0, total = 0;
        int64_t nn = 0;
        for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++) {
            int64_t n = ns[ni];
            if (n % ck_block_size(type)) continue;
            nn = n;
            const int R = 8, T = 8;
            size_t wrow = ck_row_bytes(type, n), arow = ck_row_bytes(tr->vec_dot_type, n);
            uint8_t *w = malloc(wrow * R), *a = malloc(arow * T);
            float *x = malloc(sizeof(float) * n * T);
            for (int k = 0; k < trials / 5 + 1; k++) {
                fill_weights(type, w, wrow * R, (int64_t)(wrow * R / (wrow / (n / ck_block_size(type)))),
                             wrow / (n / ck_block_size(type)));
                fill_act(x, (int)(n * T), k % 2 ? 100.0f : 3.0f);
                for (int t = 0; t < T; t++) atr->from_float(x + t * n, a + t * arow, n);
                float ref[8 * 8], o1[8 * 8], orow[8 * 8], omul[8 * 8], otile[8 * 8];
                for (int t = 0; t < T; t++)
                    for (int r = 0; r < R; r++) {
                        tr->vec_dot((int)n, &ref[t * R + r], 0, w + r * wrow, 0, a + t * arow, 0, 1);
                        o1[t * R + r] = ck_vec_dot(type, n, w + r * wrow, a + t * arow);
                    }
                for (int t = 0; t < T; t++) ck_vec_dot_rows(type, n, w, wrow, R, a + t * arow, orow + t * R);
                for (int r = 0; r < R; r++) ck_vec_dot_multi(type, n, w + r * wrow, a, arow, T, omul + r, R);
                ck_vec_dot_tile(type, n, w, wrow, R, a, arow, T, otile, R);
                for (int i = 0; i < R * T; i++) {
                    total++;
                    bad1 += memcmp(&ref[i], &o1[i], 4) != 0;
                    badr += memcmp(&ref[i], &orow[i], 4) != 0;
                    badm += memcmp(&ref[i], &omul[i], 4) != 0;
                    badt += memcmp(&ref[i], &otile[i], 4) != 0;
                }
            }
            free(w); free(a); free(x);
        }
        report("ck_vec_dot", type, nn, bad1, total);
        report("ck_vec_dot_rows", type, nn, badr, total);
        report("ck_vec_dot_multi", type, nn, badm, total);
        report("ck_vec_dot_tile", type, nn, badt, total);
    }
    printf("%d checks differ\n", failures);
    return failures != 0;
}
