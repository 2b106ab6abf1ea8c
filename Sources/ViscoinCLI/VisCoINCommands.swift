// The commands that use a trained VisCoIN ensemble (RUN/viscoin.safetensors, or a converted
// save_viscoin checkpoint): `evaluate` (accuracy, fidelity, reconstruction errors, FID),
// `amplify` (concept amplification grids and faithfulness), `concepts` (concept statistics,
// ground-truth alignment, galleries) and `report` (the HTML report of a train-viscoin run).
// Each parses, calls the library (Evaluation, Training) and prints.
import ArgumentParser
import Common
import Communication
import Datasets
import Evaluation
import ImageCodecs
import Models
import TensorCore
import Training

/// Options every ensemble command shares.
struct EnsembleOptions: ParsableArguments {
    @Option(help: "VisCoIN weight file (train-viscoin's viscoin.safetensors, or `viscoin convert --model viscoin`).") var viscoin: String
    @Option(help: "Prepared dataset folder (its test split is used).") var data: String
    @Option(help: "Global batch size.") var batch = 16

    func load() throws -> (VisCoINModels, PreparedDataset) { try Self.load(viscoin: viscoin, data: data) }

    /// The ensemble (evaluation mode) and the dataset it is used on, checked against each other.
    static func load(viscoin: String, data: String) throws -> (VisCoINModels, PreparedDataset) {
        let (module, _) = try ModelFile.load(viscoin, expecting: .viscoin)
        let models = module as! VisCoINModels
        let dataset = try PreparedDataset(root: data)
        guard dataset.classes.count == models.classes else {
            throw ValidationError("\(viscoin) has \(models.classes) classes, \(data) has \(dataset.classes.count)")
        }
        guard dataset.resolution == models.resolution else {
            throw ValidationError("\(viscoin) works at \(models.resolution)px, \(data) holds \(dataset.resolution)px images")
        }
        guard dataset.index.count(.test) > 0 else { throw ValidationError("\(data) has no test split") }
        models.eval()
        return (models, dataset)
    }

    func testLoader(_ dataset: PreparedDataset, _ comm: any Communicator) throws -> DataLoader {
        guard batch >= comm.size, batch % comm.size == 0 else { throw ValidationError("--batch must be a positive multiple of the \(comm.size) ranks") }
        return try DataLoader(dataset: dataset, splits: [.test], rank: comm.rank, worldSize: comm.size,
                              options: LoaderOptions(batchSize: batch / comm.size, shuffle: false, transform: .plain(flipProbability: 0)))
    }
}

func loadLPIPS(_ path: String?) throws -> LPIPS? {
    try path.map { p in
        let (module, _) = try ModelFile.load(p, expecting: .lpips)
        return module as! LPIPS
    }
}

struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Test-split accuracy, fidelity, L1/L2/LPIPS and FID of a VisCoIN ensemble.")

    @OptionGroup var ensemble: EnsembleOptions
    @OptionGroup var runtime: RuntimeOptions
    @Option(help: "Converted LPIPS-VGG weights (optional).") var lpips: String?
    @Option(help: "FID detector: a converted Inception file, or classifier:FILE (optional).") var detector: String?
    @Option(help: "Write the result as JSON here.") var out: String?

    func run() throws {
        if let out { try requireWritable(out, "--out") }
        let o = self
        try Runtime.run(runtime) { comm, _ in
            let (models, dataset) = try o.ensemble.load()
            let detector = try o.detector.map { try FeatureDetectors.load($0) }
            let r = try VisCoINEvaluation.evaluate(models, loader: try o.ensemble.testLoader(dataset, comm), classNames: dataset.classes,
                                                   lpips: try loadLPIPS(o.lpips), detector: detector, communicator: comm)
            if comm.isRoot {
                var rows: [[String]] = [["images", "\(r.images)"], ["classifier accuracy", "\(Console.fixed(r.classifierAccuracy, 2))%"],
                                        ["explainer accuracy", "\(Console.fixed(r.explainerAccuracy, 2))%"], ["fidelity", "\(Console.fixed(r.fidelity, 2))%"],
                                        ["L1", Console.fixed(r.l1, 5)], ["L2", Console.fixed(r.l2, 5)]]
                rows.append(["LPIPS", r.lpips.map { Console.fixed($0, 5) } ?? "- (no --lpips)"])
                rows.append(["FID", r.fid.map { "\(Console.fixed($0, 3)) (\(r.detector ?? ""))" } ?? "- (no --detector)"])
                if let ref = r.reference {
                    rows.append(["reference's preds_overlap / correct_preds", "\(Console.fixed(ref.predsOverlap, 1)) / \(Console.fixed(ref.correctPreds, 1))"])
                }
                Console.print(Console.table(header: ["metric", "value"], rows: rows), terminator: "")
                Console.print(Console.table(header: ["class", "images", "classifier", "explainer", "fidelity"], rows: r.perClass.map { p in
                    [p.name, "\(p.images)"] + [p.classifierAccuracy, p.explainerAccuracy, p.fidelity].map { $0.map { "\(Console.fixed($0, 1))%" } ?? "-" }
                }), terminator: "")
                let json = try JSONValueEncoder().encode(r).serialized(pretty: true)
                if let out = o.out { try Files.writeAtomically(out, text: json + "\n") }
            }
            try comm.sleepingBarrier()
        }
    }
}

struct AmplifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "amplify",
        abstract: "Concept amplification grids of test images, and the faithfulness over many.",
        discussion: """
            For each image: the concepts that matter for the explainer's predicted class (v_j = max Phi_j x \
            Theta weight, normalised), selected by --threshold, --top-k or --concepts, multiplied by each \
            multiplier, and as many random concepts. OUTDIR/image-<item>.png has four rows: the image, its \
            reconstruction, the amplified selected concepts, the amplified random ones; amplify.json the \
            class probabilities. --faithfulness N measures the mean change of the predicted class's \
            probability between the largest multiplier and 1 on N random test images.
            """)

    @OptionGroup var ensemble: EnsembleOptions
    @OptionGroup var runtime: RuntimeOptions
    @Option(help: "Select the concepts with v_j > T.") var threshold: Float?
    @Option(help: "Select the K concepts with the largest v_j.") var topK: Int?
    @Option(help: "Select these concepts, e.g. 3,17,40.") var concepts: String?
    @Option(help: "Multipliers.") var multipliers = "0,1,2,4"
    @Option(help: "Test-split positions of the images, e.g. 0,5,9 (default: 4 random ones).") var images: String?
    @Option(help: "Also run the faithfulness measurement on this many random test images.") var faithfulness: Int?
    @Option(help: "Output folder.") var outdir: String
    @Option(help: "Seed of the image choice and of the random concepts.") var seed: UInt64 = 0

    func rule() throws -> ConceptSelection {
        let given = [threshold != nil, topK != nil, concepts != nil].filter { $0 }.count
        guard given == 1 else { throw ValidationError("give exactly one of --threshold, --top-k or --concepts") }
        if let threshold { return .threshold(threshold) }
        if let topK {
            guard topK >= 1 else { throw ValidationError("--top-k must be at least 1") }
            return .topK(topK)
        }
        let list = concepts!.split(separator: ",").map { Int($0.trimmingPrefix(" ")) }
        guard !list.isEmpty, list.allSatisfy({ $0 != nil && $0! >= 0 }) else { throw ValidationError("--concepts must list concept indices, e.g. 3,17,40") }
        return .indices(list.map { $0! })
    }

    func run() throws {
        try requireWritable(outdir, "--outdir")
        let rule = try rule()
        let factors = multipliers.split(separator: ",").map { Float($0) }
        guard !factors.isEmpty, factors.allSatisfy({ $0 != nil && $0!.isFinite }) else { throw ValidationError("--multipliers must list numbers, e.g. 0,1,2,4") }
        let o = self
        try Runtime.run(runtime) { comm, _ in
            let (models, dataset) = try o.ensemble.load()
            if case .indices(let list) = rule, let bad = list.first(where: { $0 >= models.concepts }) {
                throw ValidationError("--concepts: concept \(bad) does not exist (the ensemble has \(models.concepts))")
            }
            guard comm.isRoot else { try comm.sleepingBarrier(); return }
            let test = dataset.index.indices(of: [.test])
            let picker = RandomGenerator(seed: o.seed, stream: 0x494D47)
            var positions: [Int]
            if let list = o.images {
                let parsed = list.split(separator: ",").map { Int($0) }
                guard parsed.allSatisfy({ $0 != nil && $0! >= 0 && $0! < test.count }) else {
                    throw ValidationError("--images must list test positions in 0..<\(test.count)")
                }
                positions = parsed.map { $0! }
            } else {
                positions = Array(picker.permutation(test.count).prefix(4))
            }
            try Files.createDirectory(o.outdir)
            let random = RandomGenerator(seed: o.seed, stream: 0x434F4E43)
            var entries: [JSONValue] = []
            let multipliers = factors.map { $0! }
            for position in positions {
                let item = test[position]
                let image = ImageTensors.tensor([try dataset.image(item)]) / 127.5 - 1
                let r = ConceptAmplification.run(models, image: image, rule: rule, multipliers: multipliers, random: random)
                let reconstruction = noGrad { models.gan(r.analysis.phi, r.analysis.phiPrime, noise: .const).image }
                var rows = [image] + [Tensor](repeating: Tensor.zeros(image.shape), count: multipliers.count - 1)
                rows += [reconstruction] + [Tensor](repeating: Tensor.zeros(image.shape), count: multipliers.count - 1)
                rows += r.images + r.randomImages
                if let grid = RGBImage.grid(ImageTensors.images(fromGenerated: concatenate(rows, dim: 0)), columns: multipliers.count) {
                    try ImageCodec.write(grid, path: Files.join(o.outdir, "image-\(item).png"))
                }
                let k = r.analysis.predictedClass
                entries.append(.object([
                    ("item", JSONValue(item)), ("label", JSONValue(dataset.items[item].label)), ("predicted_class", JSONValue(k)),
                    ("predicted_name", .string(dataset.classes[k])), ("selected", JSONValue(r.selected)), ("random", JSONValue(r.random)),
                    ("multipliers", .array(multipliers.map { .double(Double($0)) })),
                    ("probabilities", .array(r.probabilities.map { .double(Double($0)) })),
                    ("random_probabilities", .array(r.randomProbabilities.map { .double(Double($0)) })),
                    ("intensities", .array(r.analysis.intensities.map { .double(Double($0)) })),
                ]))
                Console.print("item \(item) (\(dataset.classes[dataset.items[item].label])), predicted \(dataset.classes[k]): concepts \(r.selected) "
                              + "-> \(r.probabilities.map { Console.fixed(Double($0), 3) }.joined(separator: " ")); random \(r.random) "
                              + "-> \(r.randomProbabilities.map { Console.fixed(Double($0), 3) }.joined(separator: " "))")
            }
            var document: [(String, JSONValue)] = [("images", .array(entries))]
            let (defaultImage, defaultProbabilities) = ConceptAmplification.defaultImage(models)
            try ImageCodec.write(ImageTensors.images(fromGenerated: defaultImage)[0], path: Files.join(o.outdir, "default.png"))
            document.append(("default_probabilities", .array(defaultProbabilities.map { .double(Double($0)) })))
            if let count = o.faithfulness, count > 0 {
                let top = multipliers.firstIndex(of: multipliers.max()!)!, one = multipliers.firstIndex(of: 1) ?? 0
                var selected = 0.0, baseline = 0.0
                let chosen = Array(picker.permutation(test.count).prefix(count))
                for position in chosen {
                    let image = ImageTensors.tensor([try dataset.image(test[position])]) / 127.5 - 1
                    let r = ConceptAmplification.run(models, image: image, rule: rule, multipliers: multipliers, random: random)
                    selected += Double(r.probabilities[top] - r.probabilities[one])
                    baseline += Double(r.randomProbabilities[top] - r.randomProbabilities[one])
                }
                let n = Double(chosen.count)
                Console.print("faithfulness over \(chosen.count) test images: x\(multipliers[top]) vs x\(multipliers[one]) changes the predicted class's probability by "
                              + "\(Console.signed(selected / n, 4)) with the selected concepts, \(Console.signed(baseline / n, 4)) with random ones")
                document.append(("faithfulness", .object([("images", JSONValue(chosen.count)), ("selected", .double(selected / n)), ("random", .double(baseline / n))])))
            }
            try Files.writeAtomically(Files.join(o.outdir, "amplify.json"), text: JSONValue.object(document).serialized(pretty: true) + "\n")
            Console.print("amplify: \(positions.count) grids and amplify.json in \(o.outdir)")
            try comm.sleepingBarrier()
        }
    }
}

struct ConceptsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "concepts",
        abstract: "Concept statistics of the test split, alignment with true concepts, galleries.",
        discussion: """
            Writes OUTDIR/concepts.json (activations per image and per concept, correlations, the \
            balanced class-concept matrix, its softmax and the entropy per concept, as test_concepts; \
            the alignment of every learned concept with the dataset's true concepts, and the same for \
            an untrained concept extractor), class-concepts.png (heatmap) and gallery-<j>.png (the test \
            images that activate concept j most, for the most active concepts).
            """)

    @OptionGroup var ensemble: EnsembleOptions
    @OptionGroup var runtime: RuntimeOptions
    @Option(help: "Output folder.") var outdir: String
    @Option(help: "Galleries for this many concepts (the most active ones).") var galleries = 16

    func run() throws {
        try requireWritable(outdir, "--outdir")
        let o = self
        try Runtime.run(runtime) { comm, _ in
            let (models, dataset) = try o.ensemble.load()
            let loader = try o.ensemble.testLoader(dataset, comm)
            let stats = try ConceptStatisticsCollector.collect(models, loader: loader, communicator: comm)
            var alignment: ConceptAlignment? = nil
            if !dataset.index.conceptNames.isEmpty, stats.items.allSatisfy({ dataset.items[$0].concepts != nil }) {
                alignment = ConceptAlignment(activations: stats.activations, truth: stats.items.map { dataset.items[$0].concepts! }, names: dataset.index.conceptNames)
            }
            guard comm.isRoot else { try comm.sleepingBarrier(); return }
            try Files.createDirectory(o.outdir)
            let (k, c) = (stats.concepts, stats.classes)
            var document: [(String, JSONValue)] = [
                ("concepts", JSONValue(k)), ("classes", .array(dataset.classes.map { .string($0) })), ("images", JSONValue(stats.labels.count)),
                ("classifier_accuracy", .double(stats.batchClassifierAccuracy.reduce(0, +) / Double(max(1, stats.batchClassifierAccuracy.count)))),
                ("explainer_accuracy", .double(stats.batchExplainerAccuracy.reduce(0, +) / Double(max(1, stats.batchExplainerAccuracy.count)))),
                ("concept_activation_per_image", .array(ConceptStatistics.normalized(stats.perImageSorted).map { .double($0) })),
                ("raw_concept_mean_activation", .array(ConceptStatistics.normalized(stats.perConcept).map { .double($0) })),
                ("concept_correlations", .array(ConceptStatistics.normalized(stats.correlations).map { .double($0) })),
                ("balanced_class_concept", .array(stats.balanced.map { .double($0) })),
                ("class_probability_per_concept", .array(stats.classProbabilityPerConcept.map { .double($0) })),
                ("concept_entropy", .array(stats.entropies.map { .double($0) })),
                ("class_counts", .array(stats.classCounts.map { .double($0) })),
            ]
            if let alignment { document.append(("alignment", try JSONValueEncoder().encode(alignment))) }
            try Files.writeAtomically(Files.join(o.outdir, "concepts.json"), text: JSONValue.object(document).serialized(pretty: true) + "\n")
            // Heatmap: classes x concepts, each concept's column normalised, 8 px cells.
            let balanced = ConceptStatistics.normalized(stats.balanced, rows: c, columns: k, alongRows: false)
            let cell = 8
            let heat = RGBImage(width: k * cell, height: c * cell) { x, y in
                let v = balanced[(y / cell) * k + x / cell]
                let shade = UInt8(255 - Int((v.isFinite ? min(max(v, 0), 1) : 0) * 200))
                return (shade, shade, 255)
            }
            try ImageCodec.write(heat, path: Files.join(o.outdir, "class-concepts.png"))
            let ranked = (0..<k).sorted { stats.perConcept[$0] > stats.perConcept[$1] }.prefix(o.galleries)
            let top = stats.topImages(perConcept: 8)
            for j in ranked {
                let pictures = try top[j].map { try dataset.image($0) }
                if let grid = RGBImage.grid(pictures, columns: pictures.count) { try ImageCodec.write(grid, path: Files.join(o.outdir, "gallery-\(j).png")) }
            }
            Console.print("concepts: \(stats.labels.count) test images, \(k) concepts; concepts.json, class-concepts.png and \(ranked.count) galleries in \(o.outdir)")
            if let alignment {
                Console.print("alignment with the true concepts (mean best |r|): \(Console.fixed(alignment.score, 3))")
                Console.print(Console.table(header: ["true concept", "learned", "r"], rows: alignment.trueConcepts.indices.map {
                    [alignment.trueConcepts[$0], "c\(alignment.bestMatch[$0])", Console.fixed(alignment.bestCorrelation[$0], 3)]
                }), terminator: "")
            }
            try comm.sleepingBarrier()
        }
    }
}

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write the HTML report of a train-viscoin run (RUN/report.html).")

    @Option(name: .customLong("run"), help: "A train-viscoin run folder.") var runDirectory: String
    @Option(help: "Dataset folder (default: the run's).") var data: String?
    @Option(help: "Converted LPIPS-VGG weights (default: the run's).") var lpips: String?
    @Option(help: "FID detector (default: the run's).") var detector: String?
    @OptionGroup var runtime: RuntimeOptions

    func run() throws {
        let o = self
        try Runtime.run(runtime) { comm, _ in
            let configPath = Files.join(o.runDirectory, "config.json")
            guard Files.exists(configPath) else { throw ValidationError("\(o.runDirectory) is not a train-viscoin run folder (no config.json)") }
            let saved = try VisCoINTrainingConfig.decode(try JSONValue.parse(try Files.read(configPath)), source: configPath)
            let weights = Files.join(o.runDirectory, "viscoin.safetensors")
            guard Files.exists(weights) else { throw ValidationError("\(weights) is missing: the run has not finished") }
            let (module, _) = try ModelFile.load(weights, expecting: .viscoin)
            let models = module as! VisCoINModels
            let dataset = try PreparedDataset(root: o.data ?? saved.data)
            let lpips = try loadLPIPS(o.lpips ?? saved.lpips)
            let detector = try (o.detector ?? saved.detector).map { try FeatureDetectors.load($0) }
            let test = try DataLoader(dataset: dataset, splits: [.test], rank: comm.rank, worldSize: comm.size,
                                      options: LoaderOptions(batchSize: 16, shuffle: false, transform: .plain(flipProbability: 0)))
            let evaluation = try VisCoINEvaluation.evaluate(models, loader: test, classNames: dataset.classes, lpips: lpips, detector: detector, communicator: comm)
            let content = try VisCoINReport.build(models: models, dataset: dataset, run: o.runDirectory, evaluation: evaluation, lpips: lpips,
                                                  communicator: comm, seed: saved.seed)
            if comm.isRoot {
                let path = try ReportWriter.write(content, folder: o.runDirectory, summary: [("job", "report"), ("config", saved.json)])
                Console.print("report: \(path)")
            }
            try comm.sleepingBarrier()
        }
    }
}
