// FID as stylegan2-ada computes it, end to end: features of real images (an image folder or a
// prepared dataset) or of a generator's samples, accumulated in Float64 on every rank and
// summed across ranks, then the Frechet distance; and the statistics file format that caches
// real statistics between runs. Work is split into fixed batches dealt round-robin to the
// ranks, and each generated batch's latents and noise depend only on its index, so the images
// measured do not depend on the number of ranks.
import Common
import Communication
import Datasets
import ImageCodecs
import FeatureMetrics
import Models
import SafeTensors
import TensorCore

public struct FIDResult {
    public var fid: Double
    public var kid: Double?
    public var realItems: Int
    public var fakeItems: Int
    public var detector: String

    public var json: JSONValue {
        var members: [(String, JSONValue)] = [("fid", .double(fid)), ("real_items", JSONValue(realItems)), ("fake_items", JSONValue(fakeItems)),
                                              ("detector", .string(detector))]
        if let kid { members.append(("kid", .double(kid))) }
        return .object(members)
    }
}

public enum FIDPipeline {
    /// Batches `0 ..< ceil(count / batch)` of this rank: b, b + W, b + 2W, ...
    static func myBatches(count: Int, batch: Int, communicator: any Communicator) -> [Range<Int>] {
        stride(from: communicator.rank * batch, to: count, by: communicator.size * batch).map { $0..<min(count, $0 + batch) }
    }

    /// Statistics of images read by `load` (index -> picture), `count` in all (collective).
    public static func statistics(count: Int, detector: FeatureDetector, batch: Int, keepFeatures: Bool, communicator: any Communicator,
                                  progress: ((Int) -> Void)? = nil, load: (Int) throws -> RGBImage) throws -> FeatureStatistics {
        let stats = FeatureStatistics(dimension: detector.dimension, keepFeatures: keepFeatures)
        var done = 0
        for range in myBatches(count: count, batch: batch, communicator: communicator) {
            var pending: [RGBImage] = []
            for i in range {
                let image = try load(i)
                if let first = pending.first, first.width != image.width || first.height != image.height {
                    stats.append(detector.features(ImageTensors.tensor(pending)))
                    pending = []
                }
                pending.append(image)
            }
            if !pending.isEmpty { stats.append(detector.features(ImageTensors.tensor(pending))) }
            done += range.count
            progress?(done * communicator.size)
        }
        try stats.allReduce(communicator)
        return stats
    }

    /// Statistics of the images of a folder (recursively; PNG, JPEG, TIFF).
    public static func folderStatistics(_ directory: String, detector: FeatureDetector, batch: Int = 16, maxItems: Int? = nil,
                                        keepFeatures: Bool = false, communicator: any Communicator,
                                        progress: ((Int, Int) -> Void)? = nil) throws -> FeatureStatistics {
        var files = try ImageFolder.list(directory)
        if let maxItems { files = Array(files.prefix(maxItems)) }
        guard !files.isEmpty else { throw DetectorError(message: "\(directory): no PNG, JPEG or TIFF images found") }
        return try statistics(count: files.count, detector: detector, batch: batch, keepFeatures: keepFeatures, communicator: communicator,
                              progress: progress.map { p in { p($0, files.count) } }) { try ImageCodec.read(path: Files.join(directory, files[$0])) }
    }

    /// Statistics of the images of a prepared dataset's splits (all of them by default).
    public static func datasetStatistics(_ dataset: PreparedDataset, splits: [Split] = Split.allCases, detector: FeatureDetector,
                                         batch: Int = 16, maxItems: Int? = nil, communicator: any Communicator) throws -> FeatureStatistics {
        var items = dataset.index.indices(of: splits)
        if let maxItems { items = Array(items.prefix(maxItems)) }
        guard !items.isEmpty else { throw DetectorError(message: "\(dataset.root): no images in the splits \(splits.map(\.rawValue))") }
        return try statistics(count: items.count, detector: detector, batch: batch, keepFeatures: false, communicator: communicator) {
            try dataset.image(items[$0])
        }
    }

    /// Statistics of `count` samples of a generator (noise random, as the reference metric);
    /// batch b draws its latents and noise from (seed, b).
    public static func generatorStatistics(_ g: Generator, count: Int, detector: FeatureDetector, truncation: Float = 1, batch: Int = 16,
                                           seed: UInt64 = 123, keepFeatures: Bool = false, communicator: any Communicator) throws -> FeatureStatistics {
        let stats = FeatureStatistics(dimension: detector.dimension, keepFeatures: keepFeatures)
        for range in myBatches(count: count, batch: batch, communicator: communicator) {
            let key = UInt64(range.lowerBound / batch)
            let z = RandomGenerator(seed: seed, stream: 2 * key).normal([range.count, g.config.zDim])
            let noise = RandomGenerator(seed: seed, stream: 2 * key + 1)
            let images = noGrad { g(z, truncationPsi: truncation, noise: .random(noise)).image }
            // uint8(clamp(img * 127.5 + 128, 0, 255)) as the reference metric code.
            stats.append(detector.features(ImageTensors.quantized(fromGenerated: images)))
        }
        try stats.allReduce(communicator)
        return stats
    }

    /// FID (and KID when both sides kept their features).
    public static func compare(generated: FeatureStatistics, real: FeatureStatistics, detector: String) throws -> FIDResult {
        let result = try FrechetDistance.compute(generated: generated, real: real)
        var kid: Double? = nil
        if generated.keepFeatures && real.keepFeatures {
            kid = KernelInceptionDistance.compute(generated: generated.features, real: real.features, dimension: generated.dimension)
        }
        return FIDResult(fid: result.fid, kid: kid, realItems: real.count, fakeItems: generated.count, detector: detector)
    }
}

/// Feature-statistics files: F64 tensors "sum" [D], "sum_of_products" [D, D], I64 "count", and
/// the detector's label in the metadata (statistics of another detector are refused).
public enum StatisticsFile {
    public static let format = "feature-statistics-v1"

    public static func save(_ s: FeatureStatistics, detector: String, to path: String) throws {
        var writer = SafeTensorsWriter()
        let d = s.dimension
        func bytes(_ values: [Double]) -> [UInt8] { values.withUnsafeBytes { Array($0) } }
        try writer.add(name: "sum", dtype: .F64, shape: [d], bytes: bytes(s.sum))
        try writer.add(name: "sum_of_products", dtype: .F64, shape: [d, d], bytes: bytes(s.sumOfProducts))
        try writer.add(name: "count", shape: [1], int64s: [Int64(s.count)])
        writer.metadata = [("viscoin.format", format), ("viscoin.detector", detector)]
        try writer.write(to: path)
    }

    /// Reads a statistics file; `detector` (when given) must match the one that wrote it.
    public static func load(_ path: String, detector: String? = nil) throws -> FeatureStatistics {
        let file = try SafeTensorsFile(path: path)
        guard file.metadata["viscoin.format"] == format else {
            throw DetectorError(message: "\(path): not a feature-statistics file (write one with `viscoin fid --save-real-stats`)")
        }
        if let detector, let written = file.metadata["viscoin.detector"], written != detector {
            throw DetectorError(message: "\(path): statistics of \(written), not of \(detector)")
        }
        let sum = try file.doubles("sum"), products = try file.doubles("sum_of_products")
        let count = Int(try file.int64s("count").first ?? 0)
        guard products.count == sum.count * sum.count, count > 0 else { throw DetectorError(message: "\(path): inconsistent statistics") }
        return FeatureStatistics(dimension: sum.count, sum: sum, sumOfProducts: products, count: count)
    }
}
