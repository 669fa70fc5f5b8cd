import CKernels

/// Float vector operations of transformer layers (C implementations in CKernels/ops.c).
/// Pointers must cover `count` elements; inputs and outputs may be the same buffer.
public enum FloatOps {
    /// y = x / sqrt(mean(x²) + eps) · weight.
    public static func rmsNorm(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>?, into y: UnsafeMutablePointer<Float>, count: Int, eps: Float) {
        ck_rmsnorm(x, weight, y, Int64(count), eps)
    }

    /// y = (x - mean) / sqrt(var + eps) · weight + bias.
    public static func layerNorm(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>?, bias: UnsafePointer<Float>?, into y: UnsafeMutablePointer<Float>, count: Int, eps: Float) {
        ck_layernorm(x, weight, bias, y, Int64(count), eps)
    }

    public static func softmax(_ x: UnsafeMutablePointer<Float>, count: Int) { ck_softmax(x, Int64(count)) }
    public static func silu(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) { ck_silu(x, y, Int64(count)) }
    /// GELU, tanh approximation (as ggml_gelu).
    public static func gelu(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) { ck_gelu(x, y, Int64(count)) }
    /// GELU as llama.cpp's CPU backend computes it: x rounded to f16 and looked up in a table of
    /// f16-rounded tanh-form GELU values (0 below -10, x above 10). Decoder models use it so
    /// their activations round as llama.cpp's do; `gelu` is the unrounded function.
    public static func geluTanhTable(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) { ck_gelu_f16_table(x, y, Int64(count)) }
    public static func exp(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) { ck_exp(x, y, Int64(count)) }
    public static func mul(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) { ck_mul(a, b, y, Int64(count)) }
    public static func add(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) { ck_add(a, b, y, Int64(count)) }
    /// y += a · x.
    public static func axpy(_ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) { ck_axpy(a, x, y, Int64(count)) }
    public static func scale(_ x: UnsafeMutablePointer<Float>, by s: Float, count: Int) { ck_scale(x, s, Int64(count)) }
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float { ck_dot_f32(a, b, Int64(count)) }
}

/// Rotary position embedding. `dims` rotated dimensions per head (≤ head size);
/// `neox` selects the half-split pairing (x[i], x[i + dims/2]) instead of adjacent pairs.
public struct Rope: Sendable {
    public let dims: Int
    public let freqBase: Float
    public let freqScale: Float
    public let neox: Bool

    public init(dims: Int, freqBase: Float = 10000, freqScale: Float = 1, neox: Bool) {
        self.dims = dims
        self.freqBase = freqBase
        self.freqScale = freqScale
        self.neox = neox
    }

    /// cos and sin tables (dims/2 each) for one position.
    public func table(position: Int) -> (cos: [Float], sin: [Float]) {
        var c = [Float](repeating: 0, count: dims / 2), s = c
        ck_rope_cache(Float(position), Int64(dims), freqBase, freqScale, &c, &s)
        return (c, s)
    }

    public func table(position: Int, cos: UnsafeMutablePointer<Float>, sin: UnsafeMutablePointer<Float>) {
        ck_rope_cache(Float(position), Int64(dims), freqBase, freqScale, cos, sin)
    }

    /// Rotates `heads` heads of `headSize` floats in place with precomputed tables.
    public func apply(_ x: UnsafeMutablePointer<Float>, heads: Int, headSize: Int, cos: UnsafePointer<Float>, sin: UnsafePointer<Float>) {
        ck_rope_apply(x, Int64(heads), Int64(headSize), Int64(dims), cos, sin, neox ? 1 : 0)
    }

    /// Computes the tables and rotates in one call.
    public func apply(_ x: UnsafeMutablePointer<Float>, heads: Int, headSize: Int, position: Int) {
        let t = table(position: position)
        apply(x, heads: heads, headSize: headSize, cos: t.cos, sin: t.sin)
    }
}
