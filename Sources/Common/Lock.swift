// A pthread mutex with a condition variable, for state shared with worker threads (the buffer
// pool, the data loader's queue and cache, dataset preparation). The pthread objects live in
// allocated memory, so their addresses stay fixed as pthreads requires.
#if canImport(Glibc)
import Glibc
#endif

public final class Lock: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    public init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    @inline(__always) public func withLock<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Inside `withLock`: releases the lock until another thread calls `broadcast()`.
    public func wait() { pthread_cond_wait(condition, mutex) }

    /// Wakes every thread waiting in `wait()`.
    public func broadcast() { pthread_cond_broadcast(condition) }
}
