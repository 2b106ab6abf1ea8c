// The prepared-dataset format shared by the GAN, the classifier and VisCoIN: a folder of
// uncompressed-layout PNGs named as stylegan2-ada's dataset tool names them
// (`00000/img00000000.png`, all the same square size) and `dataset.json` holding both the
// stylegan2-ada `labels` list and our index (class names, split, source path, optional bounding
// box and ground-truth concept vector per image). stylegan2-ada can train on the folder as is.
import Common
import ImageCodecs

public enum Split: String, CaseIterable, Sendable {
    case train, val, test
}

public struct DatasetItem: Equatable, Sendable {
    /// Path of the PNG relative to the dataset folder.
    public var file: String
    public var label: Int
    public var split: Split
    /// Where the image came from (relative to the source root, or `demo:<index>`).
    public var source: String
    /// Bounding box in source pixels (x, y, width, height), when the source has one.
    public var bbox: [Double]?
    /// Ground-truth concept values (demo data; CUB attributes when present).
    public var concepts: [Float]?

    public init(file: String, label: Int, split: Split, source: String, bbox: [Double]? = nil, concepts: [Float]? = nil) {
        self.file = file
        self.label = label
        self.split = split
        self.source = source
        self.bbox = bbox
        self.concepts = concepts
    }

    /// stylegan2-ada's file name for running index `i`.
    public static func fileName(_ i: Int) -> String {
        let digits = String(i)
        let padded = String(repeating: "0", count: max(0, 8 - digits.count)) + digits
        return "\(padded.prefix(5))/img\(padded).png"
    }
}

/// A source image left out by `--skip-bad`, with the reason.
public struct SkippedSource: Equatable, Sendable {
    public var source: String
    public var reason: String
    public init(source: String, reason: String) {
        self.source = source
        self.reason = reason
    }
}

public struct DatasetIndex: Equatable, Sendable {
    public static let formatName = "viscoin-dataset"
    public static let formatVersion = 1

    /// `cub`, `folder` or `demo`.
    public var kind: String
    public var resolution: Int
    public var classes: [String]
    public var conceptNames: [String]
    public var items: [DatasetItem]
    public var skipped: [SkippedSource]
    /// How it was made (command options), for the record.
    public var provenance: [(String, JSONValue)]

    public init(kind: String, resolution: Int, classes: [String], conceptNames: [String] = [], items: [DatasetItem],
                skipped: [SkippedSource] = [], provenance: [(String, JSONValue)] = []) {
        self.kind = kind
        self.resolution = resolution
        self.classes = classes
        self.conceptNames = conceptNames
        self.items = items
        self.skipped = skipped
        self.provenance = provenance
    }

    public static func == (a: DatasetIndex, b: DatasetIndex) -> Bool {
        a.kind == b.kind && a.resolution == b.resolution && a.classes == b.classes && a.conceptNames == b.conceptNames
            && a.items == b.items && a.skipped == b.skipped && JSONValue.object(a.provenance) == JSONValue.object(b.provenance)
    }

    public func indices(of splits: [Split]) -> [Int] {
        items.indices.filter { splits.contains(items[$0].split) }
    }

    public func count(_ split: Split) -> Int { items.reduce(0) { $0 + ($1.split == split ? 1 : 0) } }

    // MARK: JSON

    static func itemJSON(_ item: DatasetItem) -> JSONValue {
        var members: [(String, JSONValue)] = [
            ("file", .string(item.file)), ("label", JSONValue(item.label)), ("split", .string(item.split.rawValue)),
            ("source", .string(item.source)),
        ]
        if let bbox = item.bbox { members.append(("bbox", .array(bbox.map { .double($0) }))) }
        if let concepts = item.concepts { members.append(("concepts", .array(concepts.map { .double(Double("\($0)") ?? Double($0)) }))) }
        return .object(members)
    }

    /// `dataset.json` text: one item per line so the file stays readable and diffable.
    public func serialized() -> String {
        var text = "{\"labels\": [\n"
        for (i, item) in items.enumerated() {
            text += "  " + JSONValue.array([.string(item.file), JSONValue(item.label)]).serialized() + (i + 1 < items.count ? ",\n" : "\n")
        }
        text += "],\n\"viscoin\": {\n"
        let header: [(String, JSONValue)] = [
            ("format", .string(Self.formatName)), ("version", JSONValue(Self.formatVersion)), ("kind", .string(kind)),
            ("resolution", JSONValue(resolution)), ("classes", .array(classes.map { .string($0) })),
            ("concept_names", .array(conceptNames.map { .string($0) })),
            ("counts", .object(Split.allCases.map { ($0.rawValue, JSONValue(count($0))) })),
            ("provenance", .object(provenance)),
            ("skipped", .array(skipped.map { .object([("source", .string($0.source)), ("reason", .string($0.reason))]) })),
        ]
        for (key, value) in header { text += "  " + JSONValue.string(key).serialized() + ": " + value.serialized() + ",\n" }
        text += "  \"items\": [\n"
        for (i, item) in items.enumerated() {
            text += "    " + Self.itemJSON(item).serialized() + (i + 1 < items.count ? ",\n" : "\n")
        }
        text += "  ]\n}}\n"
        return text
    }

    /// Parses and validates `dataset.json` (`path` is only used in messages).
    public static func parse(_ bytes: [UInt8], path: String) throws -> DatasetIndex {
        let root: JSONValue
        do { root = try JSONValue.parse(bytes, maxDepth: 16) } catch { throw DatasetError(path, "\(error)") }
        guard let v = root["viscoin"] else {
            throw DatasetError(path, "has no \"viscoin\" index; it is not a dataset written by `viscoin prepare`")
        }
        func fail(_ reason: String) -> DatasetError { DatasetError(path, reason) }
        guard v["format"]?.stringValue == formatName else { throw fail("\"viscoin.format\" is not \"\(formatName)\"") }
        guard let version = v["version"]?.intValue, version == Int64(formatVersion) else {
            throw fail("unsupported dataset format version \(v["version"].map { $0.serialized() } ?? "none") (this build reads \(formatVersion))")
        }
        guard let kind = v["kind"]?.stringValue else { throw fail("missing \"kind\"") }
        guard let res = v["resolution"]?.intValue, res >= 4, res <= 4096 else { throw fail("missing or invalid \"resolution\"") }
        guard let classValues = v["classes"]?.arrayValue, !classValues.isEmpty else { throw fail("missing or empty \"classes\"") }
        let classes = try classValues.map { value -> String in
            guard let s = value.stringValue else { throw fail("class names must be strings") }
            return s
        }
        let conceptNames = try (v["concept_names"]?.arrayValue ?? []).map { value -> String in
            guard let s = value.stringValue else { throw fail("concept names must be strings") }
            return s
        }
        guard let itemValues = v["items"]?.arrayValue else { throw fail("missing \"items\"") }
        var items: [DatasetItem] = []
        items.reserveCapacity(itemValues.count)
        var files = Set<String>()
        for (i, value) in itemValues.enumerated() {
            func bad(_ reason: String) -> DatasetError { fail("item \(i): \(reason)") }
            guard let file = value["file"]?.stringValue, !file.isEmpty else { throw bad("missing \"file\"") }
            guard !file.hasPrefix("/"), !file.split(separator: "/").contains("..") else { throw bad("file \"\(file)\" leaves the dataset folder") }
            guard files.insert(file).inserted else { throw bad("file \"\(file)\" is listed twice") }
            guard let label = value["label"]?.intValue, label >= 0, label < classes.count else {
                throw bad("label \(value["label"].map { $0.serialized() } ?? "missing") is out of range 0..<\(classes.count)")
            }
            guard let splitName = value["split"]?.stringValue, let split = Split(rawValue: splitName) else { throw bad("invalid \"split\"") }
            let source = value["source"]?.stringValue ?? file
            var bbox: [Double]? = nil
            if let b = value["bbox"] {
                guard let arr = b.arrayValue, arr.count == 4, let values = Optional(arr.compactMap { $0.doubleValue }), values.count == 4 else {
                    throw bad("\"bbox\" must be 4 numbers")
                }
                bbox = values
            }
            var concepts: [Float]? = nil
            if let c = value["concepts"] {
                guard let arr = c.arrayValue, arr.count == conceptNames.count else {
                    throw bad("\"concepts\" must have \(conceptNames.count) values (one per concept name)")
                }
                let values = arr.compactMap { $0.doubleValue }
                guard values.count == arr.count else { throw bad("\"concepts\" must be numbers") }
                concepts = values.map { Float($0) }
            }
            items.append(DatasetItem(file: file, label: Int(label), split: split, source: source, bbox: bbox, concepts: concepts))
        }
        let skipped = (v["skipped"]?.arrayValue ?? []).map {
            SkippedSource(source: $0["source"]?.stringValue ?? "?", reason: $0["reason"]?.stringValue ?? "?")
        }
        return DatasetIndex(kind: kind, resolution: Int(res), classes: classes, conceptNames: conceptNames, items: items,
                            skipped: skipped, provenance: v["provenance"]?.objectValue ?? [])
    }
}

/// A prepared dataset on disk: its index and its images.
public final class PreparedDataset: @unchecked Sendable {
    public let root: String
    public let index: DatasetIndex

    public var resolution: Int { index.resolution }
    public var classes: [String] { index.classes }
    public var items: [DatasetItem] { index.items }

    /// Opens `root/dataset.json`; a missing folder or index is a clear error.
    public init(root: String) throws {
        guard Files.isDirectory(root) else {
            throw DatasetError(root, Files.exists(root) ? "is not a directory" : "no such dataset folder (create one with `viscoin prepare`)")
        }
        let path = Files.join(root, "dataset.json")
        guard Files.exists(path) else { throw DatasetError(path, "missing; the folder is not a prepared dataset (see `viscoin prepare --help`)") }
        self.root = root
        self.index = try DatasetIndex.parse(try Files.read(path, maxBytes: 1 << 30), path: path)
        try checkImageFiles()
    }

    /// Every image the index lists is a non-empty regular file: found now, not mid-epoch.
    func checkImageFiles() throws {
        var missing: [String] = [], empty: [String] = []
        for item in index.items {
            switch Files.regularFileSize(Files.join(root, item.file)) {
            case nil: missing.append(item.file)
            case 0?: empty.append(item.file)
            default: break
            }
        }
        if !missing.isEmpty {
            throw DatasetError(Files.join(root, missing[0]), "missing or not a regular file (\(missing.count) of the \(index.items.count) images dataset.json lists)")
        }
        if !empty.isEmpty {
            throw DatasetError(Files.join(root, empty[0]), "is empty (\(empty.count) of the \(index.items.count) images dataset.json lists)")
        }
    }

    public func path(of item: Int) -> String { Files.join(root, index.items[item].file) }

    /// Decodes item `i`; the image must have the dataset's resolution.
    public func image(_ i: Int) throws -> RGBImage {
        let path = path(of: i)
        let image = try ImageCodec.read(path: path)
        guard image.width == resolution && image.height == resolution else {
            throw DatasetError(path, "is \(image.width)x\(image.height), the dataset's resolution is \(resolution)x\(resolution)")
        }
        return image
    }
}
