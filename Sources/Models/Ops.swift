import Foundation

/// Float operations of the forward pass on raw buffers. Plain loops the compiler vectorises;
/// the quantized matrix products (where the time goes) are in Kernels/CKernels.
enum Ops {
    /// y = x / sqrt(mean(x²) + eps) · w  (sum in double, as ggml's rms_norm does)
    @inline(__always)
    static func rmsnorm(_ x: UnsafePointer<Float>, _ w: [Float], _ n: Int, _ eps: Float, into y: UnsafeMutablePointer<Float>) {
        var sum: Double = 0
        for i in 0..<n { sum += Double(x[i]) * Double(x[i]) }
        let scale = Float(1.0 / (sum / Double(n) + Double(eps)).squareRoot())
        w.withUnsafeBufferPointer { wp in
            for i in 0..<n { y[i] = x[i] * scale * wp[i] }
        }
    }

    @inline(__always)
    static func add(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int) {
        for i in 0..<n { y[i] += x[i] }
    }

    @inline(__always)
    static func add(_ y: UnsafeMutablePointer<Float>, _ x: [Float], _ n: Int) {
        x.withUnsafeBufferPointer { add(y, $0.baseAddress!, n) }
    }

    @inline(__always)
    static func scale(_ y: UnsafeMutablePointer<Float>, _ n: Int, _ s: Float) {
        for i in 0..<n { y[i] *= s }
    }

    /// Rotary position embedding in place on `heads` vectors of `headDim`, the first `ropeDims`
    /// of each rotated. The angle is computed the way ggml's rope does (theta multiplied by
    /// base^(-2/dims) pair after pair) so positions round the same way.
    static func rope(_ x: UnsafeMutablePointer<Float>, heads: Int, headDim: Int, ropeDims: Int,
                     position: Float, base: Float, style: DecoderConfig.RopeStyle) {
        let thetaScale = Foundation.pow(base, -2 / Float(ropeDims))
        let half = ropeDims / 2
        for h in 0..<heads {
            let v = x + h * headDim
            var theta = position
            for i in 0..<half {
                let c = Foundation.cos(theta), s = Foundation.sin(theta)
                let (a, b) = style == .interleaved ? (2 * i, 2 * i + 1) : (i, i + half)
                let x0 = v[a], x1 = v[b]
                v[a] = x0 * c - x1 * s
                v[b] = x0 * s + x1 * c
                theta *= thetaScale
            }
        }
    }

    /// gate = silu(gate) · up
    static func siluMul(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, _ n: Int) {
        for i in 0..<n {
            let g = gate[i]
            gate[i] = g / (1 + Foundation.exp(-g)) * up[i]
        }
    }

    /// gate = gelu_tanh(gate) · up (ggml's tanh approximation)
    static func geluMul(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, _ n: Int) {
        let c: Float = 0.797_884_560_802_865_4  // sqrt(2/π)
        for i in 0..<n {
            let x = gate[i]
            gate[i] = 0.5 * x * (1 + Foundation.tanh(c * x * (1 + 0.044715 * x * x))) * up[i]
        }
    }

    @inline(__always)
    static func toF16(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float16>, _ n: Int) {
        for i in 0..<n { y[i] = Float16(x[i]) }
    }

    @inline(__always)
    static func dotF16(_ q: UnsafePointer<Float>, _ k: UnsafePointer<Float16>, _ n: Int) -> Float {
        var s: Float = 0
        for i in 0..<n { s += q[i] * Float(k[i]) }
        return s
    }

    @inline(__always)
    static func axpyF16(_ a: Float, _ x: UnsafePointer<Float16>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n { y[i] += a * Float(x[i]) }
    }
}
