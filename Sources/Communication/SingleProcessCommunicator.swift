// World size 1: every collective is the identity. Used when the program runs without mpirun,
// so single-process runs take exactly the code path of distributed runs.
import Common
#if canImport(Glibc)
import Glibc
#endif

public final class SingleProcessCommunicator: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public var hostName: String { currentHostName() }
    public var implementation: String { "single process (no MPI)" }
    public func barrier() throws {}
    public func sleepingBarrier(pollMicroseconds: Int) throws {}
    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {}
    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {}
    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Int64>) throws {}
    public func allReduceMax(_ buffer: UnsafeMutableBufferPointer<Double>) throws {}
    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws {
        guard root == 0 else { throw CommunicationError(operation: "broadcast", message: "root \(root) out of range for world size 1") }
    }
    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) throws {
        guard root == 0 else { throw CommunicationError(operation: "broadcast", message: "root \(root) out of range for world size 1") }
    }
    public func allGather(_ send: UnsafeRawBufferPointer) throws -> [UInt8] { Array(send) }
    public func allGather(_ send: UnsafeBufferPointer<Float>) throws -> [Float] { Array(send) }
    public func startAllReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws -> PendingReduction { CompletedReduction() }

    public func abort(code: Int32) -> Never { exit(code) }
    public func finalize() throws {}
}

/// The host name of this machine.
public func currentHostName() -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    guard gethostname(&buffer, buffer.count - 1) == 0 else { return "unknown" }
    return String(nulTerminated: buffer)
}
