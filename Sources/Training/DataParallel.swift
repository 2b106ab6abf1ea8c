// Data parallelism over MPI: the model state is broadcast from rank 0, and gradients are
// averaged over the ranks. First-order training reduces gradients during the backward pass:
// parameters are grouped into buckets (last layers first, the order in which their gradients
// finish), and a bucket is all-reduced as soon as every gradient in it is complete, while the
// rest of the backward pass is still to run. By default the bucket is reduced at once with
// Open MPI's blocking collective (measured here: its shared-memory algorithms are 3x faster
// than MPI_Iallreduce, whose progress needs polling); `mode = .nonblocking` starts
// MPI_Iallreduce instead and progresses it at every finished gradient. Trainers that
// differentiate twice reduce after the phase with one flat pass. Sums are deterministic: the
// same buckets are reduced in the same order on every step. A parameter that received no
// gradient on any rank keeps `grad == nil` (each bucket carries one presence flag per member),
// so an optimizer can tell "no gradient" (skip, as torch.optim does) from "zero gradient".
import Common
import Communication
import NN
import TensorCore
#if canImport(Glibc)
import Glibc
#endif

public final class DataParallel {
    public let communicator: any Communicator
    public let parameters: [(String, Tensor)]
    public var worldSize: Int { communicator.size }

    /// Parameters reduced together: their gradients at `offsets`, then one presence flag per
    /// member (1 where this rank has a gradient; after the sum, the number of ranks that had one).
    final class Bucket {
        let members: [Int]
        let offsets: [Int]
        let flagsOffset: Int
        let buffer: UnsafeMutableBufferPointer<Float>
        var ready = 0
        var pending: PendingReduction? = nil
        init(members: [Int], offsets: [Int], count: Int) {
            self.members = members
            self.offsets = offsets
            flagsOffset = count
            buffer = .allocate(capacity: count + members.count)
        }
        deinit { buffer.deallocate() }
    }

    private var buckets: [Bucket] = []
    private var bucketOf: [ObjectIdentifier: Int] = [:]
    /// Seconds spent waiting for communication (not hidden behind computation) since the last reset.
    public private(set) var exposedCommunicationSeconds = 0.0

    /// `bucketBytes`: target bucket size (a larger parameter forms a bucket of its own).
    public init(parameters: [(String, Tensor)], communicator: any Communicator, bucketBytes: Int = 4 << 20) {
        self.communicator = communicator
        self.parameters = parameters
        var members: [Int] = [], offsets: [Int] = [], size = 0
        func close() {
            guard !members.isEmpty else { return }
            let bucket = Bucket(members: members, offsets: offsets, count: size)
            for m in members { bucketOf[ObjectIdentifier(parameters[m].1)] = buckets.count }
            buckets.append(bucket)
            members = []
            offsets = []
            size = 0
        }
        for i in parameters.indices.reversed() {
            members.append(i)
            offsets.append(size)
            size += parameters[i].1.count
            if size * 4 >= bucketBytes { close() }
        }
        close()
    }

    public func resetTimers() { exposedCommunicationSeconds = 0 }

    // MARK: State

    /// Copies every parameter and buffer of `module` from rank 0 to the other ranks.
    public static func broadcastState(_ module: Module, communicator: any Communicator) throws {
        guard communicator.size > 1 else { return }
        for entry in module.stateDict() {
            let t = entry.tensor
            try communicator.broadcast(UnsafeMutableBufferPointer(start: t.data, count: t.count), root: 0)
        }
    }

    /// Copies the buffers (batch-norm running statistics) of rank 0 to the other ranks. With
    /// per-rank batch norm the ranks' running statistics drift apart; as PyTorch DDP
    /// (broadcast_buffers), rank 0's are the model's. Call before evaluating or saving.
    public static func broadcastBuffers(_ module: Module, communicator: any Communicator) throws {
        guard communicator.size > 1 else { return }
        for entry in module.stateDict() where entry.kind == .buffer {
            let t = entry.tensor
            try communicator.broadcast(UnsafeMutableBufferPointer(start: t.data, count: t.count), root: 0)
        }
    }

    /// Fails when the ranks' copies of the state differ (a hash of every tensor, compared).
    public static func checkConsistency(_ tensors: [(String, Tensor)], communicator: any Communicator) throws {
        guard communicator.size > 1 else { return }
        var hasher = XXH64()
        for (_, t) in tensors { hasher.update(UnsafeRawBufferPointer(start: t.data, count: t.count * 4)) }
        let mine = hasher.finalize()
        let all = try [mine].withUnsafeBytes { try communicator.allGather($0) }
        let hashes = all.withUnsafeBytes { raw in (0..<communicator.size).map { raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self) } }
        if Set(hashes).count > 1 {
            let listing = hashes.enumerated().map { "rank \($0.offset): \(XXH64.hex($0.element))" }.joined(separator: ", ")
            throw CommunicationError(operation: "consistency check", message: "the ranks' model states differ (\(listing))")
        }
    }

    /// Makes every BatchNorm2d of `module` normalise with the statistics of the global batch.
    public func synchronizeBatchNorm(_ module: Module) {
        guard worldSize > 1 else { return }
        let reducer = CommunicatorStatisticsReducer(communicator)
        for case let bn as BatchNorm2d in module.allModules { bn.reducer = reducer }
    }

    // MARK: Gradients

    /// Back-propagates `loss`; with `reduce` (the last accumulation round) the gradients are
    /// averaged over the ranks, overlapping the all-reduce with the backward pass. Without
    /// `reduce` gradients only accumulate locally.
    public func backward(_ loss: Tensor, reduce: Bool = true) throws {
        guard reduce && worldSize > 1 else {
            loss.backward()
            return
        }
        for b in buckets {
            b.ready = 0
            b.pending = nil
        }
        var failure: Error? = nil
        loss.backward(onLeafGradient: { [self] leaf in
            guard failure == nil, let index = bucketOf[ObjectIdentifier(leaf)] else { return }
            let bucket = buckets[index]
            bucket.ready += 1
            do {
                if bucket.ready == bucket.members.count { try start(bucket) }
                for b in buckets { if let p = b.pending { _ = try p.test() } }
            } catch {
                failure = error
            }
        })
        if let failure { throw failure }
        try finish()
    }

    /// Averages the gradients over the ranks after a phase (no overlap; for higher-order phases).
    public func allReduceGradients() throws {
        guard worldSize > 1 else { return }
        for b in buckets {
            b.pending = nil
            try start(b)
        }
        try finish()
    }

    /// How a ready bucket is reduced: `blocking` all-reduces it at once inside the backward pass
    /// (Open MPI's blocking collectives use its fast shared-memory algorithms); `nonblocking`
    /// starts MPI_Iallreduce and lets it progress while the backward pass continues.
    public enum Mode: String, Sendable { case blocking, nonblocking }
    public var mode: Mode = Mode(rawValue: environment("VISCOIN_DDP_MODE") ?? "") ?? .blocking

    private func start(_ bucket: Bucket) throws {
        for (k, m) in bucket.members.enumerated() {
            let t = parameters[m].1
            let dst = bucket.buffer.baseAddress! + bucket.offsets[k]
            if let g = t.grad { dst.update(from: g.data, count: t.count) } else { dst.update(repeating: 0, count: t.count) }
            bucket.buffer[bucket.flagsOffset + k] = t.grad == nil ? 0 : 1
        }
        let buffer = bucket.buffer
        if mode == .blocking {
            let started = Console.now()
            try communicator.allReduceSum(buffer)
            exposedCommunicationSeconds += Console.now() - started
            bucket.pending = CompletedReduction()
        } else {
            bucket.pending = try communicator.startAllReduceSum(buffer)
        }
    }

    private func finish() throws {
        for b in buckets where b.pending == nil { try start(b) }
        let scale = 1 / Float(worldSize)
        for b in buckets {
            let waitStart = Console.now()
            try b.pending!.wait()
            exposedCommunicationSeconds += Console.now() - waitStart
            b.pending = nil
            for (k, m) in b.members.enumerated() where b.buffer[b.flagsOffset + k] > 0 {
                let t = parameters[m].1
                let src = b.buffer.baseAddress! + b.offsets[k]
                if t.grad == nil { t.grad = Tensor.zeros(t.shape) }
                let dst = t.grad!.data
                for i in 0..<t.count { dst[i] = src[i] * scale }
            }
        }
    }
}

/// Sums batch-norm statistics over the ranks (SyncBatchNorm). A communication failure inside
/// the forward or backward pass ends the job.
final class CommunicatorStatisticsReducer: StatisticsReducer {
    let communicator: any Communicator
    init(_ communicator: any Communicator) { self.communicator = communicator }
    func sum(_ values: UnsafeMutableBufferPointer<Double>) {
        do {
            try communicator.allReduceSum(values)
        } catch {
            Console.error("error (rank \(communicator.rank)): synchronised batch norm: \(error)")
            communicator.abort(code: 1)
        }
    }
}
