// A pool of float buffers keyed by exact element count. Training steps allocate the same
// sizes every iteration; reusing them avoids glibc's mmap/munmap of large blocks and the page
// faults that follow (measured: half of a PyTorch VisCoIN step's time on this machine kind).
import Common
#if canImport(Glibc)
import Glibc
#endif

public final class BufferPool: @unchecked Sendable {
    public static let shared = BufferPool(maxPooledBytes: BufferPool.defaultLimit())

    /// Buffers smaller than this are left to malloc (its small bins are fast).
    public static let minimumPooledCount = 4096

    private struct State {
        var free: [Int: [UnsafeMutablePointer<Float>]] = [:]
        var pooledBytes = 0
        var maxPooledBytes: Int
        var hits = 0
        var misses = 0
    }

    private let lock = Lock()
    private var s: State

    public init(maxPooledBytes: Int) {
        s = State(maxPooledBytes: maxPooledBytes)
    }

    /// Pool limit: VISCOIN_POOL_MB, else half of the physical memory shared by the ranks of
    /// this host. The pool only keeps buffers the process has used, so the limit is a safety
    /// net; below the peak working set it makes every step refault pages.
    static func defaultLimit() -> Int {
        if let text = getenv("VISCOIN_POOL_MB"), let mb = Int(String(cString: text)), mb >= 0 { return mb << 20 }
        let physical = Int(sysconf(Int32(_SC_PHYS_PAGES))) * Int(sysconf(Int32(_SC_PAGESIZE)))
        let ranks = Launcher.localRanks
        return Swift.max(1 << 30, physical / 2 / ranks)
    }

    /// An uninitialised buffer of exactly `count` floats (64-byte aligned).
    public func acquire(_ count: Int) -> UnsafeMutablePointer<Float> {
        let n = max(count, 1)
        if n >= BufferPool.minimumPooledCount {
            let reused: UnsafeMutablePointer<Float>? = lock.withLock {
                if var list = s.free[n], let p = list.popLast() {
                    s.free[n] = list.isEmpty ? nil : list
                    s.pooledBytes -= n * 4
                    s.hits += 1
                    return p
                }
                s.misses += 1
                return nil
            }
            if let reused { return reused }
        }
        let raw = UnsafeMutableRawPointer.allocate(byteCount: n * 4, alignment: 64)
        return raw.bindMemory(to: Float.self, capacity: n)
    }

    /// Returns a buffer obtained from `acquire(count)`.
    public func release(_ pointer: UnsafeMutablePointer<Float>, count: Int) {
        let n = max(count, 1)
        if n >= BufferPool.minimumPooledCount {
            let kept = lock.withLock { () -> Bool in
                guard s.pooledBytes + n * 4 <= s.maxPooledBytes else { return false }
                s.free[n, default: []].append(pointer)
                s.pooledBytes += n * 4
                return true
            }
            if kept { return }
        }
        UnsafeMutableRawPointer(pointer).deallocate()
    }

    /// Frees every pooled buffer.
    public func trim() {
        let lists = lock.withLock { () -> [UnsafeMutablePointer<Float>] in
            let all = s.free.values.flatMap { $0 }
            s.free = [:]
            s.pooledBytes = 0
            return all
        }
        for p in lists { UnsafeMutableRawPointer(p).deallocate() }
    }

    /// (pooled bytes, reuse hits, fresh allocations) for diagnostics and benchmarks.
    public var statistics: (pooledBytes: Int, hits: Int, misses: Int) {
        lock.withLock { (s.pooledBytes, s.hits, s.misses) }
    }
}

/// The float buffer behind one or more tensors (reshapes share it).
public final class TensorStorage: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int

    public init(count: Int) {
        self.count = count
        pointer = BufferPool.shared.acquire(count)
    }

    deinit { BufferPool.shared.release(pointer, count: count) }
}
