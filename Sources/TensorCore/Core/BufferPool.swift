// A pool of float buffers in size classes. Training steps allocate the same sizes every
// iteration; reusing them avoids glibc's mmap/munmap of large blocks and the page faults that
// follow (measured: half of a PyTorch VisCoIN step's time on this machine kind). Requests are
// rounded up to a class (at most 1/8 more), and a request whose class has no free buffer takes
// one of the next two classes, so buffers freed by one phase of a step (the forward pass's
// temporaries) serve the next (the backward pass's gradients) instead of sitting in the pool
// while fresh memory is allocated: the process holds little more than its working set.
import Common
#if canImport(Glibc)
import Glibc
#endif

public final class BufferPool: @unchecked Sendable {
    public static let shared = BufferPool(maxPooledBytes: BufferPool.defaultLimit())

    /// Buffers smaller than this are left to malloc (its small bins are fast).
    public static let minimumPooledCount = 4096
    /// How many larger classes a request may take a free buffer from.
    static let spareClasses = 2

    private struct State {
        /// Free buffers by class index.
        var free: [Int: [UnsafeMutablePointer<Float>]] = [:]
        var pooledBytes = 0
        var maxPooledBytes: Int
        var hits = 0
        var misses = 0
        /// Bytes of pooled-size buffers handed out and not yet returned, and their maximum.
        var liveBytes = 0
        var peakLiveBytes = 0
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

    /// The class of `count` floats (>= 8): 8 classes per power of two, numbered consecutively;
    /// class c holds (8 + c % 8) << (c / 8) floats, the smallest such size >= count.
    @inline(__always) public static func sizeClass(_ count: Int) -> Int {
        var shift = (Int.bitWidth - 1 - count.leadingZeroBitCount) - 3  // floor(log2 count) - 3
        var mantissa = (count + (1 << shift) - 1) >> shift  // 8...16
        if mantissa == 16 { shift += 1; mantissa = 8 }
        return shift * 8 + mantissa - 8
    }

    /// The floats a buffer of class `c` holds.
    @inline(__always) public static func classCapacity(_ c: Int) -> Int { (8 + c % 8) << (c / 8) }

    /// An uninitialised buffer of at least `count` floats (64-byte aligned) and its capacity,
    /// which `release` needs back.
    public func acquire(_ count: Int) -> (pointer: UnsafeMutablePointer<Float>, capacity: Int) {
        let n = max(count, 1)
        guard n >= BufferPool.minimumPooledCount else {
            return (UnsafeMutableRawPointer.allocate(byteCount: n * 4, alignment: 64).bindMemory(to: Float.self, capacity: n), n)
        }
        let wanted = BufferPool.sizeClass(n)
        let reused: (UnsafeMutablePointer<Float>, Int)? = lock.withLock {
            for c in wanted...(wanted + BufferPool.spareClasses) {
                guard var list = s.free[c], let p = list.popLast() else { continue }
                s.free[c] = list.isEmpty ? nil : list
                let capacity = BufferPool.classCapacity(c)
                s.pooledBytes -= capacity * 4
                s.liveBytes += capacity * 4
                s.peakLiveBytes = Swift.max(s.peakLiveBytes, s.liveBytes)
                s.hits += 1
                return (p, capacity)
            }
            let capacity = BufferPool.classCapacity(wanted)
            s.liveBytes += capacity * 4
            s.peakLiveBytes = Swift.max(s.peakLiveBytes, s.liveBytes)
            s.misses += 1
            return nil
        }
        if let reused { return reused }
        let capacity = BufferPool.classCapacity(wanted)
        return (UnsafeMutableRawPointer.allocate(byteCount: capacity * 4, alignment: 64).bindMemory(to: Float.self, capacity: capacity), capacity)
    }

    /// Returns a buffer obtained from `acquire`, with the capacity it gave.
    public func release(_ pointer: UnsafeMutablePointer<Float>, capacity: Int) {
        if capacity >= BufferPool.minimumPooledCount {
            let kept = lock.withLock { () -> Bool in
                s.liveBytes -= capacity * 4
                guard s.pooledBytes + capacity * 4 <= s.maxPooledBytes else { return false }
                s.free[BufferPool.sizeClass(capacity), default: []].append(pointer)
                s.pooledBytes += capacity * 4
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

    /// Bytes of pooled-size buffers in use now (tensors, scratch; class capacities) and the
    /// most in use at once since the last `resetPeak()`: the working set the pool and malloc
    /// must hold, without the pool's own free buffers.
    public var usage: (liveBytes: Int, peakLiveBytes: Int) {
        lock.withLock { (s.liveBytes, s.peakLiveBytes) }
    }

    /// Starts a new peak measurement from the bytes in use now.
    public func resetPeak() {
        lock.withLock { s.peakLiveBytes = s.liveBytes }
    }
}

/// The float buffer behind one or more tensors (reshapes share it).
public final class TensorStorage: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int
    let capacity: Int

    public init(count: Int) {
        self.count = count
        (pointer, capacity) = BufferPool.shared.acquire(count)
    }

    deinit { BufferPool.shared.release(pointer, capacity: capacity) }
}
