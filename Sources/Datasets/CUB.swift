// CUB-200-2011: the metadata files of the official release (images, labels, official
// train/test split, bounding boxes, class names, and the 312 attributes when present, stored as
// ground-truth concepts), validation carved from the training split (seeded, stratified).
import Common

public enum CUBSource {
    public struct Options: Sendable {
        public var root: String
        public var bboxCrop: Bool
        public var valFraction: Double
        public var seed: UInt64
        public var skipBad: Bool
        public var attributes: Bool
        public init(root: String, bboxCrop: Bool = false, valFraction: Double = 0.1, seed: UInt64 = 0, skipBad: Bool = false,
                    attributes: Bool = true) {
            self.root = root
            self.bboxCrop = bboxCrop
            self.valFraction = valFraction
            self.seed = seed
            self.skipBad = skipBad
            self.attributes = attributes
        }
    }

    /// Rows of a whitespace-separated metadata file: (line number, fields).
    static func rows(_ path: String, minimumFields: Int) throws -> [(Int, [Substring])] {
        guard Files.exists(path) else { throw DatasetError(path, "missing (is --root the CUB_200_2011 folder?)") }
        let text = try Files.readText(path)
        var out: [(Int, [Substring])] = []
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            if fields.isEmpty { continue }
            guard fields.count >= minimumFields else {
                throw DatasetError(path, "line \(n + 1): expected at least \(minimumFields) fields, found \(fields.count)")
            }
            out.append((n + 1, fields))
        }
        return out
    }

    /// `id -> fields[1...]` with every id parsed and unique.
    static func table(_ path: String, fields: Int) throws -> [Int: [Substring]] {
        var result: [Int: [Substring]] = [:]
        for (line, row) in try rows(path, minimumFields: fields) {
            guard let id = Int(row[0]) else { throw DatasetError(path, "line \(line): \"\(row[0])\" is not an image id") }
            guard result[id] == nil else { throw DatasetError(path, "line \(line): image id \(id) is listed twice") }
            result[id] = Array(row[1...])
        }
        return result
    }

    public static func plan(_ o: Options) throws -> PreparationPlan {
        let root = o.root
        guard Files.isDirectory(root) else { throw DatasetError(root, "no such CUB_200_2011 folder") }
        let file = { (name: String) in Files.join(root, name) }

        // Classes: "id name", ids 1...n in order.
        var classes: [String] = []
        for (line, row) in try rows(file("classes.txt"), minimumFields: 2) {
            guard let id = Int(row[0]), id == classes.count + 1 else {
                throw DatasetError(file("classes.txt"), "line \(line): class ids must run 1, 2, 3, ... (found \"\(row[0])\")")
            }
            classes.append(row[1...].joined(separator: " "))
        }
        guard !classes.isEmpty else { throw DatasetError(file("classes.txt"), "lists no classes") }

        let images = try rows(file("images.txt"), minimumFields: 2)
        let labels = try table(file("image_class_labels.txt"), fields: 2)
        let splits = try table(file("train_test_split.txt"), fields: 2)
        let boxes = try table(file("bounding_boxes.txt"), fields: 5)

        // Optional attributes (the cleaned file of the VisCoIN repository when present).
        var conceptNames: [String] = []
        var attributeValues: [Int: [Float]] = [:]
        let attributeNames = file("attributes/attributes.txt")
        let attributeLabels = [file("attributes/image_attribute_labels_clean.txt"), file("attributes/image_attribute_labels.txt")]
            .first(where: Files.exists)
        if o.attributes, Files.exists(attributeNames), let attributeLabels {
            for (line, row) in try rows(attributeNames, minimumFields: 2) {
                guard Int(row[0]) == conceptNames.count + 1 else { throw DatasetError(attributeNames, "line \(line): attribute ids must run 1, 2, 3, ...") }
                conceptNames.append(String(row[1]))
            }
            for (line, row) in try rows(attributeLabels, minimumFields: 3) {
                guard let image = Int(row[0]), let attribute = Int(row[1]), let present = Int(row[2]),
                      attribute >= 1, attribute <= conceptNames.count else {
                    throw DatasetError(attributeLabels, "line \(line): expected \"image_id attribute_id is_present ...\"")
                }
                attributeValues[image, default: [Float](repeating: 0, count: conceptNames.count)][attribute - 1] = present != 0 ? 1 : 0
            }
        }

        var items: [PlannedItem] = []
        var skipped: [SkippedSource] = []
        var seen = Set<Int>()
        for (line, row) in images {
            let imagesFile = file("images.txt")
            guard let id = Int(row[0]) else { throw DatasetError(imagesFile, "line \(line): \"\(row[0])\" is not an image id") }
            guard seen.insert(id).inserted else { throw DatasetError(imagesFile, "line \(line): image id \(id) is listed twice") }
            let relative = "images/" + row[1...].joined(separator: " ")
            do {
                guard let labelField = labels[id], let label = Int(labelField[0]) else {
                    throw DatasetError(file("image_class_labels.txt"), "no label for image \(id) (\(relative))")
                }
                guard label >= 1 && label <= classes.count else {
                    throw DatasetError(file("image_class_labels.txt"), "label \(label) of image \(id) is out of range 1...\(classes.count)")
                }
                guard let splitField = splits[id], let isTrain = Int(splitField[0]), isTrain == 0 || isTrain == 1 else {
                    throw DatasetError(file("train_test_split.txt"), "no valid train/test flag (0 or 1) for image \(id)")
                }
                guard let boxField = boxes[id] else { throw DatasetError(file("bounding_boxes.txt"), "no bounding box for image \(id)") }
                let box = boxField.prefix(4).compactMap { Double($0) }
                guard box.count == 4, box[2] > 0, box[3] > 0 else {
                    throw DatasetError(file("bounding_boxes.txt"), "invalid bounding box for image \(id): \(boxField.joined(separator: " "))")
                }
                let path = Files.join(root, relative)
                guard Files.exists(path) else { throw DatasetError(path, "missing image file (listed in images.txt line \(line))") }
                items.append(PlannedItem(origin: .file(path: path, crop: o.bboxCrop ? .boxSquare(box) : .centerSquare),
                                         label: label - 1, split: isTrain == 1 ? .train : .test, source: relative, bbox: box,
                                         concepts: conceptNames.isEmpty ? nil : (attributeValues[id] ?? [Float](repeating: 0, count: conceptNames.count))))
            } catch let error as DatasetError {
                if !o.skipBad { throw error }
                skipped.append(SkippedSource(source: relative, reason: error.description))
            }
        }
        let labelsOfItems = items.map(\.label)
        let trainIndices = items.indices.filter { items[$0].split == .train }
        for i in Splits.stratifiedSample(labels: labelsOfItems, candidates: trainIndices, fraction: o.valFraction, seed: o.seed,
                                         purpose: Splits.validationPurpose) {
            items[i].split = .val
        }
        return PreparationPlan(kind: "cub", classes: classes, conceptNames: conceptNames, items: items, skipped: skipped, provenance: [
            ("root", .string(root)), ("bbox_crop", .bool(o.bboxCrop)), ("val_fraction", .double(o.valFraction)),
            ("seed", .int(Int64(o.seed))),
        ])
    }
}
