// `viscoin bench data`: decode + transform images/s per core from the prepared format at
// 256x256 (a demo set written to a temporary folder, or --data DIR), the loader's batch rate,
// and, for scale, the ResNet-50 training rate on one core.
import ArgumentParser
import Common
import Communication
import Datasets
import ImageCodecs
import Models
import TensorCore

struct BenchDataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Decode + transform images/s per core from the prepared format, against ResNet-50 training on one core.")

    @OptionGroup var bench: BenchOptions

    @Option(name: .long, help: "A prepared dataset to read (default: a temporary 256x256 demo set).")
    var data: String?

    @Option(name: .long, help: "Images of the temporary demo set.")
    var images = 64

    @Option(name: .long, help: "Batch size of the loader measurement.")
    var batch = 8

    @Flag(name: .long, help: "Skip the ResNet-50 comparison (about a minute on one core).")
    var noResnet = false

    func validate() throws {
        guard (9...1_000_000).contains(images) else { throw ValidationError("--images must be between 9 and 1000000 (got \(images))") }
        guard (1...4096).contains(batch) else { throw ValidationError("--batch must be between 1 and 4096 (got \(batch))") }
    }

    func run() throws {
        let json = bench.json, repeats = bench.repeats
        let (dataPath, count, batch, noResnet) = (data, images, batch, noResnet)
        // Per-core figures: one thread, one rank.
        try Runtime.run(threads: 1) { comm, threads in
            guard comm.isRoot else { return }
            let report = BenchReport(title: "bench data (one core)", communicator: comm, threads: threads, batch: batch)
            var temporary: String? = nil
            defer { if let temporary { try? Files.remove(temporary) } }
            let root: String
            if let dataPath {
                root = dataPath
            } else {
                let dir = "/tmp/viscoin-bench-data-\(UInt64.random(in: 0...UInt64.max))"
                temporary = dir
                root = dir + "/demo"
                let plan = DemoTissue.plan(count: count, seed: 0, valFraction: 0, testFraction: 0)
                try Preparation.write(plan, options: PrepareOptions(output: root, size: 256), communicator: SingleProcessCommunicator(), log: { _ in })
            }
            let dataset = try PreparedDataset(root: root)
            let n = dataset.items.count, size = dataset.resolution
            let files = try (0..<n).map { try Files.read(dataset.path(of: $0)) }
            report.add("dataset", Double(n), "images", [("resolution", JSONValue(size)), ("mean_png_bytes", .double(Double(files.map(\.count).reduce(0, +)) / Double(n)))])

            let decode = try medianSeconds(repeats: repeats) { for f in files { _ = try ImageCodec.decode(f) } }
            report.add("decode png \(size)px", Double(n) / decode, "images/s")
            let decoded = try files.map { try ImageCodec.decode($0) }
            var out = [Float](repeating: 0, count: 3 * size * size)
            for (name, transform) in [("train transform (RandomResizedCrop + flip)", ImageTransform.classifierTrain),
                                      ("test transform (Resize + CenterCrop)", ImageTransform.classifierTest),
                                      ("plain transform (GAN data)", ImageTransform.plain(flipProbability: 0.5))] {
                let seconds = out.withUnsafeMutableBufferPointer { p in
                    medianSeconds(repeats: repeats) {
                        for (i, image) in decoded.enumerated() { transform.apply(image, size: size, rng: RandomGenerator(seed: UInt64(i)), into: p.baseAddress!) }
                    }
                }
                report.add(name, Double(n) / seconds, "images/s")
            }
            let loader = try DataLoader(dataset: dataset, splits: [.train, .val, .test], options:
                LoaderOptions(batchSize: batch, seed: 0, transform: .classifierTrain, workers: 1, prefetch: 2))
            var epoch = 0
            let seconds = try medianSeconds(repeats: repeats) {
                let stream = loader.batches(epoch: epoch)
                while try stream.next() != nil {}
                epoch += 1
            }
            let rate = Double(loader.batchesPerEpoch * batch) / seconds
            report.add("loader: decode + train transform + batch (1 worker)", rate, "images/s")
            if !noResnet {
                let rng = RandomGenerator(seed: 1)
                let model = Classifier(config: .resnet50, classes: 200, generator: rng)
                let x = rng.normal([2, 3, 224, 224])
                model.train()
                let step = timeSteps(1) {
                    let (logits, _) = model(x)
                    crossEntropy(logits, labels: [0, 1]).backward()
                }
                let training = 2 / step
                report.add("resnet50 training 224px (one core, forward + backward)", training, "images/s")
                report.add("loader rate / resnet50 training rate", rate / training, "x")
            }
            report.print(json: json)
        }
    }
}
