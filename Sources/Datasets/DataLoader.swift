// The sharded, deterministic loader. For epoch e the global order is a permutation drawn from
// (seed, e) (or the identity without shuffling), padded to a multiple of the world size by
// repeating its first items (as PyTorch's DistributedSampler does); rank r takes positions
// r, r + W, r + 2W, ... so every rank gets the same number of items and the shards are disjoint
// apart from the padding (flagged in each batch so evaluation can ignore it). The random
// transform of the item at global position p in epoch e is drawn from (seed, e, p), so a batch
// depends only on (seed, world size, rank, epoch, batch index): resuming at any batch gives the
// same batches as an uninterrupted run, whatever the number of worker threads.
// Batches are assembled on background threads into a bounded, in-order queue.
import Common
import ImageCodecs
import TensorCore
#if canImport(Glibc)
import Glibc
#endif

public struct LoaderOptions: Sendable {
    /// Images per rank per batch.
    public var batchSize: Int
    public var seed: UInt64
    public var shuffle: Bool
    /// Drop each rank's incomplete last batch (training) instead of returning it short.
    public var dropLast: Bool
    public var transform: ImageTransform
    /// Output size (default: the dataset's resolution).
    public var outputSize: Int?
    /// Background threads assembling batches (0 = load in the caller's thread).
    public var workers: Int
    /// Batches prepared ahead of the consumer.
    public var prefetch: Int
    /// Keep decoded images in memory (about 3 * resolution^2 bytes per image).
    public var cacheDecoded: Bool

    public init(batchSize: Int, seed: UInt64 = 0, shuffle: Bool = true, dropLast: Bool = false, transform: ImageTransform = .plain(flipProbability: 0),
                outputSize: Int? = nil, workers: Int = 1, prefetch: Int = 2, cacheDecoded: Bool = false) {
        self.batchSize = batchSize
        self.seed = seed
        self.shuffle = shuffle
        self.dropLast = dropLast
        self.transform = transform
        self.outputSize = outputSize
        self.workers = workers
        self.prefetch = prefetch
        self.cacheDecoded = cacheDecoded
    }
}

/// One rank's batch.
public struct Batch {
    public let epoch: Int
    public let index: Int
    /// [B, 3, S, S] in [-1, 1].
    public let images: Tensor
    public let labels: [Int]
    /// Dataset item indices.
    public let items: [Int]
    /// True for entries that only pad the epoch to a multiple of the world size.
    public let isPadding: [Bool]
    /// [B, K] ground-truth concepts when the dataset has them.
    public let concepts: Tensor?
    public var count: Int { labels.count }
}

public final class DataLoader: @unchecked Sendable {
    public let dataset: PreparedDataset
    /// Dataset items this loader draws from (the chosen splits), in index order.
    public let items: [Int]
    public let rank: Int
    public let worldSize: Int
    public let options: LoaderOptions
    public let outputSize: Int
    private let cache: DecodedCache?

    public init(dataset: PreparedDataset, splits: [Split], rank: Int = 0, worldSize: Int = 1, options: LoaderOptions) throws {
        precondition(worldSize >= 1 && rank >= 0 && rank < worldSize, "rank \(rank) of \(worldSize)")
        guard options.batchSize >= 1 else { throw DatasetError(dataset.root, "batch size must be at least 1") }
        self.dataset = dataset
        self.items = dataset.index.indices(of: splits)
        guard !items.isEmpty else {
            throw DatasetError(dataset.root, "has no images in split \(splits.map(\.rawValue).joined(separator: "+"))")
        }
        self.rank = rank
        self.worldSize = worldSize
        self.options = options
        self.outputSize = options.outputSize ?? dataset.resolution
        self.cache = options.cacheDecoded ? DecodedCache(count: dataset.items.count) : nil
        if options.dropLast && batchesPerEpoch == 0 {
            throw DatasetError(dataset.root, "\(items.count) images cannot fill one batch of \(options.batchSize) per rank on \(worldSize) rank(s)")
        }
    }

    /// Items per rank per epoch: ceil(n / world size).
    public var shardSize: Int { (items.count + worldSize - 1) / worldSize }

    public var batchesPerEpoch: Int {
        options.dropLast ? shardSize / options.batchSize : (shardSize + options.batchSize - 1) / options.batchSize
    }

    /// The epoch's order of dataset items over all ranks, padded to `shardSize * worldSize`.
    public func epochOrder(_ epoch: Int) -> [Int] {
        var order = items
        if options.shuffle {
            let permutation = RandomGenerator(seed: options.seed, stream: 0x5348_5546_0000_0000 | UInt64(epoch)).permutation(items.count)
            order = permutation.map { items[$0] }
        }
        let total = shardSize * worldSize
        var k = 0
        while order.count < total {
            order.append(order[k % items.count])
            k += 1
        }
        return order
    }

    /// Global positions (into `epochOrder`) of this rank's shard.
    public func shardPositions() -> [Int] {
        Array(stride(from: rank, to: shardSize * worldSize, by: worldSize))
    }

    /// Global positions of one batch of this rank.
    public func batchPositions(batch: Int) -> [Int] {
        let shard = shardPositions()
        let start = batch * options.batchSize
        precondition(batch >= 0 && batch < batchesPerEpoch, "batch \(batch) of \(batchesPerEpoch)")
        return Array(shard[start..<min(shard.count, start + options.batchSize)])
    }

    /// The random stream of the transform at a global position.
    func transformRandom(epoch: Int, position: Int) -> RandomGenerator {
        RandomGenerator(seed: options.seed ^ 0x5452_414E_5346_4F52, stream: (UInt64(epoch) << 32) | UInt64(position))
    }

    func decoded(_ item: Int) throws -> RGBImage {
        if let cache, let image = cache.get(item) { return image }
        let image = try dataset.image(item)
        cache?.set(item, image)
        return image
    }

    /// Loads one batch in the caller's thread.
    public func loadBatch(epoch: Int, batch: Int) throws -> Batch {
        let order = epochOrder(epoch)
        return try loadBatch(epoch: epoch, batch: batch, order: order)
    }

    func loadBatch(epoch: Int, batch: Int, order: [Int]) throws -> Batch {
        let positions = batchPositions(batch: batch)
        let size = outputSize, planeCount = 3 * size * size
        let images = Tensor(uninitializedShape: [positions.count, 3, size, size])
        let conceptCount = dataset.index.conceptNames.count
        var concepts: [Float] = []
        var labels: [Int] = [], itemList: [Int] = [], padding: [Bool] = []
        for (j, position) in positions.enumerated() {
            let item = order[position]
            let image = try decoded(item)
            options.transform.apply(image, size: size, rng: transformRandom(epoch: epoch, position: position), into: images.data + j * planeCount)
            labels.append(dataset.items[item].label)
            itemList.append(item)
            padding.append(position >= items.count)
            if conceptCount > 0 { concepts += dataset.items[item].concepts ?? [Float](repeating: 0, count: conceptCount) }
        }
        return Batch(epoch: epoch, index: batch, images: images, labels: labels, items: itemList, isPadding: padding,
                     concepts: conceptCount > 0 ? Tensor(concepts, shape: [positions.count, conceptCount]) : nil)
    }

    /// The batches of one epoch from `start`, assembled ahead on background threads.
    public func batches(epoch: Int, from start: Int = 0) -> BatchStream {
        BatchStream(loader: self, epoch: epoch, start: start)
    }
}

/// Decoded images kept in memory (thread-safe).
final class DecodedCache: @unchecked Sendable {
    private var images: [RGBImage?]
    private let lock = Lock()
    init(count: Int) { images = [RGBImage?](repeating: nil, count: count) }
    func get(_ i: Int) -> RGBImage? { lock.withLock { images[i] } }
    func set(_ i: Int, _ image: RGBImage) { lock.withLock { images[i] = image } }
}

/// An epoch's batches in order. `next()` returns nil after the last one and rethrows a
/// loading error (naming the file) at the batch where it happened.
public final class BatchStream {
    private let state: StreamState
    private let loader: DataLoader

    init(loader: DataLoader, epoch: Int, start: Int) {
        self.loader = loader
        state = StreamState(loader: loader, epoch: epoch, start: start, end: loader.batchesPerEpoch, capacity: max(1, loader.options.prefetch))
        for _ in 0..<min(loader.options.workers, max(0, loader.batchesPerEpoch - start)) {
            let state = self.state
            startThread { state.work() }
        }
    }

    deinit { state.cancel() }

    public func next() throws -> Batch? {
        if loader.options.workers == 0 { return try state.nextInline() }
        return try state.next()
    }
}

final class StreamState: @unchecked Sendable {
    let loader: DataLoader
    let epoch: Int
    let end: Int
    let capacity: Int
    let order: [Int]
    private var nextToClaim: Int
    private var nextToDeliver: Int
    private var results: [Int: Result<Batch, Error>] = [:]
    private var cancelled = false
    private let lock = Lock()

    init(loader: DataLoader, epoch: Int, start: Int, end: Int, capacity: Int) {
        self.loader = loader
        self.epoch = epoch
        self.end = end
        self.capacity = capacity
        self.order = loader.epochOrder(epoch)
        nextToClaim = start
        nextToDeliver = start
    }

    func cancel() {
        lock.withLock {
            cancelled = true
            lock.broadcast()
        }
    }

    /// A worker: claims the next batch while fewer than `capacity` are waiting, loads it, posts it.
    func work() {
        while true {
            let claimed: Int? = lock.withLock {
                while !cancelled && nextToClaim < end && nextToClaim - nextToDeliver >= capacity { lock.wait() }
                if cancelled || nextToClaim >= end { return nil }
                nextToClaim += 1
                return nextToClaim - 1
            }
            guard let batch = claimed else { return }
            let result = Result { try loader.loadBatch(epoch: epoch, batch: batch, order: order) }
            lock.withLock {
                results[batch] = result
                lock.broadcast()
            }
        }
    }

    func next() throws -> Batch? {
        let result: Result<Batch, Error>? = lock.withLock {
            guard nextToDeliver < end else { return nil }
            while results[nextToDeliver] == nil { lock.wait() }
            let result = results.removeValue(forKey: nextToDeliver)!
            nextToDeliver += 1
            lock.broadcast()
            return result
        }
        return try result?.get()
    }

    func nextInline() throws -> Batch? {
        guard nextToDeliver < end else { return nil }
        let batch = nextToDeliver
        nextToDeliver += 1
        return try loader.loadBatch(epoch: epoch, batch: batch, order: order)
    }
}

/// Runs `body` on a new detached thread.
func startThread(_ body: @escaping @Sendable () -> Void) {
    final class Box: @unchecked Sendable {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    let context = Unmanaged.passRetained(Box(body)).toOpaque()
    var thread = pthread_t()
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
    let status = pthread_create(&thread, &attributes, { raw in
        let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
        box.body()
        return nil
    }, context)
    pthread_attr_destroy(&attributes)
    if status != 0 {
        // No thread: run inline so the stream still completes.
        Unmanaged<Box>.fromOpaque(context).takeRetainedValue().body()
    }
}
