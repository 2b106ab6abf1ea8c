// Writing a prepared dataset: the planned items are shared out across ranks (item i goes to
// rank i mod world size) and threads; each produces its PNG; failures of a source image are
// gathered on every rank; rank 0 writes `dataset.json`. Everything is written into
// `OUT.partial` and renamed to `OUT` at the end, so an interrupted run leaves no
// half-written dataset behind.
import Common
import Communication
import Dispatch
import ImageCodecs
import TensorCore
#if canImport(Glibc)
import Glibc
#endif

/// One image to produce.
public struct PlannedItem: Sendable {
    public enum Origin: Sendable {
        /// A source image file and how to crop it before resizing.
        case file(path: String, crop: CropPolicy)
        /// Image `index` of the built-in generator with its layout seed.
        case demo(index: Int, seed: UInt64)
    }
    public var origin: Origin
    public var label: Int
    public var split: Split
    public var source: String
    public var bbox: [Double]?
    public var concepts: [Float]?

    public init(origin: Origin, label: Int, split: Split, source: String, bbox: [Double]? = nil, concepts: [Float]? = nil) {
        self.origin = origin
        self.label = label
        self.split = split
        self.source = source
        self.bbox = bbox
        self.concepts = concepts
    }
}

/// How a source image becomes square before resizing.
public enum CropPolicy: Sendable, Equatable {
    /// The central largest square (stylegan2-ada's `center-crop`).
    case centerSquare
    /// A square of side max(w, h) centred on the box (x, y, w, h), moved inside the image and
    /// shrunk to fit.
    case boxSquare([Double])

    public func box(width: Int, height: Int, source: String) throws -> CropBox {
        switch self {
        case .centerSquare:
            return CropBox.centerSquare(width: width, height: height)
        case .boxSquare(let b):
            let (x, y, w, h) = (b[0], b[1], b[2], b[3])
            let x0 = max(0, x), y0 = max(0, y), x1 = min(Double(width), x + w), y1 = min(Double(height), y + h)
            guard x1 - x0 >= 1, y1 - y0 >= 1 else {
                throw DatasetError(source, "bounding box \(b) lies outside the \(width)x\(height) image")
            }
            let side = min(Int(max(x1 - x0, y1 - y0).rounded()), width, height)
            let cx = (x0 + x1) / 2, cy = (y0 + y1) / 2
            let left = min(max(0, Int((cx - Double(side) / 2).rounded())), width - side)
            let top = min(max(0, Int((cy - Double(side) / 2).rounded())), height - side)
            return CropBox(x: left, y: top, width: side, height: side)
        }
    }
}

public struct PrepareOptions: Sendable {
    public var output: String
    public var size: Int
    public var skipBad: Bool
    public var force: Bool
    /// Source images whose shorter side is below this are bad input.
    public var minimumSourceSize: Int

    public init(output: String, size: Int, skipBad: Bool = false, force: Bool = false, minimumSourceSize: Int = 32) {
        self.output = output
        self.size = size
        self.skipBad = skipBad
        self.force = force
        self.minimumSourceSize = minimumSourceSize
    }
}

/// What a source (CUB, class folders, demo) plans before any image is produced.
public struct PreparationPlan: Sendable {
    public var kind: String
    public var classes: [String]
    public var conceptNames: [String]
    public var items: [PlannedItem]
    /// Sources already left out while planning (with `--skip-bad`).
    public var skipped: [SkippedSource]
    public var provenance: [(String, JSONValue)]

    public init(kind: String, classes: [String], conceptNames: [String] = [], items: [PlannedItem], skipped: [SkippedSource] = [],
                provenance: [(String, JSONValue)] = []) {
        self.kind = kind
        self.classes = classes
        self.conceptNames = conceptNames
        self.items = items
        self.skipped = skipped
        self.provenance = provenance
    }
}

/// A source image that cannot be used (as opposed to a failure to write the output).
struct BadSource: Error {
    let reason: String
}

public enum Preparation {
    /// Produces one prepared image (decode, crop, resize; or draw a demo image).
    public static func render(_ item: PlannedItem, size: Int, minimumSourceSize: Int) throws -> RGBImage {
        switch item.origin {
        case .demo(let index, let seed):
            guard let concepts = item.concepts else { throw BadSource(reason: "demo item without concepts") }
            return DemoTissue.render(label: item.label, concepts: concepts, size: size, index: index, seed: seed)
        case .file(let path, let crop):
            let image: RGBImage
            do { image = try ImageCodec.read(path: path) } catch { throw BadSource(reason: "\(error)") }
            guard min(image.width, image.height) >= minimumSourceSize else {
                throw BadSource(reason: "\(path): image is too small (\(image.width)x\(image.height); the shorter side must be at least \(minimumSourceSize))")
            }
            let box: CropBox
            do { box = try crop.box(width: image.width, height: image.height, source: path) } catch { throw BadSource(reason: "\(error)") }
            return ImageResize.resized(image, crop: box, width: size, height: size)
        }
    }

    /// Writes the plan as a prepared dataset. Collective: every rank of `communicator` calls
    /// it with the same plan. Returns the index written.
    @discardableResult
    public static func write(_ plan: PreparationPlan, options: PrepareOptions, communicator: any Communicator,
                             log: (String) -> Void = { Console.print($0) }) throws -> DatasetIndex {
        // Decisions on the normalised path (trailing slashes, `.`, symlinks), before any work.
        let out = PathSafety.canonical(options.output), partial = out + ".partial"
        let rank = communicator.rank, world = communicator.size
        guard !plan.items.isEmpty else { throw DatasetError(options.output, "nothing to prepare: the source has no usable images") }
        guard out != "/" else { throw DatasetError(options.output, "cannot replace the root folder") }
        if Files.exists(out) {
            guard options.force else { throw DatasetError(options.output, "already exists (use --force to replace it)") }
            // --force replaces only what prepare wrote: a folder with a valid dataset.json.
            guard Files.isDirectory(out) else { throw DatasetError(options.output, "exists and is not a folder; refusing to replace it") }
            let index = Files.join(out, "dataset.json")
            guard Files.exists(index), (try? DatasetIndex.parse(try Files.read(index), path: index)) != nil else {
                throw DatasetError(options.output, "exists and is not a prepared dataset (no valid dataset.json); --force only replaces a folder prepare wrote")
            }
        }
        // From here on, Ctrl-C or SIGTERM stop the work between images; the partial output is
        // then removed by rank 0.
        StopSignals.install()
        defer { StopSignals.restoreDefaults() }
        if rank == 0 {
            try Files.remove(partial)
            try Files.createDirectory(partial)
            for folder in Set(plan.items.indices.map { String(DatasetItem.fileName($0).prefix(5)) }).sorted() {
                try Files.createDirectory(Files.join(partial, folder))
            }
        }
        try communicator.barrier()

        // This rank's share, produced on the rank's threads.
        let mine = Array(stride(from: rank, to: plan.items.count, by: world))
        var failures = [String?](repeating: nil, count: mine.count)
        var writeError: Error? = nil
        let lock = Lock()
        let started = Console.now()
        var done = 0, lastReport = started
        failures.withUnsafeMutableBufferPointer { failed in
            Parallel.run(mine.count) { k in
                let i = mine[k], item = plan.items[i]
                if StopSignals.pending != 0 || lock.withLock({ writeError != nil }) { return }
                do {
                    let image = try render(item, size: options.size, minimumSourceSize: options.minimumSourceSize)
                    let png = try ImageCodec.encodePNG(image)
                    try Files.writeNew(Files.join(partial, DatasetItem.fileName(i)), bytes: png)
                } catch let bad as BadSource {
                    failed[k] = bad.reason
                } catch {
                    lock.withLock { if writeError == nil { writeError = error } }
                }
                lock.withLock {
                    done += 1
                    let now = Console.now()
                    if rank == 0 && (now - lastReport >= 5 || done == mine.count) {
                        lastReport = now
                        let rate = Double(done) / max(now - started, 1e-9)
                        log("prepare: \(done)/\(mine.count) images on rank 0 of \(world) (\(Console.fixed(rate, 1)) images/s)")
                    }
                }
            }
        }
        let stopSignal = Int32(world > 1 ? try communicator.allReduceMax(Double(StopSignals.pending)) : Double(StopSignals.pending))
        if stopSignal != 0 {
            try communicator.barrier()
            if rank == 0 { try? Files.remove(partial) }
            throw GracefulStop(status: 128 + stopSignal, message: "prepare: stopped by \(StopSignals.name(stopSignal)): nothing was written to \(options.output) "
                               + "(the partial output was removed); run the command again to prepare it")
        }
        // A write failure (a full disk) on any rank: the partial output goes, nothing is kept.
        let failedHere: Double = writeError != nil ? 1 : 0
        if (world > 1 ? try communicator.allReduceMax(failedHere) : failedHere) > 0 {
            try communicator.barrier()
            if rank == 0 { try? Files.remove(partial) }
            if let writeError { throw DatasetError(options.output, "writing failed (\(writeError)); the partial output was removed") }
            throw DatasetError(options.output, "another rank failed to write its images; the partial output was removed")
        }
        sync()

        // Every rank learns every failure.
        var mineText = ""
        for (k, reason) in failures.enumerated() {
            if let reason { mineText += "\(mine[k])\t\(reason.replacingTabs())\n" }
        }
        var bad: [Int: String] = [:]
        for text in try communicator.allGather(string: mineText) {
            for line in text.split(separator: "\n") {
                let parts = line.split(separator: "\t", maxSplits: 1)
                if parts.count == 2, let i = Int(parts[0]) { bad[i] = String(parts[1]) }
            }
        }
        if !bad.isEmpty && !options.skipBad {
            if rank == 0 { try? Files.remove(partial) }
            let listed = bad.keys.sorted().prefix(20).map { "  \(plan.items[$0].source): \(bad[$0]!)" }.joined(separator: "\n")
            throw DatasetError(out, "\(bad.count) source image(s) cannot be used (rerun with --skip-bad to leave them out):\n\(listed)"
                                    + (bad.count > 20 ? "\n  ..." : ""))
        }

        var items: [DatasetItem] = []
        var skipped = plan.skipped
        for (i, item) in plan.items.enumerated() {
            if let reason = bad[i] {
                skipped.append(SkippedSource(source: item.source, reason: reason))
                continue
            }
            items.append(DatasetItem(file: DatasetItem.fileName(i), label: item.label, split: item.split, source: item.source,
                                     bbox: item.bbox, concepts: item.concepts))
        }
        let index = DatasetIndex(kind: plan.kind, resolution: options.size, classes: plan.classes, conceptNames: plan.conceptNames,
                                 items: items, skipped: skipped, provenance: plan.provenance)
        if rank == 0 {
            try Files.writeAtomically(Files.join(partial, "dataset.json"), text: index.serialized())
            if let preview = previewGrid(index, folder: partial) {
                try Files.writeAtomically(Files.join(partial, "preview.png"), bytes: try ImageCodec.encodePNG(preview))
            }
            if !skipped.isEmpty {
                try Files.writeAtomically(Files.join(partial, "skipped.txt"), text: skipped.map { "\($0.source)\t\($0.reason)\n" }.joined())
            }
            if Files.exists(out) {
                let old = out + ".replaced"
                try Files.remove(old)
                try Files.move(out, to: old)
                try Files.move(partial, to: out)
                try Files.remove(old)
            } else {
                try Files.move(partial, to: out)
            }
            Files.syncDirectory(Files.parentDirectory(of: out))
            let counts = Split.allCases.map { "\($0.rawValue) \(index.count($0))" }.joined(separator: ", ")
            log("prepare: wrote \(out): \(items.count) images \(options.size)x\(options.size), \(plan.classes.count) classes (\(counts))"
                + (skipped.isEmpty ? "" : "; skipped \(skipped.count) (listed in \(Files.join(out, "skipped.txt")))"))
        }
        try communicator.barrier()
        return index
    }
}

extension Preparation {
    /// A look at the data: up to 8 images of each of the first 16 classes, one class per row.
    static func previewGrid(_ index: DatasetIndex, folder: String) -> RGBImage? {
        var tiles: [RGBImage] = []
        let blank = RGBImage(width: index.resolution, height: index.resolution, pixels: [UInt8](repeating: 0, count: 3 * index.resolution * index.resolution))
        for label in 0..<min(16, index.classes.count) {
            let members = index.items.filter { $0.label == label }.prefix(8)
            for k in 0..<8 {
                if k < members.count, let image = try? ImageCodec.read(path: Files.join(folder, members[members.startIndex + k].file)) {
                    tiles.append(image)
                } else {
                    tiles.append(blank)
                }
            }
        }
        return RGBImage.grid(tiles, columns: 8)
    }
}

extension String {
    func replacingTabs() -> String { String(map { $0 == "\t" || $0 == "\n" ? " " : $0 }) }
}
