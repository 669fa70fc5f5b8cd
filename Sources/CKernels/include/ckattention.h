// Attention of one query head over a range of cached positions with llama.cpp's CPU
// flash-attention numerics (ggml_compute_forward_flash_attn_ext_f16_one_chunk): the query is
// rounded to f16, q·k is an f16 dot with f32 accumulation, the softmax is online and the
// weighted sum of V is accumulated in f16. Matching those roundings is what keeps greedy output
// identical to the reference implementation.
#ifndef CKATTENTION_H
#define CKATTENTION_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// q: dk floats (already scaled if the model pre-scales queries). k, v: f16 rows, one per
/// position, `k_stride` / `v_stride` elements apart, pointing at position 0 of this KV head.
/// Positions lo...hi (inclusive) are visible. out: dv floats. q16 (dk) and acc16 (dv) are
/// caller-provided scratch.
void ck_attention_head_f16(const float *q, int64_t dk, int64_t dv, const uint16_t *k, size_t k_stride,
                           const uint16_t *v, size_t v_stride, int64_t lo, int64_t hi, float scale,
                           float *out, uint16_t *q16, uint16_t *acc16);
/// The scalar twin (same roundings), for tests.
void ck_attention_head_f16_scalar(const float *q, int64_t dk, int64_t dv, const uint16_t *k, size_t k_stride,
                                  const uint16_t *v, size_t v_stride, int64_t lo, int64_t hi, float scale,
                                  float *out, uint16_t *q16, uint16_t *acc16);

/// Prefill attention for `nq` (1...64) consecutive query rows of one head at positions
/// pos0..<pos0+nq with llama.cpp's tiled flash-attention arithmetic (used by llama.cpp for
/// batches of 64 or more queries; see attention_tiled.c). q: rows `q_stride` floats apart; k, v
/// as above; a key at p is visible to the query at pos when p <= pos and, with window > 0,
/// pos - p < window. out: rows `out_stride` floats apart. scratch:
/// ck_attention_tiled_scratch_floats(dk, dv) floats.
void ck_attention_tiled(const float *q, size_t q_stride, int64_t nq, int64_t dk, int64_t dv,
                        const uint16_t *k, size_t k_stride, const uint16_t *v, size_t v_stride,
                        int64_t pos0, int64_t window, float scale, float *out, size_t out_stride, float *scratch);
/// The scalar twin (same roundings), for tests.
void ck_attention_tiled_scalar(const float *q, size_t q_stride, int64_t nq, int64_t dk, int64_t dv,
                               const uint16_t *k, size_t k_stride, const uint16_t *v, size_t v_stride,
                               int64_t pos0, int64_t window, float scale, float *out, size_t out_stride, float *scratch);
size_t ck_attention_tiled_scratch_floats(int64_t dk, int64_t dv);
/// exp(x) as ggml's vector approximation (ggml_v_expf) computes it, for tests.
float ck_exp_approx(float x);

#ifdef __cplusplus
}
#endif
#endif
