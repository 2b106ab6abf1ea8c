// `viscoin prepare cub|folder|demo`: raw images -> a prepared dataset (square PNGs at the
// training resolution + dataset.json with labels, splits, sources and concepts). Under mpirun
// the images are shared out across the ranks.
import ArgumentParser
import Common
import Datasets

struct PrepareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prepare",
        abstract: "Prepare a training set: CUB-200-2011, any class-folder set (NCT-CRC-HE-100K), or the built-in demo.",
        discussion: """
            Writes OUT/dataset.json and OUT/00000/img00000000.png, ... (the layout of stylegan2-ada's
            dataset tool, so its own tools can read the folder too). Everything is written to
            OUT.partial first and renamed at the end.
            """,
        subcommands: [PrepareCUBCommand.self, PrepareFolderCommand.self, PrepareDemoCommand.self])
}

/// Options every prepare command has.
struct PrepareCommonOptions: ParsableArguments {
    @Option(name: .long, help: "Output folder.")
    var out: String

    @Option(name: .long, help: "Seed of the validation/test splits (and of the demo images).")
    var seed: UInt64 = 0

    @Option(name: .long, help: "Fraction of each class's training images moved to the validation split.")
    var valFraction = 0.1

    @Flag(name: .long, help: "Replace OUT if it exists.")
    var force = false

    /// Refuses an --out that is, contains or lies inside an input folder.
    func checkOutput(inputs: [(flag: String, path: String?)]) throws {
        do {
            try PathSafety.checkOutput(out, flag: "--out", inputs: inputs)
            try PathSafety.checkWritable(out, flag: "--out")
        } catch let e as PathSafetyError { throw ValidationError(e.message) }
    }

    func validate(size: Int) throws {
        guard size >= 8 && size <= 1024 && size & (size - 1) == 0 else {
            throw ValidationError("--size must be a power of two between 8 and 1024 (got \(size))")
        }
        guard valFraction >= 0 && valFraction < 1 else { throw ValidationError("--val-fraction must be in [0, 1) (got \(valFraction))") }
    }
}

/// Options of the commands that read source image files.
struct PrepareSourceOptions: ParsableArguments {
    @Option(name: .long, help: "Output resolution (square, power of two).")
    var size = 256

    @Flag(name: .long, help: "Leave out unreadable, corrupt or too small images (and empty class folders) instead of stopping; they are counted and listed in OUT/skipped.txt.")
    var skipBad = false

    @Option(name: .long, help: "Smallest accepted shorter side of a source image, in pixels.")
    var minSize = 32
}

struct PrepareCUBCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cub",
        abstract: "CUB-200-2011: official train/test split, validation carved from train.",
        discussion: """
            Reads images.txt, image_class_labels.txt, train_test_split.txt, bounding_boxes.txt and
            classes.txt from --root (the CUB_200_2011 folder), and the 312 attributes as ground-truth
            concepts when attributes/ is present. Each image is cropped to a square (the central
            square, or with --bbox-crop a square around the bird's bounding box) and resized with an
            antialiased bilinear filter.
            """)

    @OptionGroup var common: PrepareCommonOptions
    @OptionGroup var source: PrepareSourceOptions
    @OptionGroup var runtime: RuntimeOptions

    @Option(name: .long, help: "The CUB_200_2011 folder.")
    var root: String

    @Flag(name: .long, help: "Crop a square around each bounding box instead of the central square.")
    var bboxCrop = false

    @Flag(name: .long, help: "Do not store the attributes as concepts.")
    var noAttributes = false

    func validate() throws {
        try common.validate(size: source.size)
        try common.checkOutput(inputs: [("--root", root)])
    }

    func run() throws {
        let options = CUBSource.Options(root: root, bboxCrop: bboxCrop, valFraction: common.valFraction, seed: common.seed,
                                        skipBad: source.skipBad, attributes: !noAttributes)
        let prepare = PrepareOptions(output: common.out, size: source.size, skipBad: source.skipBad, force: common.force,
                                     minimumSourceSize: source.minSize)
        try Runtime.run(runtime) { comm, _ in
            let plan = try CUBSource.plan(options)
            if comm.isRoot { Console.print("prepare cub: \(plan.items.count) images, \(plan.classes.count) classes from \(root)") }
            try Preparation.write(plan, options: prepare, communicator: comm)
        }
    }
}

struct PrepareFolderCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "folder",
        abstract: "Any class-folder image set, e.g. NCT-CRC-HE-100K (with CRC-VAL-HE-7K as --test-root).",
        discussion: """
            --root holds one sub-folder per class (class order = sorted folder names); images are
            found recursively (PNG, JPEG, TIFF; grey, CMYK, 16-bit and palette images are converted).
            Non-square images are cropped to their central square, then resized with an antialiased
            bilinear filter (224 -> 256 for NCT-CRC-HE-100K). Without --test-root, a seeded
            stratified --test-fraction of --root becomes the test split.
            """)

    @OptionGroup var common: PrepareCommonOptions
    @OptionGroup var source: PrepareSourceOptions
    @OptionGroup var runtime: RuntimeOptions

    @Option(name: .long, help: "Folder of class sub-folders (training images).")
    var root: String

    @Option(name: .long, help: "Folder of class sub-folders used as the test split.")
    var testRoot: String?

    @Option(name: .long, help: "Fraction of each class moved to the test split when there is no --test-root.")
    var testFraction = 0.1

    func validate() throws {
        try common.validate(size: source.size)
        guard testFraction >= 0 && testFraction < 1 else { throw ValidationError("--test-fraction must be in [0, 1) (got \(testFraction))") }
        try common.checkOutput(inputs: [("--root", root), ("--test-root", testRoot)])
        if let testRoot {
            let (a, b) = (PathSafety.canonical(root), PathSafety.canonical(testRoot))
            guard !PathSafety.isSameOrInside(a, b) && !PathSafety.isSameOrInside(b, a) else {
                throw ValidationError("--test-root \(testRoot) and --root \(root) overlap (\(b), \(a)): the test images would also be training images")
            }
        }
    }

    func run() throws {
        let options = ClassFolderSource.Options(root: root, testRoot: testRoot, valFraction: common.valFraction, testFraction: testFraction,
                                                seed: common.seed, skipBad: source.skipBad)
        let prepare = PrepareOptions(output: common.out, size: source.size, skipBad: source.skipBad, force: common.force,
                                     minimumSourceSize: source.minSize)
        try Runtime.run(runtime) { comm, _ in
            let plan = try ClassFolderSource.plan(options)
            if comm.isRoot {
                Console.print("prepare folder: \(plan.items.count) images, \(plan.classes.count) classes (\(plan.classes.joined(separator: ", ")))")
            }
            try Preparation.write(plan, options: prepare, communicator: comm)
        }
    }
}

struct PrepareDemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "The built-in demo set: procedural H&E-like patches of the 9 NCT-CRC-HE classes with ground-truth concepts.",
        discussion: """
            Each image is drawn from 12 named concepts (nuclei density/size/elongation/darkness,
            fibre density/alignment, gland rings, fat cells, mucus, debris, empty background, eosin
            staining) sampled from ranges typical of its class; the concept vector is stored with the
            image. Classes are balanced; the same --seed gives the same images.
            """)

    @OptionGroup var common: PrepareCommonOptions
    @OptionGroup var runtime: RuntimeOptions

    @Option(name: .long, help: "Resolution (32 or 64 for the demo; any power of two works).")
    var size = 32

    @Option(name: .long, help: "Number of images (classes in turn).")
    var count = 900

    @Option(name: .long, help: "Fraction of each class in the test split.")
    var testFraction = 0.1

    func validate() throws {
        try common.validate(size: size)
        guard count >= 9 else { throw ValidationError("--count must be at least 9 (one image per class); got \(count)") }
        guard testFraction >= 0 && testFraction < 1 else { throw ValidationError("--test-fraction must be in [0, 1) (got \(testFraction))") }
    }

    func run() throws {
        try common.checkOutput(inputs: [])
        let plan = DemoTissue.plan(count: count, seed: common.seed, valFraction: common.valFraction, testFraction: testFraction)
        let prepare = PrepareOptions(output: common.out, size: size, force: common.force)
        try Runtime.run(runtime) { comm, _ in
            try Preparation.write(plan, options: prepare, communicator: comm)
        }
    }
}
