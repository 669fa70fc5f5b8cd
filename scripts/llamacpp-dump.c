// Tooling only (scripts/llamacpp-dump builds and runs it): evaluates a token-id sequence in
// llama.cpp the way the greedy golden did (the first N ids as one batch, then one token at a
// time) and, during the last evaluation, writes every named intermediate tensor llama.cpp's eval
// callback sees (attn_norm-0, Qcur-0, kqv_out-0, ffn_out-0, l_out-29, result_output, ...) to
// DIR/<name>.<k>.f32 (k counts tensors of the same name; raw little-endian f32, f16 widened),
// plus DIR/index.txt with "file ne0 ne1 ne2 ne3 type op" per tensor.
// usage: llamacpp-dump MODEL.gguf DIR N_PROMPT ID,ID,...
#include "llama.h"
#include "ggml.h"
#include "ggml-backend.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *dir;
static int active = 0;
static FILE *index_file;
static struct { char name[GGML_MAX_NAME]; int count; } seen[4096];
static int nseen = 0;

static bool on_tensor(struct ggml_tensor *t, bool ask, void *ud) {
    (void)ud;
    if (ask) return active;  // only the last evaluation's tensors
    if (!active || t->name[0] == 0) return true;
    if (t->type != GGML_TYPE_F32 && t->type != GGML_TYPE_F16) return true;
    int k = 0;
    for (k = 0; k < nseen && strcmp(seen[k].name, t->name); k++) {}
    if (k == nseen) { if (nseen == 4096) return true; strcpy(seen[nseen].name, t->name); seen[nseen++].count = 0; }
    int c = seen[k].count++;
    const int64_t n = ggml_nelements(t);
    float *buf = malloc(sizeof(float) * n);
    // copy row by row (views may not be contiguous)
    const size_t es = ggml_type_size(t->type);
    char *row = malloc(t->nb[1] > 0 ? (size_t)t->ne[0] * es : 1);
    int64_t o = 0;
    for (int64_t i3 = 0; i3 < t->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < t->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < t->ne[1]; i1++) {
                size_t off = i1 * t->nb[1] + i2 * t->nb[2] + i3 * t->nb[3];
                if (t->nb[0] == es) {
                    ggml_backend_tensor_get(t, row, off, t->ne[0] * es);
                } else {
                    for (int64_t i0 = 0; i0 < t->ne[0]; i0++) ggml_backend_tensor_get(t, row + i0 * es, off + i0 * t->nb[0], es);
                }
                for (int64_t i0 = 0; i0 < t->ne[0]; i0++)
                    buf[o++] = t->type == GGML_TYPE_F32 ? ((float *)row)[i0] : ggml_fp16_to_fp32(((ggml_fp16_t *)row)[i0]);
            }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.%d.f32", dir, t->name, c);
    FILE *f = fopen(path, "wb");
    if (f) { fwrite(buf, sizeof(float), n, f); fclose(f); }
    fprintf(index_file, "%s.%d.f32 %lld %lld %lld %lld %s %s\n", t->name, c, (long long)t->ne[0], (long long)t->ne[1],
            (long long)t->ne[2], (long long)t->ne[3], ggml_type_name(t->type), ggml_op_desc(t));
    free(buf); free(row);
    return true;
}

int main(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage: %s MODEL.gguf DIR N_PROMPT ID,ID,...\n", argv[0]); return 2; }
    dir = argv[2];
    char ip[4096];
    snprintf(ip, sizeof ip, "%s/index.txt", dir);
    index_file = fopen(ip, "w");
    if (!index_file) { fprintf(stderr, "cannot write %s\n", ip); return 1; }
    llama_backend_init();
    struct llama_model *m = llama_model_load_from_file(argv[1], llama_model_default_params());
    if (!m) { fprintf(stderr, "cannot load %s\n", argv[1]); return 1; }
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 4096; cp.n_batch = 2048; cp.n_threads = 2; cp.n_threads_batch = 2;
    cp.cb_eval = on_tensor; cp.cb_eval_user_data = NULL;
    struct llama_context *ctx = llama_init_from_model(m, cp);
    static int ids[4096];
    int n = 0;
    for (char *t = strtok(argv[4], ","); t && n < 4096; t = strtok(NULL, ",")) ids[n++] = atoi(t);
    int np = atoi(argv[3]);
    if (np < 1 || np > n) np = n;
    active = np == n;
    llama_decode(ctx, llama_batch_get_one(ids, np));
    for (int i = np; i < n; i++) {
        active = i == n - 1;
        llama_decode(ctx, llama_batch_get_one(&ids[i], 1));
    }
    fclose(index_file);
    llama_free(ctx);
    llama_model_free(m);
    return 0;
}
