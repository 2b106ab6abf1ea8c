// What the concept explorer computes, without HTTP: a loaded VisCoIN ensemble and its test
// split, an index of the test images that activate each concept most (built once at start),
// uploaded images (decoded with our codecs, centre-cropped and resized as a prepared image),
// and per image: its reconstruction, f's and Theta's top classes, the concepts that matter for
// the predicted class (v_j, spec viscoin.md 9), images regenerated with concept multipliers or
// absolute values, and concept heatmaps. Not thread-safe: the server calls it from one queue.
import Common
import Communication
import Datasets
import Evaluation
import ImageCodecs
import Models
import TensorCore

/// Where an image comes from: a test-split position or an upload id.
public enum ExplorerSource: Hashable, Sendable {
    case test(Int)
    case upload(String)
}

/// A request the explorer refuses (bad index, range, image...): HTTP status and a message.
public struct ExplorerError: Error, CustomStringConvertible, Sendable {
    public let status: Int
    public let message: String
    public init(_ status: Int, _ message: String) {
        self.status = status
        self.message = message
    }
    public var description: String { message }
}

public struct RankedClass: Sendable {
    public let index: Int
    public let name: String
    public let probability: Float
}

public struct ConceptSummary: Sendable {
    public let index: Int
    /// v_j for the predicted class (normalised by max |v|).
    public let intensity: Float
    /// a_j = max of Phi_j.
    public let activation: Float
    /// Test positions of the images that activate this concept most.
    public let topImages: [Int]
}

public struct ExplorerPrediction: Sendable {
    public let imagePNG: [UInt8]
    public let classifier: [RankedClass]
    public let explainer: [RankedClass]
}

public struct ExplorerAnalysis: Sendable {
    public let source: ExplorerSource
    public let label: Int?
    public let originalPNG: [UInt8]
    public let reconstruction: ExplorerPrediction
    public let original: (classifier: [RankedClass], explainer: [RankedClass])
    public let predictedClass: Int
    /// The concepts that matter for the predicted class, most important first.
    public let concepts: [ConceptSummary]
    /// Every concept's a_j (for absolute-value sliders).
    public let activations: [Float]
}

public final class ExplorerModel: @unchecked Sendable {
    public let models: VisCoINModels
    public let dataset: PreparedDataset
    public let classNames: [String]
    /// Dataset items of the test split, in order (position -> item).
    public let testItems: [Int]
    /// Concept -> test positions, most activating first.
    public let topImages: [[Int]]
    public let maxUploads: Int
    /// How many concepts `analyse` lists.
    public let listedConcepts: Int
    public var resolution: Int { models.resolution }
    public var concepts: Int { models.concepts }

    private var uploads: [(id: String, image: RGBImage)] = []
    private var uploadCounter: UInt64 = 0
    private var cache: [(source: ExplorerSource, analysis: ConceptAnalysis)] = []

    /// Loads nothing itself: `models` (evaluation mode) and `dataset` as the CLI opened them.
    /// Runs f and Psi over the whole test split once to rank the images of each concept.
    public init(models: VisCoINModels, dataset: PreparedDataset, gallerySize: Int = 6, listedConcepts: Int = 8, maxUploads: Int = 32,
                progress: ((String) -> Void)? = nil) throws {
        self.models = models
        self.dataset = dataset
        self.classNames = dataset.classes
        self.testItems = dataset.index.indices(of: [.test])
        self.maxUploads = maxUploads
        self.listedConcepts = listedConcepts
        models.eval()
        models.freeze()
        progress?("indexing the concepts of \(testItems.count) test images")
        let loader = try DataLoader(dataset: dataset, splits: [.test], rank: 0, worldSize: 1,
                                    options: LoaderOptions(batchSize: 16, shuffle: false, transform: .plain(flipProbability: 0), workers: 1))
        let stats = try ConceptStatisticsCollector.collect(models, loader: loader, communicator: SingleProcessCommunicator())
        var position: [Int: Int] = [:]
        for (p, item) in testItems.enumerated() { position[item] = p }
        let positions = stats.items.map { position[$0] ?? 0 }
        topImages = (0..<models.concepts).map { j in
            Array(stats.activations.indices.sorted { stats.activations[$0][j] > stats.activations[$1][j] }.prefix(gallerySize).map { positions[$0] })
        }
    }

    // MARK: Images

    public func testPosition(_ position: Int) throws -> Int {
        guard position >= 0 && position < testItems.count else {
            throw ExplorerError(404, "test image \(position) does not exist (the test split has \(testItems.count) images: 0...\(testItems.count - 1))")
        }
        return testItems[position]
    }

    /// Test positions of `classIndex` (nil: every class) from `offset`, at most `limit`.
    public func list(classIndex: Int?, offset: Int, limit: Int) throws -> (total: Int, positions: [Int]) {
        if let classIndex, classIndex < 0 || classIndex >= classNames.count {
            throw ExplorerError(400, "class \(classIndex) does not exist (0...\(classNames.count - 1))")
        }
        let all = testItems.indices.filter { classIndex == nil || dataset.index.items[testItems[$0]].label == classIndex }
        guard offset >= 0, limit >= 1, limit <= 500 else { throw ExplorerError(400, "offset must be >= 0 and limit in 1...500") }
        return (all.count, Array(all.dropFirst(offset).prefix(limit)))
    }

    public func label(ofPosition position: Int) -> Int? { dataset.index.items[testItems[position]].label }

    public func picture(_ source: ExplorerSource) throws -> RGBImage {
        switch source {
        case .test(let position):
            let item = try testPosition(position)
            do { return try dataset.image(item) } catch { throw ExplorerError(500, "cannot read test image \(position): \(error)") }
        case .upload(let id):
            guard let entry = uploads.first(where: { $0.id == id }) else {
                throw ExplorerError(404, "upload \(id) is unknown or expired (the server keeps the last \(maxUploads))")
            }
            return entry.image
        }
    }

    public func thumbnailPNG(_ position: Int) throws -> [UInt8] { try ImageCodec.encodePNG(try picture(.test(position))) }

    /// Decodes an uploaded PNG or JPEG (at most `maxPixels`), crops its central square and
    /// resizes it to the model's resolution. Returns its id.
    public func upload(_ bytes: [UInt8], maxPixels: Int = 40_000_000) throws -> String {
        let format = bytes.withUnsafeBytes { ImageFormat.detect($0) }
        guard format == .png || format == .jpeg else { throw ExplorerError(415, "the upload is not a PNG or JPEG image") }
        let decoded: RGBImage
        do { decoded = try ImageCodec.decode(bytes, source: "upload") } catch { throw ExplorerError(400, "cannot decode the upload: \(error)") }
        guard decoded.width >= 8, decoded.height >= 8 else { throw ExplorerError(400, "the upload is \(decoded.width)x\(decoded.height); at least 8x8 is needed") }
        guard decoded.width * decoded.height <= maxPixels else { throw ExplorerError(413, "the upload has more than \(maxPixels) pixels") }
        let square = ImageResize.resized(decoded, crop: .centerSquare(width: decoded.width, height: decoded.height), width: resolution, height: resolution)
        uploadCounter += 1
        let id = "u\(uploadCounter)"
        uploads.append((id, square))
        if uploads.count > maxUploads { uploads.removeFirst(uploads.count - maxUploads) }
        return id
    }

    func tensor(_ picture: RGBImage) -> Tensor { ImageTensors.tensor([picture]) / 127.5 - 1 }

    // MARK: Predictions

    func ranked(_ probabilities: [Float], top: Int = 5) -> [RankedClass] {
        probabilities.indices.sorted { probabilities[$0] > probabilities[$1] || (probabilities[$0] == probabilities[$1] && $0 < $1) }
            .prefix(top).map { RankedClass(index: $0, name: $0 < classNames.count ? classNames[$0] : "\($0)", probability: probabilities[$0]) }
    }

    /// f's and Theta's class probabilities of `image` [1, 3, R, R].
    func predict(_ image: Tensor) -> (classifier: [Float], explainer: [Float]) {
        noGrad {
            let (logits, hidden) = models.classify(image)
            return (logits.softmax(dim: 1).toArray(), models.explainer(models.concepts(hidden).phi).softmax(dim: 1).toArray())
        }
    }

    func analysis(_ source: ExplorerSource) throws -> ConceptAnalysis {
        if let hit = cache.first(where: { $0.source == source }) { return hit.analysis }
        let a = ConceptAmplification.analyse(models, image: tensor(try picture(source)))
        cache.append((source, a))
        if cache.count > 16 { cache.removeFirst() }
        return a
    }

    func prediction(_ image: Tensor) throws -> ExplorerPrediction {
        let p = predict(image)
        let png = try ImageCodec.encodePNG(ImageTensors.images(fromGenerated: image)[0])
        return ExplorerPrediction(imagePNG: png, classifier: ranked(p.classifier), explainer: ranked(p.explainer))
    }

    public func analyse(_ source: ExplorerSource) throws -> ExplorerAnalysis {
        let picture = try picture(source)
        let a = try analysis(source)
        let rebuilt = noGrad { models.gan(a.phi, a.phiPrime, noise: .const).image }
        let order = ConceptAmplification.select(a.intensities, .topK(min(listedConcepts, concepts)))
        let summaries = order.map { ConceptSummary(index: $0, intensity: a.intensities[$0], activation: a.pooling[$0], topImages: topImages[$0]) }
        var label: Int? = nil
        if case .test(let position) = source { label = self.label(ofPosition: position) }
        return ExplorerAnalysis(source: source, label: label, originalPNG: try ImageCodec.encodePNG(picture), reconstruction: try prediction(rebuilt),
                                original: (ranked(a.classifierProbabilities), ranked(a.explainerProbabilities)), predictedClass: a.predictedClass,
                                concepts: summaries, activations: a.pooling)
    }

    /// The image regenerated with Phi_j scaled by `multipliers[j]`, or scaled so that its
    /// maximum becomes `values[j]` (a map that is all zero becomes that constant).
    public func regenerate(_ source: ExplorerSource, multipliers: [Int: Float], values: [Int: Float]) throws -> ExplorerPrediction {
        for (j, m) in multipliers {
            guard j >= 0 && j < concepts else { throw ExplorerError(400, "concept \(j) does not exist (0...\(concepts - 1))") }
            guard m.isFinite && m >= 0 && m <= 4 else { throw ExplorerError(400, "multiplier of concept \(j) must be in 0...4, got \(m)") }
        }
        for (j, v) in values {
            guard j >= 0 && j < concepts else { throw ExplorerError(400, "concept \(j) does not exist (0...\(concepts - 1))") }
            guard v.isFinite && v >= 0 && v <= 1000 else { throw ExplorerError(400, "value of concept \(j) must be in 0...1000, got \(v)") }
            guard multipliers[j] == nil else { throw ExplorerError(400, "concept \(j) has both a multiplier and a value") }
        }
        let a = try analysis(source)
        let cells = a.phi.shape[2] * a.phi.shape[3]
        let phi = a.phi.copy()
        for (j, m) in multipliers { for c in 0..<cells { phi.data[j * cells + c] *= m } }
        for (j, v) in values {
            let peak = a.pooling[j]
            for c in 0..<cells { phi.data[j * cells + c] = peak > 0 ? phi.data[j * cells + c] * (v / peak) : v }
        }
        let image = noGrad { models.gan(phi, a.phiPrime, noise: .const).image }
        return try prediction(image)
    }

    /// A heatmap of `concept` (nil: the explainer's predicted class) over the image, as an
    /// overlay PNG at least 128 pixels wide, and the map.
    public func heatmap(_ source: ExplorerSource, concept: Int?, kind: HeatmapKind) throws -> (png: [UInt8], map: Heatmap) {
        if let concept, concept < 0 || concept >= concepts { throw ExplorerError(400, "concept \(concept) does not exist (0...\(concepts - 1))") }
        if concept == nil && kind == .phi { throw ExplorerError(400, "a class heatmap is a Grad-CAM: give kind=gradcam or a concept") }
        let picture = try picture(source)
        let map: Heatmap
        if let concept, kind == .phi {
            map = ConceptHeatmaps.phiMaps(try analysis(source).phi, concepts: [concept])[0]  // the cached Phi: no pass through f
        } else {
            let set = ConceptHeatmaps.compute(models, image: tensor(picture), concepts: concept.map { [$0] } ?? [])
            map = concept == nil ? set.classMap : set.conceptMaps[0]
        }
        let overlay = ConceptHeatmaps.overlay(picture, map, scale: max(1, 128 / max(resolution, 1)))
        return (try ImageCodec.encodePNG(overlay), map)
    }
}
