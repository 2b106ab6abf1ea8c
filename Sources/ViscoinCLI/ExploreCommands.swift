// `viscoin explore` (the concept explorer: a local web page over a JSON API, Explorer target)
// and `viscoin heatmaps` (concept heatmaps of test images as PNG overlays and JSON).
import ArgumentParser
import Common
import Dispatch
import Evaluation
import Explorer
import ImageCodecs
import Models
import TensorCore

struct ExploreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explore",
        abstract: "Serve the concept explorer: pick an image, move concept sliders, see the regenerated image and prediction.",
        discussion: """
            Serves one page and a JSON API (README "Concept explorer") on 127.0.0.1; open the printed \
            URL in a browser. --host other than a loopback address makes the explorer reachable from \
            the network: it has no authentication, so only do this on a trusted network. --port 0 \
            picks a free port. Stop with Ctrl-C.
            """)

    @Option(help: "VisCoIN weight file (train-viscoin's viscoin.safetensors, or `viscoin convert --model viscoin`).") var viscoin: String
    @Option(help: "Prepared dataset folder (its test split is browsed).") var data: String
    @Option(help: "Port (0: any free port).") var port = 8765
    @Option(help: "Address to listen on (default loopback only).") var host = "127.0.0.1"
    @Option(help: "Largest upload in bytes.") var maxUpload = 8 << 20
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535") }
        guard maxUpload >= 1024 && maxUpload <= 256 << 20 else { throw ValidationError("--max-upload must be in 1 KiB...256 MiB") }
        guard !host.isEmpty else { throw ValidationError("--host must not be empty") }
    }

    func run() throws {
        let o = self
        try Runtime.run(runtime) { comm, _ in
            guard comm.size == 1 else { throw ValidationError("explore runs as one process (start it without mpirun)") }
            let (models, dataset) = try EnsembleOptions.load(viscoin: o.viscoin, data: o.data)
            let loopback = ["127.0.0.1", "localhost", "::1"].contains(o.host)
            if !loopback {
                Console.error("warning: listening on \(o.host): anyone who can reach this address can use the explorer (no authentication)")
            }
            let model = try ExplorerModel(models: models, dataset: dataset) { Console.print("explore: \($0)") }
            var options = ExplorerServerOptions()
            options.host = o.host
            options.port = o.port
            options.maxUploadBytes = o.maxUpload
            let done = DispatchSemaphore(value: 0)
            let failure = LockedBox<String?>(nil)
            let shownHost = o.host.contains(":") ? "[\(o.host)]" : o.host
            Task {
                do {
                    try await ExplorerServer.run(model, options: options) { port in
                        Console.print("explore: serving http://\(shownHost):\(port)/ (Ctrl-C to stop)")
                    }
                } catch {
                    failure.set("cannot serve on \(o.host):\(o.port): \(error)")
                }
                done.signal()
            }
            done.wait()
            if let message = failure.get() { throw ValidationError(message) }
            Console.print("explore: stopped")
        }
    }
}

/// A value shared between a task and the thread that waits for it.
final class LockedBox<T>: @unchecked Sendable {
    private let lock = Lock()
    private var value: T
    init(_ value: T) { self.value = value }
    func set(_ v: T) { lock.withLock { value = v } }
    func get() -> T { lock.withLock { value } }
}

struct HeatmapsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "heatmaps",
        abstract: "Concept heatmaps of test images: where each important concept (and the predicted class) is active.",
        discussion: """
            For each image: the Grad-CAM of the explainer's predicted class and of a_j = max Phi_j for \
            the concepts that matter most for that class (v_j, as `amplify`), taken at f's stage-2 \
            output (--layer), and each concept's own 3x3 map Phi_j. OUTDIR/heatmaps-<position>.png has \
            two rows: the image and the Grad-CAM overlays (class, then concepts); the reconstruction \
            and the Phi overlays. heatmaps.json holds every map's values.
            """)

    @OptionGroup var ensemble: EnsembleOptions
    @OptionGroup var runtime: RuntimeOptions
    @Option(help: "Test-split positions, e.g. 0,5,9.") var images = "0,1,2,3"
    @Option(help: "Map the K concepts with the largest v_j.") var topK = 4
    @Option(help: "Hidden state of f for Grad-CAM (0 = stem ... 4 = last stage; default: the first one Psi reads).") var layer: Int?
    @Option(help: "Output folder.") var outdir: String

    func run() throws {
        try requireWritable(outdir, "--outdir")
        let o = self
        guard topK >= 1 else { throw ValidationError("--top-k must be at least 1") }
        let parsed = images.split(separator: ",").map { Int(String($0.filter { $0 != " " })) }
        guard !parsed.isEmpty, parsed.allSatisfy({ $0 != nil && $0! >= 0 }) else { throw ValidationError("--images must list test positions, e.g. 0,5,9") }
        try Runtime.run(runtime) { comm, _ in
            let (models, dataset) = try o.ensemble.load()
            guard comm.isRoot else { try comm.sleepingBarrier(); return }
            let test = dataset.index.indices(of: [.test])
            if let bad = parsed.first(where: { $0! >= test.count }) { throw ValidationError("--images: test position \(bad!) does not exist (0..<\(test.count))") }
            let stages = models.classifier.resnet.config.hiddenSizes.count + 1
            if let layer = o.layer, layer < 0 || layer >= stages { throw ValidationError("--layer must be in 0..<\(stages)") }
            models.freeze()
            try Files.createDirectory(o.outdir)
            var entries: [JSONValue] = []
            for position in parsed.map({ $0! }) {
                let picture = try dataset.image(test[position])
                let (chosen, intensities, set, grid) = ConceptHeatmaps.figure(models, picture: picture, topK: o.topK, layer: o.layer)
                try ImageCodec.write(grid, path: Files.join(o.outdir, "heatmaps-\(position).png"))
                let k = set.predictedClass
                entries.append(["position": JSONValue(position), "item": JSONValue(test[position]),
                                "predicted_class": JSONValue(k), "predicted_name": .string(k < dataset.classes.count ? dataset.classes[k] : "\(k)"),
                                "concepts": JSONValue(chosen), "intensities": .array(intensities.map { JSONValue($0) }),
                                "maps": try JSONValueEncoder().encode(set)])
                Console.print("heatmaps: test #\(position) predicted \(k < dataset.classes.count ? dataset.classes[k] : "\(k)"), concepts \(chosen), Grad-CAM at hidden state \(set.layer) (\(set.classMap.width)x\(set.classMap.height))")
            }
            try Files.writeAtomically(Files.join(o.outdir, "heatmaps.json"), text: JSONValue.object([("images", .array(entries))]).serialized(pretty: true) + "\n")
            Console.print("heatmaps: \(parsed.count) images; heatmaps-<position>.png and heatmaps.json in \(o.outdir)")
        }
    }
}
