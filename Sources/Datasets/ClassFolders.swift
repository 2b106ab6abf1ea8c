// Any class-folder image set (NCT-CRC-HE-100K, with CRC-VAL-HE-7K as its test set): one
// sub-folder per class, class order = sorted folder names, images found recursively (PNG, JPEG,
// TIFF). With a test root: train/val from the root, test from the test root. Without: a seeded
// stratified test and validation split of the root.
import Common
import ImageCodecs

public enum ClassFolderSource {
    public struct Options: Sendable {
        public var root: String
        public var testRoot: String?
        public var valFraction: Double
        public var testFraction: Double
        public var seed: UInt64
        public var skipBad: Bool
        public init(root: String, testRoot: String? = nil, valFraction: Double = 0.1, testFraction: Double = 0.1, seed: UInt64 = 0,
                    skipBad: Bool = false) {
            self.root = root
            self.testRoot = testRoot
            self.valFraction = valFraction
            self.testFraction = testFraction
            self.seed = seed
            self.skipBad = skipBad
        }
    }

    static func classFolders(_ root: String) throws -> [String] {
        guard Files.isDirectory(root) else { throw DatasetError(root, Files.exists(root) ? "is not a directory" : "no such dataset folder") }
        let folders = try Files.list(root).filter { !$0.hasPrefix(".") && Files.isDirectory(Files.join(root, $0)) }
        guard !folders.isEmpty else { throw DatasetError(root, "has no class sub-folders (expected ROOT/<class>/<image>)") }
        return folders
    }

    public static func plan(_ o: Options) throws -> PreparationPlan {
        let classes = try classFolders(o.root)
        var items: [PlannedItem] = []
        var skipped: [SkippedSource] = []

        func collect(_ root: String, _ folders: [String], split: Split, sourcePrefix: String) throws {
            for folder in folders {
                guard let label = classes.firstIndex(of: folder) else {
                    throw DatasetError(Files.join(root, folder), "class \"\(folder)\" does not exist in the training root \(o.root)")
                }
                let directory = Files.join(root, folder)
                let files = try ImageFolder.list(directory)
                if files.isEmpty {
                    let error = DatasetError(directory, "class folder contains no PNG, JPEG or TIFF images")
                    if !o.skipBad { throw error }
                    skipped.append(SkippedSource(source: sourcePrefix + folder, reason: error.description))
                }
                for relative in files {
                    items.append(PlannedItem(origin: .file(path: Files.join(directory, relative), crop: .centerSquare), label: label,
                                             split: split, source: sourcePrefix + folder + "/" + relative))
                }
            }
        }
        try collect(o.root, classes, split: .train, sourcePrefix: "")
        if let testRoot = o.testRoot {
            try collect(testRoot, try classFolders(testRoot), split: .test, sourcePrefix: "test:")
        }
        let labels = items.map(\.label)
        if o.testRoot == nil {
            for i in Splits.stratifiedSample(labels: labels, candidates: Array(items.indices), fraction: o.testFraction, seed: o.seed,
                                             purpose: Splits.testPurpose) {
                items[i].split = .test
            }
        }
        let train = items.indices.filter { items[$0].split == .train }
        for i in Splits.stratifiedSample(labels: labels, candidates: train, fraction: o.valFraction, seed: o.seed, purpose: Splits.validationPurpose) {
            items[i].split = .val
        }
        var provenance: [(String, JSONValue)] = [("root", .string(o.root))]
        if let testRoot = o.testRoot { provenance.append(("test_root", .string(testRoot))) }
        provenance += [("val_fraction", .double(o.valFraction)), ("test_fraction", .double(o.testRoot == nil ? o.testFraction : 0)),
                       ("seed", .int(Int64(o.seed)))]
        return PreparationPlan(kind: "folder", classes: classes, items: items, skipped: skipped, provenance: provenance)
    }
}
