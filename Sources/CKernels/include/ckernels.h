// CKernels: the hot loops of Steward's CPU engine (quantized dot products, activation
// quantization, a small thread pool, float ops). Every SIMD function has a scalar twin; the
// AVX2/FMA/F16C paths are compiled per function with target attributes and chosen at run time,
// so the package needs no global -march flags.
//
// Block layouts and quantization rules follow ggml (ggml-common.h / ggml-quants.c).
#ifndef CKERNELS_H
#define CKERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Type numbers are ggml's (same as GGMLType raw values).
enum {
    CK_F32 = 0, CK_F16 = 1, CK_Q4_0 = 2, CK_Q4_1 = 3, CK_Q5_0 = 6, CK_Q5_1 = 7,
    CK_Q8_0 = 8, CK_Q8_1 = 9, CK_Q2_K = 10, CK_Q3_K = 11, CK_Q4_K = 12, CK_Q5_K = 13,
    CK_Q6_K = 14, CK_Q8_K = 15, CK_BF16 = 30
};

/// 1 when the CPU has AVX2, FMA and F16C (the fast paths).
int ck_cpu_has_avx2(void);
/// Turn the fast paths off (0) or back on (1, only if the CPU has them). For tests and benchmarks.
void ck_set_simd_enabled(int enabled);
int ck_simd_enabled(void);

float ck_f16_to_f32(uint16_t h);
/// Round to nearest even, like ggml's GGML_FP32_TO_FP16.
uint16_t ck_f32_to_f16(float f);

/// Activation type a weight type is dotted with: CK_Q8_0, CK_Q8_1, CK_Q8_K or CK_F32; -1 if
/// the weight type has no kernel.
int ck_vec_dot_type(int weight_type);
/// Elements per block of a type (1 for f32/f16), 0 for unknown types.
int64_t ck_block_size(int type);
/// Bytes of one row of n elements (n a multiple of the block size), 0 for unknown types.
size_t ck_row_bytes(int type, int64_t n);

// Quantize a row of n floats (n a multiple of 32 / 256). Same output as ggml's
// quantize_row_q8_0_ref, quantize_row_q8_1_ref and quantize_row_q8_K_ref.
void ck_quantize_row_q8_0(const float *x, void *y, int64_t n);
void ck_quantize_row_q8_1(const float *x, void *y, int64_t n);
void ck_quantize_row_q8_K(const float *x, void *y, int64_t n);
void ck_quantize_row_q8_0_scalar(const float *x, void *y, int64_t n);
void ck_quantize_row_q8_1_scalar(const float *x, void *y, int64_t n);
void ck_quantize_row_q8_K_scalar(const float *x, void *y, int64_t n);
/// Quantize a row to the activation type of `weight_type` (F32 activations are copied).
void ck_quantize_activation(int weight_type, const float *x, void *y, int64_t n);

/// Dot product of one weight row (n elements of `weight_type`) with one activation row in
/// `ck_vec_dot_type(weight_type)`. Returns 0 for unsupported types.
float ck_vec_dot(int weight_type, int64_t n, const void *w, const void *a);
/// The scalar twin (always available).
float ck_vec_dot_scalar(int weight_type, int64_t n, const void *w, const void *a);
/// Dot of one weight row with `ntok` activation rows (stride `a_stride` bytes); results to
/// out[t * out_stride]. Reuses the unpacked weights across tokens where a kernel exists.
void ck_vec_dot_multi(int weight_type, int64_t n, const void *w, const void *a, size_t a_stride,
                      int64_t ntok, float *out, int64_t out_stride);

/// Dots of `nrows` weight rows (`w_stride` bytes apart) with `ntok` activation rows (`a_stride`
/// bytes apart), to out[t * out_stride + r]. Takes 4 rows × 4 tokens at a time where a kernel
/// exists (prefill), so each unpacked weight block serves four tokens and each activation block
/// four rows. Q4_K rounds as llama.cpp's AVX2 repack kernels: tokens in whole groups of 4 from
/// the first as its gemm, the last ntok % 4 as its gemv, which is also what ck_vec_dot and
/// ck_vec_dot_rows compute.
void ck_vec_dot_tile(int weight_type, int64_t n, const void *w, size_t w_stride, int64_t nrows,
                     const void *a, size_t a_stride, int64_t ntok, float *out, int64_t out_stride);
/// Dots of `nrows` weight rows (`w_stride` bytes apart) with one activation row, to out[0..<nrows].
/// Takes 4 rows at a time where a kernel exists (decode).
void ck_vec_dot_rows(int weight_type, int64_t n, const void *w, size_t w_stride, int64_t nrows,
                     const void *a, float *out);

/// Scalar dequantization of n elements (reference for tests and a fallback for lookups such as
/// embedding rows). Returns 0 for unsupported types.
int ck_dequantize_row(int type, const void *x, float *y, int64_t n);

// ---- thread pool -------------------------------------------------------------------------
typedef struct ck_pool ck_pool;
/// Task body: handle indices [begin, end); `thread` is 0 for the caller, 1..n-1 for workers.
typedef void (*ck_task_fn)(void *ctx, int64_t begin, int64_t end, int thread);
/// A pool with n_threads - 1 persistent workers (the caller is thread 0). NULL on failure.
ck_pool *ck_pool_create(int n_threads);
void ck_pool_destroy(ck_pool *pool);
int ck_pool_threads(const ck_pool *pool);
/// Run fn over [0, n) in chunks of `chunk`, on all threads, and return when all are done.
/// Not reentrant: one caller at a time.
void ck_pool_parallel_for(ck_pool *pool, int64_t n, int64_t chunk, ck_task_fn fn, void *ctx);
/// Microseconds workers spin before sleeping (default 2000).
void ck_pool_set_spin_us(ck_pool *pool, int64_t us);

// ---- matrix products ---------------------------------------------------------------------
/// Scratch bytes ck_matmul needs for `ntok` activation rows of `cols` elements.
size_t ck_matmul_scratch_bytes(int weight_type, int64_t cols, int64_t ntok);
/// Y (ntok x rows, row-major) = X (ntok x cols) · Wᵀ, where W is `rows` rows of `cols`
/// elements of `weight_type` laid out as ggml stores them. ntok = 1 is a matrix-vector product.
/// Every (row, token) rounds as llama.cpp's AVX2 CPU backend rounds it for a batch of ntok
/// tokens, which for Q4_K (4-token groups, see ck_vec_dot_tile) and Q6_K (8+ tokens: its tiled
/// path) is not always what the token alone would give.
/// Returns 0 on success, -1 for an unsupported type or shape. pool may be NULL (one thread).
int ck_matmul(ck_pool *pool, int weight_type, const void *w, int64_t rows, int64_t cols,
              const float *x, int64_t ntok, float *y, void *scratch);

/// Most matrices ck_matmul_many takes at once.
#define CK_MATMUL_MANY_MAX 8
/// ys[i] (ntok x rows[i]) = X (ntok x cols) · W_iᵀ for `count` matrices over the same input (e.g.
/// q, k and v): the activations are quantized once when the matrices share an activation type,
/// and all rows run in one parallel loop. scratch: ck_matmul_scratch_bytes of types[0] (any of
/// them when the activation types differ). Returns 0, or -1 for a bad type, shape or count.
int ck_matmul_many(ck_pool *pool, int count, const int *types, const void *const *ws, const int64_t *rows,
                   int64_t cols, const float *x, int64_t ntok, float *const *ys, void *scratch);

// ---- float ops ----------------------------------------------------------------------------
/// y = x / sqrt(mean(x²) + eps) * w (w may be NULL). x and y may alias.
void ck_rmsnorm(const float *x, const float *w, float *y, int64_t n, float eps);
/// y = (x - mean) / sqrt(var + eps) * w + b (w, b may be NULL).
void ck_layernorm(const float *x, const float *w, const float *b, float *y, int64_t n, float eps);
/// In-place softmax.
void ck_softmax(float *x, int64_t n);
/// y = x * sigmoid(x).
void ck_silu(const float *x, float *y, int64_t n);
/// GELU, tanh approximation (as ggml_gelu): 0.5x(1 + tanh(√(2/π)(x + 0.044715x³))).
void ck_gelu(const float *x, float *y, int64_t n);
/// GELU as llama.cpp's CPU backend computes it (GGML_GELU_FP16): x rounded to f16 and looked up
/// in a table of f16(gelu(f16 value)) in ggml's tanh form; 0 for x <= -10, x for x >= 10. For
/// the decoder (llama.cpp parity); ck_gelu is the smooth function.
void ck_gelu_f16_table(const float *x, float *y, int64_t n);
/// The table entry for the f16 value with bits h (for tests and tools).
uint16_t ck_gelu_f16_table_entry(uint16_t h);
/// y = exp(x).
void ck_exp(const float *x, float *y, int64_t n);
void ck_mul(const float *a, const float *b, float *y, int64_t n);
void ck_add(const float *a, const float *b, float *y, int64_t n);
/// y += a * x.
void ck_axpy(float a, const float *x, float *y, int64_t n);
float ck_dot_f32(const float *a, const float *b, int64_t n);
void ck_scale(float *x, float s, int64_t n);
/// cos/sin for rotary embedding at position `pos`: for i in [0, n_dims/2),
/// theta_i = pos * freq_scale * base^(-2i/n_dims), computed as ggml does (running product in f32).
void ck_rope_cache(float pos, int64_t n_dims, float freq_base, float freq_scale, float *cos_out,
                   float *sin_out);
/// Rotate the first n_dims of each of n_heads heads (head_dim apart) in place. neox = 0 rotates
/// pairs (x[2i], x[2i+1]) (ggml rope mode 0); neox = 1 rotates (x[i], x[i + n_dims/2]).
void ck_rope_apply(float *x, int64_t n_heads, int64_t head_dim, int64_t n_dims, const float *cos_t,
                   const float *sin_t, int neox);

#ifdef __cplusplus
}
#endif
#endif
