// The VisCoIN report (written at the end of train-viscoin and by `viscoin report`): training
// curves of every loss term and test metric, originals beside their reconstructions,
// amplification grids of a few test images, the class-concept heatmap, galleries of the test
// images that activate the most important concepts, the alignment of learned concepts with the
// dataset's true concepts against an untrained concept extractor, and the configuration. One
// self-contained HTML page (images as data URIs) and report.json.
import Common
import Communication
import Datasets
import Evaluation
import ImageCodecs
import Models
import TensorCore

public struct VisCoINReportFigures: Codable {
    public var evaluation: VisCoINEvaluationResult?
    public var alignment: ConceptAlignment?
    public var baselineAlignment: ConceptAlignment?
    /// Concepts ranked by their mean |Theta weight| x activation over the test split.
    public var importantConcepts: [Int]
    public var faithfulness: Faithfulness?
    public struct Faithfulness: Codable {
        public var images: Int
        /// Mean change of the predicted class's probability (multiplier 4 vs 1) for the selected
        /// concepts and for random ones.
        public var selected: Double
        public var random: Double
    }
}

public enum VisCoINReport {
    /// PNG bytes of a grid of generator-range images [N, 3, R, R].
    static func png(_ images: Tensor, columns: Int) throws -> [UInt8] {
        guard let grid = RGBImage.grid(ImageTensors.images(fromGenerated: images), columns: columns) else { return [] }
        return try ImageCodec.encodePNG(grid)
    }

    /// Computes the report's figures (collective: every rank must call it) and its content.
    public static func build(models m: VisCoINModels, dataset: PreparedDataset, run folder: String, evaluation: VisCoINEvaluationResult?,
                             lpips: LPIPS?, communicator comm: any Communicator, seed: UInt64, amplifiedImages: Int = 3) throws -> ReportContent {
        let test = try DataLoader(dataset: dataset, splits: [.test], rank: comm.rank, worldSize: comm.size,
                                  options: LoaderOptions(batchSize: 16, shuffle: false, transform: .plain(flipProbability: 0), workers: 1))
        let stats = try ConceptStatisticsCollector.collect(m, loader: test, communicator: comm)
        // Importance: |weight of the concept for the predicted classes| x activation, averaged.
        let weight = m.explainer.weight.toArray(), k = m.concepts, classes = m.classes
        var importance = [Double](repeating: 0, count: k)
        for (a, label) in zip(stats.activations, stats.labels) { for j in 0..<k { importance[j] += Double(abs(weight[label * k + j]) * a[j]) } }
        let important = Array((0..<k).sorted { importance[$0] > importance[$1] }.prefix(min(8, k)))
        var alignment: ConceptAlignment? = nil, baseline: ConceptAlignment? = nil
        if !dataset.index.conceptNames.isEmpty, stats.items.allSatisfy({ dataset.items[$0].concepts != nil }) {
            let truth = stats.items.map { dataset.items[$0].concepts! }
            alignment = ConceptAlignment(activations: stats.activations, truth: truth, names: dataset.index.conceptNames)
            // The same architecture untrained (its initial state: VisCoINBuilder's seed).
            let fresh = ConceptExtractor(nConcepts: k, latentChannels: m.conceptExtractor.conv1.weight.shape[0],
                                         inputChannels: (m.conceptExtractor.conv1.weight.shape[1], m.conceptExtractor.conv2.weight.shape[1],
                                                         m.conceptExtractor.conv3.weight.shape[1]), generator: RandomGenerator(seed: seed, stream: 0x5649_5343))
            let untrained = VisCoINModels(classifier: m.classifier, conceptExtractor: fresh, explainer: m.explainer, gan: m.gan)
            let base = try ConceptStatisticsCollector.collect(untrained, loader: test, communicator: comm)
            baseline = ConceptAlignment(activations: base.activations, truth: truth, names: dataset.index.conceptNames)
        }
        // Amplification of a few test images and the faithfulness over up to 32.
        let testItems = dataset.index.indices(of: [.test])
        let random = RandomGenerator(seed: seed, stream: 0x414D_504C)
        var amplified: [(item: Int, result: AmplificationResult)] = []
        var deltas = (selected: 0.0, random: 0.0, count: 0)
        if comm.isRoot {
            for (n, item) in testItems.prefix(32).enumerated() {
                let image = try loadImage(dataset, item)
                let r = ConceptAmplification.run(m, image: image, rule: .topK(3), random: random)
                deltas.selected += Double(r.probabilities[3] - r.probabilities[1])
                deltas.random += Double(r.randomProbabilities[3] - r.randomProbabilities[1])
                deltas.count += 1
                if n < amplifiedImages { amplified.append((item, r)) }
            }
        }
        let figures = VisCoINReportFigures(evaluation: evaluation, alignment: alignment, baselineAlignment: baseline, importantConcepts: important,
                                           faithfulness: deltas.count > 0 ? .init(images: deltas.count, selected: deltas.selected / Double(deltas.count),
                                                                                  random: deltas.random / Double(deltas.count)) : nil)
        // Originals over reconstructions.
        var reconstructionsPNG: [UInt8] = [], shown = 0
        if comm.isRoot {
            let items = Array(testItems.prefix(8))
            shown = items.count
            if !items.isEmpty {
                let x = concatenate(try items.map { try loadImage(dataset, $0) }, dim: 0)
                m.eval()
                let rebuilt = noGrad { VisCoINObjective.forward(m, images: x, noise: .const).rebuilt }
                reconstructionsPNG = try png(concatenate([x, rebuilt], dim: 0), columns: items.count)
            }
        }
        // Concept heatmaps of the amplified images.
        var heatmapPNGs: [(item: Int, png: [UInt8], width: Int, caption: String)] = []
        if comm.isRoot {
            for (item, _) in amplified {
                let f = ConceptHeatmaps.figure(m, picture: try dataset.image(item), topK: 3)
                let k = f.maps.predictedClass
                heatmapPNGs.append((item, try ImageCodec.encodePNG(f.grid), min(f.grid.width, 960),
                                    "test item \(item), explainer predicts \(k < dataset.classes.count ? dataset.classes[k] : "\(k)"); Grad-CAM of the class, then of concepts "
                                    + "\(f.concepts) (\(f.maps.classMap.width)x\(f.maps.classMap.height) cells at f's hidden state \(f.maps.layer)); below: the reconstruction and the 3x3 maps of the same concepts"))
            }
        }
        let galleries = stats.topImages(perConcept: 6)
        var galleryPNGs: [(Int, [UInt8])] = []
        if comm.isRoot {
            for j in important {
                let x = concatenate(try galleries[j].map { try loadImage(dataset, $0) }, dim: 0)
                galleryPNGs.append((j, try png(x, columns: galleries[j].count)))
            }
        }
        let classNames = dataset.classes
        let entries = MetricsLog.read(Files.join(folder, "metrics.jsonl"))
        let config = (try? Files.readText(Files.join(folder, "config.json"))) ?? ""
        let resolution = m.resolution, conceptNames = dataset.index.conceptNames
        let summary: [(String, JSONValue)] = [("figures", (try? JSONValueEncoder().encode(figures)) ?? .null),
                                              ("models", .object([("viscoin", .string(Files.join(folder, "viscoin.safetensors")))]))]
        var keyFigures: [(String, String)] = [("data", "\(dataset.root) (\(dataset.index.count(.test)) test images, \(classes) classes, \(resolution)px)"),
                                              ("concepts", "\(k)"), ("LPIPS term", lpips == nil ? "off (no --lpips weights given)" : "on")]
        if let e = evaluation {
            keyFigures += [("classifier accuracy", "\(Console.fixed(e.classifierAccuracy, 2))%"), ("explainer accuracy", "\(Console.fixed(e.explainerAccuracy, 2))%"),
                           ("fidelity (argmax f = argmax Theta)", "\(Console.fixed(e.fidelity, 2))%"),
                           ("reconstruction L1 / L2", "\(Console.fixed(e.l1, 4)) / \(Console.fixed(e.l2, 4))"),
                           ("LPIPS", e.lpips.map { Console.fixed($0, 4) } ?? "not measured"),
                           ("FID of reconstructions", e.fid.map { "\(Console.fixed($0, 2)) (\(e.detector ?? ""))" } ?? "not measured")]
        }
        if let a = alignment, let b = baseline {
            keyFigures.append(("concept alignment (mean best |r| over true concepts)", "\(Console.fixed(a.score, 3)) (untrained Psi: \(Console.fixed(b.score, 3)))"))
        }
        if let f = figures.faithfulness {
            keyFigures.append(("faithfulness (x4 vs x1, probability of the predicted class)",
                               "top-3 concepts \(Console.signed(f.selected, 3)), random concepts \(Console.signed(f.random, 3)) over \(f.images) images"))
        }
        let scale = max(1, 96 / max(resolution, 1))
        return ReportContent(title: "VisCoIN — \(Files.lastComponent(of: folder))", summary: summary, keyFigures: keyFigures) { html in
            func series(_ kind: String, _ key: String) -> [(Double, Double)] { MetricsLog.series(entries, kind: kind, y: key) }
            html.lineChart(title: "Training loss terms", xLabel: "step", yLabel: "loss",
                           series: ["total_loss", "rec_loss", "of_loss", "cr_loss", "ortho_loss", "gan_loss"].map { ($0, series("train", "train_" + $0)) })
            html.lineChart(title: "Test accuracy and fidelity", xLabel: "step", yLabel: "%",
                           series: [("classifier", series("test", "test_classifier_accuracy")), ("explainer", series("test", "test_explainer_accuracy")),
                                    ("fidelity", series("test", "test_fidelity"))])
            html.lineChart(title: "Test reconstruction error", xLabel: "step", yLabel: "error",
                           series: [("L1", series("test", "test_l1")), ("L2", series("test", "test_l2")), ("LPIPS", series("test", "test_lpips"))])
            if !reconstructionsPNG.isEmpty {
                html.heading("Test images (top) and their reconstructions from the concepts (bottom)")
                html.image(png: reconstructionsPNG, width: resolution * shown, scale: scale, caption: "\(shown) test images")
            }
            if !amplified.isEmpty {
                html.heading("Concept amplification")
                html.paragraph("Rows: the three concepts that matter most for the predicted class multiplied by 0, 1, 2, 4; then three random concepts. "
                               + "The number is the explainer's probability of the predicted class on the regenerated image.")
                for (item, r) in amplified {
                    if let png = try? png(concatenate(r.images + r.randomImages, dim: 0), columns: r.multipliers.count) {
                        let k = r.analysis.predictedClass
                        let probs = r.probabilities.map { Console.fixed(Double($0), 2) }.joined(separator: " / ")
                        let randomProbs = r.randomProbabilities.map { Console.fixed(Double($0), 2) }.joined(separator: " / ")
                        html.image(png: png, width: resolution * r.multipliers.count, scale: scale,
                                   caption: "test item \(item), predicted \(k < classNames.count ? classNames[k] : "\(k)"): concepts \(r.selected) -> \(probs); random \(r.random) -> \(randomProbs)")
                    }
                }
            }
            if !heatmapPNGs.isEmpty {
                html.heading("Concept heatmaps")
                html.paragraph("Where each concept is active: Grad-CAM of the explainer's predicted class and of each concept's maximum a_j at the first "
                               + "hidden state of f that Psi reads (gradients through f's later stages and Psi), and each concept's own 3x3 map Phi_j; "
                               + "every map is scaled to its own maximum (blue low, red high). `viscoin heatmaps` draws them for any test image, "
                               + "`viscoin explore` live.")
                for h in heatmapPNGs { html.image(png: h.png, width: h.width, scale: 1, caption: h.caption) }
            }
            html.heading("Class-concept heatmap (balanced mean activation, normalised per concept; most important concepts)")
            let balanced = ConceptStatistics.normalized(stats.balanced, rows: classes, columns: k, alongRows: false)
            html.heatmap(rows: classNames, columns: important.map { "c\($0)" }, values: classNames.indices.map { c in important.map { balanced[c * k + $0] } })
            html.heading("Concept galleries: the test images that activate each concept most")
            for (j, png) in galleryPNGs { html.image(png: png, width: resolution * 6, scale: scale, caption: "concept \(j)") }
            if let a = alignment, let b = baseline {
                html.heading("Alignment with the true concepts")
                html.table(header: ["true concept", "best learned concept", "correlation", "untrained Psi best |r|"],
                           rows: conceptNames.indices.map { t in [conceptNames[t], "c\(a.bestMatch[t])", Console.fixed(a.bestCorrelation[t], 3), Console.fixed(abs(b.bestCorrelation[t]), 3)] })
            }
            if let e = evaluation, !e.perClass.isEmpty {
                html.heading("Per-class test figures")
                html.table(header: ["class", "images", "classifier", "explainer", "fidelity"], rows: e.perClass.map { p in
                    [p.name, "\(p.images)"] + [p.classifierAccuracy, p.explainerAccuracy, p.fidelity].map { $0.map { "\(Console.fixed($0, 1))%" } ?? "-" }
                })
            }
            html.heading("Configuration")
            html.preformatted(config)
        }
    }

    /// A dataset image in [-1, 1], [1, 3, R, R].
    static func loadImage(_ dataset: PreparedDataset, _ item: Int) throws -> Tensor {
        let picture = try dataset.image(item)
        return ImageTensors.tensor([picture]) / 127.5 - 1
    }
}
