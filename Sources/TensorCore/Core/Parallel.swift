// Multi-threading for our kernels: `DispatchQueue.concurrentPerform` over contiguous chunks.
// The thread count follows the rank's setting (1 when ranks fill the cores). Reductions use
// `fixedBlocks`, whose partition depends only on the problem size, so 1 and 2 threads give
// bitwise identical results.
import Common
import Dispatch
import LinearAlgebra
#if canImport(Glibc)
import Glibc
#endif

/// Lets a non-Sendable closure cross into concurrentPerform; callers guarantee that the chunks
/// touch disjoint memory.
struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
}

public enum Parallel {
    /// Threads used by our kernels (BLAS has its own setting; `setThreadCount` sets both). Until
    /// the command line sets it (Runtime's rule: flag, VISCOIN_THREADS, SLURM, cores / ranks),
    /// VISCOIN_THREADS (checked by EnvironmentSettings) or the cores, so tests and tools agree.
    nonisolated(unsafe) public private(set) static var threadCount: Int = {
        if let n = environment("VISCOIN_THREADS").flatMap({ Int($0) }), n > 0 { return n }
        return max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }()

    /// Sets the threads of our kernels and of OpenBLAS (measured: letting OpenBLAS thread each
    /// GEMM is faster here than splitting GEMMs across our own threads).
    public static func setThreadCount(_ n: Int) {
        threadCount = max(1, n)
        BLAS.threadCount = threadCount
    }

    /// Runs `body(i)` for `i in 0..<iterations`, concurrently when there are several threads.
    public static func run(_ iterations: Int, _ body: (Int) -> Void) {
        if iterations <= 0 { return }
        if iterations == 1 || threadCount == 1 {
            for i in 0..<iterations { body(i) }
            return
        }
        withoutActuallyEscaping(body) { escaping in
            let box = UncheckedSendable(value: escaping)
            DispatchQueue.concurrentPerform(iterations: iterations) { box.value($0) }
        }
    }

    /// Splits `0..<count` into at most `threadCount` contiguous ranges of at least `grain`
    /// elements and runs them concurrently. For element-wise work whose result does not depend
    /// on the partition.
    @inline(__always)
    public static func forRange(_ count: Int, grain: Int = 32_768, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let parts = min(threadCount, max(1, count / max(1, grain)))
        if parts == 1 {
            body(0..<count)
            return
        }
        run(parts) { p in
            let lo = count * p / parts, hi = count * (p + 1) / parts
            if lo < hi { body(lo..<hi) }
        }
    }

    /// Splits `0..<count` into blocks of exactly `blockSize` (the last one shorter), independent of
    /// the thread count, and runs `body(blockIndex, range)` for each; callers combine per-block
    /// results in block order for thread-count-independent reductions.
    public static func fixedBlocks(_ count: Int, blockSize: Int, _ body: (Int, Range<Int>) -> Void) {
        if count <= 0 { return }
        let blocks = (count + blockSize - 1) / blockSize
        if blocks == 1 || threadCount == 1 {
            for b in 0..<blocks { body(b, (b * blockSize)..<min(count, (b + 1) * blockSize)) }
            return
        }
        let workers = min(threadCount, blocks)
        run(workers) { w in
            var b = w
            while b < blocks {
                body(b, (b * blockSize)..<min(count, (b + 1) * blockSize))
                b += workers
            }
        }
    }
}
