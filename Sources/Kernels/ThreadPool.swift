import CKernels
import Foundation

/// Persistent worker threads for short parallel loops (see pool.c: spin, then sleep).
/// One caller at a time: `parallelFor` is not reentrant.
public final class ThreadPool: @unchecked Sendable {
    let raw: OpaquePointer?
    public let threadCount: Int

    /// `threads` counts the calling thread; the default is the number of active processors.
    public init(threads: Int = ProcessInfo.processInfo.activeProcessorCount) {
        raw = ck_pool_create(Int32(max(1, threads)))
        threadCount = Int(ck_pool_threads(raw))
    }

    deinit { ck_pool_destroy(raw) }

    /// How long idle workers spin before sleeping.
    public func setSpin(microseconds: Int) { ck_pool_set_spin_us(raw, Int64(microseconds)) }

    /// Runs `body(range, thread)` over 0..<count in chunks of `chunk`, on all threads, and
    /// returns when every chunk is done. `thread` is 0 for the caller.
    public func parallelFor(_ count: Int, chunk: Int = 1, _ body: (Range<Int>, Int) -> Void) {
        guard count > 0 else { return }
        typealias Body = (Range<Int>, Int) -> Void
        withoutActuallyEscaping(body) { escaping in
            var box: Body = escaping
            withUnsafeMutablePointer(to: &box) { ptr in
                ck_pool_parallel_for(raw, Int64(count), Int64(max(1, chunk)), { ctx, b, e, t in
                    ctx!.assumingMemoryBound(to: Body.self).pointee(Int(b)..<Int(e), Int(t))
                }, ptr)
            }
        }
    }
}
