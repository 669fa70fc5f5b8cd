// Tooling only: compares Steward's CKernels (compiled in) with the peer's libggml-cpu bit for
// bit on random data: activation quantization (from_float of each vec_dot type) and the dot
// products ggml picks for single-row products (vec_dot), through all our entry points
// (ck_vec_dot, ck_vec_dot_rows, ck_vec_dot_multi, ck_vec_dot_tile); Q4_K matrices against the
// repack path llama.cpp takes for them on AVX2 (ggml_gemv/gemm_q4_K_8x8_q8_K); whole products
// (ck_matmul) against ggml_mul_mat for other types, whose dispatch picks llamafile's sgemm or
// the tiled K-quant path for batches; the f16 GELU table against ggml_table_gelu_f16.
// Build and run: scripts/ggml-kernel-check [trials]
// Fixtures:      scripts/ggml-kernel-check --fixtures Tests/Fixtures/kernels
//   writes matmul-peer.json (Q4_K and Q6_K rows, float activations and the peer's products for
//   1, 7 and 9 tokens) and gelu-table.json (inputs and the peer's GELU of them) for KernelsTests.
#include "ggml.h"
#include "ggml-cpu.h"
#include "ckernels.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// The peer's repack kernels and GELU table (exported from libggml-cpu, declared in its private
// headers ggml-cpu/repack.h and vec.h).
void ggml_quantize_mat_q8_K_4x8(const float *x, void *vy, int64_t k);
void ggml_gemv_q4_K_8x8_q8_K(int n, float *s, size_t bs, const void *vx, const void *vy, int nr, int nc);
void ggml_gemm_q4_K_8x8_q8_K(int n, float *s, size_t bs, const void *vx, const void *vy, int nr, int nc);
extern uint16_t ggml_table_gelu_f16[1 << 16];

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


// ---- Q4_K through llama.cpp's AVX2 repack ---------------------------------------------------

typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; } q4k_blk;
typedef struct { uint16_t d[8], dmin[8]; uint8_t scales[96]; uint8_t qs[1024]; } q4k_x8;

// 8 rows' block i interleaved as ggml-cpu/repack.cpp's make_block_q4_Kx8 (interleave 8).
static void repack_x8(const q4k_blk *in, q4k_x8 *out) {
    for (int i = 0; i < 8; i++) { out->d[i] = in[i].d; out->dmin[i] = in[i].dmin; }
    for (int i = 0; i < 128; i++) memcpy(&out->qs[i * 8], &in[i % 8].qs[(i / 8) * 8], 8);
    uint8_t s[8], m[8];
    for (int half = 0; half < 2; half++)
        for (int i = 0; i < 4; i++) {
            for (int j = 0; j < 8; j++) {
                const uint8_t *q = in[j].scales;
                if (half == 0) { s[j] = q[i] & 63; m[j] = q[i + 4] & 63; }
                else { s[j] = ((q[i] & 192) >> 2) | (q[i + 8] & 15); m[j] = ((q[i + 4] & 192) >> 2) | ((q[i + 8] & 240) >> 4); }
            }
            uint8_t *o = out->scales + 48 * half + 12 * i;
            for (int k = 0; k < 4; k++) {
                o[k] = (uint8_t)((s[k] & 63) + ((s[k + 4] & 48) << 2));
                o[k + 4] = (uint8_t)((m[k] & 63) + ((m[k + 4] & 48) << 2));
                o[k + 8] = (uint8_t)((s[k + 4] & 15) + ((m[k + 4] & 15) << 4));
            }
        }
}

// The peer's Y (ntok × rows) for a rows × n Q4_K matrix as its repack forward_mul_mat computes
// it: tokens in whole groups of 4 quantized by ggml_quantize_mat_q8_K_4x8 and multiplied by the
// gemm, the remaining ntok % 4 quantized by quantize_row_q8_K and multiplied by the gemv.
static void peer_q4k_matmul(const uint8_t *w, int rows, int n, const float *x, int ntok, float *y) {
    const int nb = n / 256;
    q4k_x8 *rp = malloc(sizeof(q4k_x8) * (size_t)(rows / 8) * nb);
    for (int g = 0; g < rows / 8; g++)
        for (int i = 0; i < nb; i++) {
            q4k_blk b[8];
            for (int r = 0; r < 8; r++) memcpy(&b[r], w + ((size_t)(g * 8 + r) * nb + i) * sizeof(q4k_blk), sizeof(q4k_blk));
            repack_x8(b, &rp[(size_t)g * nb + i]);
        }
    const size_t arow = ck_row_bytes(CK_Q8_K, n);
    uint8_t *a = malloc(arow * (size_t)(ntok + 4));
    const int ng = ntok - ntok % 4;
    for (int t = 0; t < ng; t += 4) ggml_quantize_mat_q8_K_4x8(x + (size_t)t * n, a + (size_t)t * arow, n);
    const struct ggml_type_traits_cpu *q8k = ggml_get_type_traits_cpu(GGML_TYPE_Q8_K);
    for (int t = ng; t < ntok; t++) q8k->from_float(x + (size_t)t * n, a + (size_t)t * arow, n);
    if (ng) ggml_gemm_q4_K_8x8_q8_K(n, y, (size_t)rows, rp, a, ng, rows);
    for (int t = ng; t < ntok; t++) ggml_gemv_q4_K_8x8_q8_K(n, y + (size_t)t * rows, (size_t)rows, rp, a + (size_t)t * arow, 1, rows);
    free(rp); free(a);
}

// Activations; some blocks hold both +max|x| and -max|x| (where the 4-token quantizer's sign
// rule differs from quantize_row_q8_K's).
static void fill_act_q4k(float *x, int n, int k) {
    fill_act(x, n, k % 2 ? 100.0f : 3.0f);
    if (k % 3 == 0)
        for (int b = 0; b < n / 256; b++) { x[b * 256 + 5] = -40.0f; x[b * 256 + 77] = 40.0f; }
}

static void check_q4k(int trials) {
    const int ns[] = { 256, 1024, 2048 }, toks[] = { 1, 2, 3, 4, 5, 7, 8, 9, 16, 17 };
    const int rows = 16;
    int bad[4] = { 0, 0, 0, 0 }, total = 0;
    for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++) {
        const int n = ns[ni];
        const size_t wrow = ck_row_bytes(CK_Q4_K, n), arow = ck_row_bytes(CK_Q8_K, n);
        uint8_t *w = malloc(wrow * rows);
        for (int k = 0; k < trials / 5 + 1; k++)
            for (size_t ti = 0; ti < sizeof toks / sizeof *toks; ti++) {
                const int T = toks[ti];
                float *x = malloc(sizeof(float) * (size_t)n * T), *ref = malloc(sizeof(float) * rows * T);
                float *ours = malloc(sizeof(float) * rows * T), *tile = malloc(sizeof(float) * rows * T);
                float *scal = malloc(sizeof(float) * rows * T);
                uint8_t *scratch = malloc(ck_matmul_scratch_bytes(CK_Q4_K, n, T));
                fill_weights(CK_Q4_K, w, wrow * rows, (int64_t)rows * (n / 256), sizeof(q4k_blk));
                fill_act_q4k(x, n * T, k);
                peer_q4k_matmul(w, rows, n, x, T, ref);
                ck_matmul(NULL, CK_Q4_K, w, rows, n, x, T, ours, scratch);
                // tiles over 13 rows (row tails) with activations quantized row by row
                for (int t = 0; t < T; t++) ck_quantize_row_q8_K(x + (size_t)t * n, scratch + t * arow, n);
                ck_vec_dot_tile(CK_Q4_K, n, w, wrow, 13, scratch, arow, T, tile, rows);
                ck_set_simd_enabled(0);
                ck_matmul(NULL, CK_Q4_K, w, rows, n, x, T, scal, scratch);
                ck_set_simd_enabled(1);
                for (int i = 0; i < rows * T; i++) {
                    total++;
                    bad[0] += memcmp(&ref[i], &ours[i], 4) != 0;
                    bad[1] += i % rows < 13 && memcmp(&ref[i], &tile[i], 4) != 0;
                    bad[2] += memcmp(&ref[i], &scal[i], 4) != 0;
                }
                if (T == 1)
                    for (int r = 0; r < rows; r++) {
                        float v = ck_vec_dot(CK_Q4_K, n, w + r * wrow, scratch);
                        bad[3] += memcmp(&ref[r], &v, 4) != 0;
                    }
                free(x); free(ref); free(ours); free(tile); free(scal); free(scratch);
            }
        free(w);
    }
    report("q4_K matmul vs repack", CK_Q4_K, 0, bad[0], total);
    report("q4_K tile (13 rows)", CK_Q4_K, 0, bad[1], total);
    report("q4_K matmul scalar", CK_Q4_K, 0, bad[2], total);
    report("q4_K vec_dot vs gemv", CK_Q4_K, 0, bad[3], total);
}


// ---- whole matrix products through ggml's own MUL_MAT (its dispatch decides the path) --------

// Y = X·Wᵀ computed by ggml_mul_mat on the CPU backend (one thread); for Q6_K over 8+ tokens
// that is the tiled path, below that vec_dot.
static void peer_mul_mat(int type, const uint8_t *w, int rows, int n, const float *x, int ntok, float *y) {
    struct ggml_init_params ip = { (size_t)64 << 20, NULL, false };
    struct ggml_context *ctx = ggml_init(ip);
    struct ggml_tensor *W = ggml_new_tensor_2d(ctx, (enum ggml_type)type, n, rows);
    struct ggml_tensor *X = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, n, ntok);
    memcpy(W->data, w, ggml_nbytes(W));
    memcpy(X->data, x, ggml_nbytes(X));
    struct ggml_tensor *Y = ggml_mul_mat(ctx, W, X);
    struct ggml_cgraph *g = ggml_new_graph(ctx);
    ggml_build_forward_expand(g, Y);
    ggml_graph_compute_with_ctx(ctx, g, 1);
    memcpy(y, Y->data, sizeof(float) * rows * ntok);
    ggml_free(ctx);
}

static void check_mul_mat(int trials) {
    const int types[] = { CK_Q4_1, CK_Q5_0, CK_Q8_0, CK_Q6_K }, toks[] = { 1, 3, 7, 8, 9, 16, 17, 33 };
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
        const int type = types[ti], rows = 24, n = 1024;
        const size_t wrow = ck_row_bytes(type, n);
        const int64_t bs = ck_block_size(type);
        uint8_t *w = malloc(wrow * rows);
        int bad = 0, total = 0;
        for (int k = 0; k < trials / 10 + 1; k++)
            for (size_t i = 0; i < sizeof toks / sizeof *toks; i++) {
                const int T = toks[i];
                float *x = malloc(sizeof(float) * n * T), *ref = malloc(sizeof(float) * rows * T), *ours = malloc(sizeof(float) * rows * T);
                uint8_t *scratch = malloc(ck_matmul_scratch_bytes(type, n, T));
                fill_weights(type, w, wrow * rows, rows * (n / bs), wrow / (n / bs));
                fill_act(x, n * T, k % 2 ? 100.0f : 3.0f);
                peer_mul_mat(type, w, rows, n, x, T, ref);
                ck_matmul(NULL, type, w, rows, n, x, T, ours, scratch);
                for (int e = 0; e < rows * T; e++) { total++; bad += memcmp(&ref[e], &ours[e], 4) != 0; }
                free(x); free(ref); free(ours); free(scratch);
            }
        report("ck_matmul vs ggml_mul_mat", type, n, bad, total);
        free(w);
    }
}

static void check_gelu(void) {
    int bad = 0;
    for (int i = 0; i < 65536; i++) bad += ck_gelu_f16_table_entry((uint16_t)i) != ggml_table_gelu_f16[i];
    report("gelu f16 table", 0, 65536, bad, 65536);
}

// ---- fixtures for KernelsTests ----------------------------------------------------------------

static void put_b64(FILE *f, const void *p, size_t len) {
    static const char *tb = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const uint8_t *b = p;
    fputc('"', f);
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)b[i] << 16 | (i + 1 < len ? (uint32_t)b[i + 1] << 8 : 0) | (i + 2 < len ? b[i + 2] : 0);
        fputc(tb[v >> 18 & 63], f); fputc(tb[v >> 12 & 63], f);
        fputc(i + 1 < len ? tb[v >> 6 & 63] : '=', f); fputc(i + 2 < len ? tb[v & 63] : '=', f);
    }
    fputc('"', f);
}

static int write_fixtures(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/matmul-peer.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) { perror(path); return 1; }
    fprintf(f, "{\n\"about\": \"Quantized weight rows x float activations and llama.cpp's products (scripts/ggml-kernel-check --fixtures, "
               "peer libggml-cpu on AVX2). Q4_K: the repack path (ggml_quantize_mat_q8_K_4x8 + ggml_gemm_q4_K_8x8_q8_K for whole groups "
               "of 4 tokens, quantize_row_q8_K + ggml_gemv_q4_K_8x8_q8_K for the rest). Q6_K: ggml_mul_mat (its tiled path from 8 tokens, "
               "vec_dot below). y is tokens x rows. Little-endian, base64.\",\n\"matrices\": [\n");
    const int mtypes[] = { CK_Q4_K, CK_Q6_K };
    for (int m = 0; m < 2; m++) {
        const int type = mtypes[m], rows = 16, n = 512;
        const size_t wrow = ck_row_bytes(type, n);
        const int64_t nb = n / 256;
        uint8_t *w = malloc(wrow * rows);
        fill_weights(type, w, wrow * rows, rows * nb, wrow / nb);
        fprintf(f, "{\"type\": %d, \"rows\": %d, \"cols\": %d, \"weights\": ", type, rows, n);
        put_b64(f, w, wrow * rows);
        fprintf(f, ",\n \"cases\": [\n");
        const int toks[] = { 1, 7, 9 };
        for (int c = 0; c < 3; c++) {
            const int T = toks[c];
            float *x = malloc(sizeof(float) * (size_t)n * T), *y = malloc(sizeof(float) * rows * T);
            fill_act_q4k(x, n * T, 3 * c);
            if (type == CK_Q4_K) peer_q4k_matmul(w, rows, n, x, T, y);
            else peer_mul_mat(type, w, rows, n, x, T, y);
            fprintf(f, "  {\"tokens\": %d, \"x\": ", T);
            put_b64(f, x, sizeof(float) * (size_t)n * T);
            fprintf(f, ", \"y\": ");
            put_b64(f, y, sizeof(float) * rows * T);
            fprintf(f, "}%s\n", c < 2 ? "," : "");
            free(x); free(y);
        }
        fprintf(f, " ]}%s\n", m == 0 ? "," : "");
        free(w);
    }
    fprintf(f, "]}\n");
    fclose(f);

    snprintf(path, sizeof path, "%s/gelu-table.json", dir);
    f = fopen(path, "w");
    if (!f) { perror(path); return 1; }
    // inputs: edges of the table's range, values next to f16 rounding midpoints, random ones
    enum { N = 512 };
    float x[N], y[N];
    int k = 0;
    const float fixed[] = { -10.5f, -10.0f, -9.9999f, -5.0f, -1.0f, -0.5f, -1e-6f, 0.0f, 1e-6f, 0.5f, 1.0f, 3.0f, 9.9999f, 10.0f, 10.5f, 65504.0f };
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) x[k++] = fixed[i];
    while (k < N / 2) {  // f16 midpoints ± 1 ulp of f32
        uint16_t h = (uint16_t)(rnd() & 0xFFFF);
        float a = ck_f16_to_f32(h), b = ck_f16_to_f32((uint16_t)(h + 1));
        if (!(fabsf(a) < 12 && fabsf(b) < 12)) continue;
        const float mid = (a + b) / 2, dir = k & 1 ? 100.0f : -100.0f;
        x[k++] = nextafterf(mid, dir);
    }
    while (k < N) x[k++] = frand() * 12;
    // the peer's rule (ggml_vec_gelu_f32 with GGML_GELU_FP16) over its own table
    const struct ggml_type_traits_cpu *f16 = ggml_get_type_traits_cpu(GGML_TYPE_F16);
    for (int i = 0; i < N; i++) {
        if (x[i] <= -10.0f) y[i] = 0.0f;
        else if (x[i] >= 10.0f) y[i] = x[i];
        else {
            uint16_t h;
            f16->from_float(&x[i], &h, 1);
            y[i] = ggml_fp16_to_fp32(ggml_table_gelu_f16[h]);
        }
    }
    fprintf(f, "{\n\"about\": \"inputs and llama.cpp's GELU of them (ggml_vec_gelu_f32 with GGML_GELU_FP16: 0 for x <= -10, x for x >= 10, "
               "else the peer's ggml_table_gelu_f16 at f16(x)); scripts/ggml-kernel-check --fixtures. float32 little-endian, base64.\",\n\"x\": ");
    put_b64(f, x, sizeof x);
    fprintf(f, ",\n\"y\": ");
    put_b64(f, y, sizeof y);
    fprintf(f, "\n}\n");
    fclose(f);
    printf("wrote %s/matmul-peer.json and gelu-table.json\n", dir);
    return 0;
}

int main(int argc, char **argv) {
    ggml_cpu_init();
    if (argc > 2 && strcmp(argv[1], "--fixtures") == 0) return write_fixtures(argv[2]);
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
        if (type == CK_Q4_K) continue;  // on AVX2 llama.cpp multiplies Q4_K through the repack: see check_q4k
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
    check_q4k(trials);
    check_mul_mat(trials);
    check_gelu();
    printf("%d checks differ\n", failures);
    return failures != 0;
}
