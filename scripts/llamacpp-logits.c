// Tooling only (scripts/llamacpp-logits builds and runs it): prints llama.cpp's top-5
// log-probabilities after a sequence of token ids, to compare with Steward's at the point where
// greedy outputs part. Links the peer's libllama from $STEWARD_HOME/peer (scripts/build-llamacpp).
// usage: llamacpp-logits MODEL.gguf FLASH_ATTN(-1 auto, 0 off, 1 on) ID,ID,... [inc]
//   inc: evaluate one token at a time instead of one batch.
#include "llama.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL.gguf FLASH_ATTN ID,ID,... [inc]\n", argv[0]);
        return 2;
    }
    llama_backend_init();
    struct llama_model *m = llama_model_load_from_file(argv[1], llama_model_default_params());
    if (!m) { fprintf(stderr, "cannot load %s\n", argv[1]); return 1; }
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 4096; cp.n_batch = 2048; cp.n_threads = 2; cp.n_threads_batch = 2;
    cp.flash_attn_type = atoi(argv[2]);
    struct llama_context *ctx = llama_init_from_model(m, cp);
    static int ids[4096];
    int n = 0;
    for (char *t = strtok(argv[3], ","); t && n < 4096; t = strtok(NULL, ",")) ids[n++] = atoi(t);
    if (argc > 4) {
        for (int i = 0; i < n; i++) llama_decode(ctx, llama_batch_get_one(&ids[i], 1));
    } else {
        llama_decode(ctx, llama_batch_get_one(ids, n));
    }
    const float *lg = llama_get_logits_ith(ctx, -1);
    const int V = llama_vocab_n_tokens(llama_model_get_vocab(m));
    float mx = -INFINITY;
    for (int i = 0; i < V; i++) if (lg[i] > mx) mx = lg[i];
    double s = 0;
    for (int i = 0; i < V; i++) s += exp(lg[i] - mx);
    const double lse = mx + log(s);
    int top[5];
    for (int k = 0; k < 5; k++) {
        int b = -1;
        for (int i = 0; i < V; i++) {
            int used = 0;
            for (int j = 0; j < k; j++) used |= top[j] == i;
            if (!used && (b < 0 || lg[i] > lg[b])) b = i;
        }
        top[k] = b;
        printf("%s%d:%.5f", k ? " " : "", b, lg[b] - lse);
    }
    printf("\n");
    llama_free(ctx);
    llama_model_free(m);
    return 0;
}
