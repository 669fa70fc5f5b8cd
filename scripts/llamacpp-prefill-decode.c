// Tooling only (scripts/llamacpp-prefill-decode builds and runs it): llama.cpp's next-token
// logits after a token-id sequence evaluated two ways, as one batch and one token at a time, as
// JSON: the largest |difference| between the two over the vocabulary (llama.cpp's own
// prefill-vs-decode gap: on AVX2 some weight types round differently in batches) and the 16
// largest logits of each. For Tests/GenerationTests (ReferenceTests.checkPrefillEqualsDecode).
// usage: llamacpp-prefill-decode MODEL.gguf ID,ID,...
#include "llama.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float *run(struct llama_model *m, const int *ids, int n, int one_at_a_time) {
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 4096; cp.n_batch = 2048; cp.n_threads = 2; cp.n_threads_batch = 2;
    struct llama_context *ctx = llama_init_from_model(m, cp);
    if (one_at_a_time) for (int i = 0; i < n; i++) llama_decode(ctx, llama_batch_get_one((int *)&ids[i], 1));
    else llama_decode(ctx, llama_batch_get_one((int *)ids, n));
    const int V = llama_vocab_n_tokens(llama_model_get_vocab(m));
    float *o = malloc(sizeof(float) * V);
    memcpy(o, llama_get_logits_ith(ctx, -1), sizeof(float) * V);
    llama_free(ctx);
    return o;
}

static void top16(const char *key, const float *l, int V) {
    int top[16];
    for (int k = 0; k < 16; k++) {
        int b = -1;
        for (int i = 0; i < V; i++) {
            int used = 0;
            for (int j = 0; j < k; j++) used |= top[j] == i;
            if (!used && (b < 0 || l[i] > l[b])) b = i;
        }
        top[k] = b;
    }
    printf("  \"%s\": [", key);
    for (int k = 0; k < 16; k++) printf("%s[%d, %.9g]", k ? ", " : "", top[k], l[top[k]]);
    printf("]");
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s MODEL.gguf ID,ID,...\n", argv[0]); return 2; }
    llama_backend_init();
    struct llama_model *m = llama_model_load_from_file(argv[1], llama_model_default_params());
    if (!m) { fprintf(stderr, "cannot load %s\n", argv[1]); return 1; }
    static int ids[4096];
    int n = 0;
    for (char *t = strtok(argv[2], ","); t && n < 4096; t = strtok(NULL, ",")) ids[n++] = atoi(t);
    float *batch = run(m, ids, n, 0), *step = run(m, ids, n, 1);
    const int V = llama_vocab_n_tokens(llama_model_get_vocab(m));
    float md = 0;
    for (int i = 0; i < V; i++) md = fmaxf(md, fabsf(batch[i] - step[i]));
    printf("{\n  \"ids\": [");
    for (int i = 0; i < n; i++) printf("%s%d", i ? ", " : "", ids[i]);
    printf("],\n  \"max_abs_diff\": %.9g,\n", md);
    top16("batch_top", batch, V);
    printf(",\n");
    top16("step_top", step, V);
    printf("\n}\n");
    return 0;
}
