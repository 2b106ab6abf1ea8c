// The communicator abstraction every distributed part of the program talks to. Two
// implementations: `MPICommunicator` (under mpirun/srun) and `SingleProcessCommunicator`
// (world size 1, used when the program runs without a launcher). Both run the same code path.

/// An error from the communication layer, carrying the MPI error string when there is one.
public struct CommunicationError: Error, CustomStringConvertible, Sendable {
    public let operation: String
    public let message: String
    public init(operation: String, message: String) {
        self.operation = operation
        self.message = message
    }
    public var description: String { "\(operation) failed: \(message)" }
}

/// Collective operations over the ranks of one job. All collectives must be called by every
/// rank in the same order. Buffers are updated in place.
public protocol Communicator: AnyObject {
    /// This process's rank, 0 ..< size.
    var rank: Int { get }
    /// Number of ranks in the job.
    var size: Int { get }
    /// Host name of this rank.
    var hostName: String { get }
    /// A short description of the implementation ("MPI (Open MPI v4.1.4)" or "single process").
    var implementation: String { get }

    func barrier() throws
    /// A barrier that waits by polling and sleeping instead of spinning a core, for ranks that
    /// wait while rank 0 works alone (evaluation, checkpoint writing).
    func sleepingBarrier(pollMicroseconds: Int) throws
    /// In-place element-wise sum across ranks (chunked internally).
    func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws
    func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws
    func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Int64>) throws
    func allReduceMax(_ buffer: UnsafeMutableBufferPointer<Double>) throws
    /// Broadcast from `root` into every rank's buffer (same size on every rank).
    func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws
    func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) throws
    /// Every rank contributes `send` (same byte count everywhere); returns the concatenation in
    /// rank order.
    func allGather(_ send: UnsafeRawBufferPointer) throws -> [UInt8]
    func allGather(_ send: UnsafeBufferPointer<Float>) throws -> [Float]
    /// Starts an in-place sum of `buffer` across ranks without waiting; the buffer must stay
    /// valid and untouched until the returned reduction completes. Every rank must start the
    /// same reductions in the same order.
    func startAllReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws -> PendingReduction
    /// Ends the whole job with `code` (all ranks).
    func abort(code: Int32) -> Never
    /// Shuts the communicator down (MPI_Finalize). Idempotent.
    func finalize() throws
}

/// A reduction in flight (see `Communicator.startAllReduceSum`).
public protocol PendingReduction: AnyObject {
    /// Lets the reduction progress; true once it has completed.
    func test() throws -> Bool
    /// Blocks until it has completed.
    func wait() throws
}

/// A reduction that is complete when started (one rank).
public final class CompletedReduction: PendingReduction {
    public init() {}
    public func test() throws -> Bool { true }
    public func wait() throws {}
}

extension Communicator {
    public var isRoot: Bool { rank == 0 }

    public func sleepingBarrier() throws { try sleepingBarrier(pollMicroseconds: 2000) }

    public func allReduceSum(_ values: inout [Float]) throws {
        try values.withUnsafeMutableBufferPointer { try allReduceSum($0) }
    }

    public func allReduceSum(_ values: inout [Double]) throws {
        try values.withUnsafeMutableBufferPointer { try allReduceSum($0) }
    }

    public func allReduceSum(_ values: inout [Int64]) throws {
        try values.withUnsafeMutableBufferPointer { try allReduceSum($0) }
    }

    public func allReduceSum(_ value: Double) throws -> Double {
        var v = [value]
        try allReduceSum(&v)
        return v[0]
    }

    public func allReduceSum(_ value: Int) throws -> Int {
        var v = [Int64(value)]
        try allReduceSum(&v)
        return Int(v[0])
    }

    public func allReduceMax(_ value: Double) throws -> Double {
        var v = [value]
        try v.withUnsafeMutableBufferPointer { try allReduceMax($0) }
        return v[0]
    }

    public func broadcast(_ values: inout [Float], root: Int = 0) throws {
        try values.withUnsafeMutableBufferPointer { try broadcast($0, root: root) }
    }

    /// Broadcasts a byte array of any length from `root` (the length is sent first).
    public func broadcast(bytes: [UInt8], root: Int = 0) throws -> [UInt8] {
        var length = [Int64(bytes.count)]
        try length.withUnsafeMutableBytes { try broadcast($0, root: root) }
        var out = rank == root ? bytes : [UInt8](repeating: 0, count: Int(length[0]))
        if !out.isEmpty { try out.withUnsafeMutableBytes { try broadcast($0, root: root) } }
        return out
    }

    public func broadcast(string: String, root: Int = 0) throws -> String {
        String(decoding: try broadcast(bytes: Array(string.utf8), root: root), as: UTF8.self)
    }

    /// All-gather of byte arrays of different lengths; returns one array per rank.
    public func allGather(variable bytes: [UInt8]) throws -> [[UInt8]] {
        let lengths = try [Int64(bytes.count)].withUnsafeBytes { try allGather($0) }
        let counts = lengths.withUnsafeBytes { raw in (0..<size).map { Int(raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) } }
        let width = counts.max() ?? 0
        var padded = bytes
        padded.append(contentsOf: [UInt8](repeating: 0, count: width - bytes.count))
        let all = width == 0 ? [] : try padded.withUnsafeBytes { try allGather($0) }
        return (0..<size).map { r in Array(all[(r * width)..<(r * width + counts[r])]) }
    }

    public func allGather(string: String) throws -> [String] {
        try allGather(variable: Array(string.utf8)).map { String(decoding: $0, as: UTF8.self) }
    }
}
