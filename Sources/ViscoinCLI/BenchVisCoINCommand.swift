// `viscoin bench viscoin`: one VisCoIN training iteration (b real + b synthetic images, every
// loss term including LPIPS, ResNet f, the auto generator's synthesis) part by part — the
// synthetic half, the forward pass (f, Psi, Theta, adapted generator, f again, LPIPS), the
// backward pass, the two Adam steps — in images/s over all ranks; the evaluation forward pass;
// the concept explorer's regenerate and heatmap requests for one image; peak RSS. Random
// weights: speed does not depend on them.
import ArgumentParser
import Common
import Communication
import Evaluation
import ImageCodecs
import Models
import NN
import TensorCore
import Training

struct BenchVisCoINCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "viscoin",
        abstract: "Images/s of a VisCoIN training iteration (by part) and of the evaluation forward pass.")

    @OptionGroup var bench: BenchOptions
    @OptionGroup var runtime: RuntimeOptions
    @Option(help: "Resolution: 256 (ResNet-50, auto generator, 256 concepts) or 32 (the demo's tiny networks).") var resolution = 256
    @Option(help: "Real images per rank (as many synthetic).") var batch = 8
    @Flag(help: "Recompute f's and LPIPS's activations on the reconstruction in the backward pass (train-viscoin --recompute-activations).")
    var recomputeActivations = false

    func validate() throws {
        guard resolution == 256 || resolution == 32 else { throw ValidationError("--resolution must be 256 or 32 (got \(resolution))") }
        guard (1...256).contains(batch) else { throw ValidationError("--batch must be between 1 and 256 (got \(batch))") }
    }

    func run() throws {
        let o = self
        try Runtime.run(runtime) { comm, threads in
            guard o.resolution == 256 || o.resolution == 32 else { throw ValidationError("--resolution must be 256 or 32") }
            guard o.batch >= 1 else { throw ValidationError("--batch must be positive") }
            let big = o.resolution == 256
            let rng = RandomGenerator(seed: 1)
            let f = Classifier(config: big ? .resnet50 : ResNetArchitecture.tiny.config, classes: big ? 200 : 9, generator: rng)
            let g = Generator(big ? .auto(resolution: 256) : .tiny, generator: rng)
            let m = VisCoINBuilder.make(classifier: f, generator: g, concepts: big ? 256 : 32, latentChannels: big ? 512 : 64, wAvgInit: .pretrained, seed: 2)
            let lpips = LPIPS(generator: rng)
            f.eval(); f.freeze(); g.freeze(); g.mapping.eval(); lpips.eval(); lpips.freeze()
            m.conceptExtractor.train(); m.explainer.train(); m.gan.train()
            let report = BenchReport(title: "bench viscoin", communicator: comm, threads: threads, batch: 2 * o.batch * comm.size,
                                     extra: [("resolution", JSONValue(o.resolution)), ("recompute_activations", .bool(o.recomputeActivations))])
            func named(_ p: String, _ module: Module) -> [(String, Tensor)] { module.namedParameters().map { (p + $0.0, $0.1) } }
            let psiTheta = named("concept_extractor.", m.conceptExtractor) + named("explainer.", m.explainer), mapping = named("gan.mapping.", m.gan.mapping)
            let opt = Adam([ParameterGroup(psiTheta, lr: 1e-4)]), ganOpt = Adam([ParameterGroup(mapping, lr: 1e-4)])
            let parallel = DataParallel(parameters: psiTheta + mapping, communicator: comm)
            let real = RandomGenerator(seed: 3, stream: UInt64(comm.rank)).uniform([o.batch, 3, o.resolution, o.resolution], low: -1, high: 1)
            let labels = (0..<o.batch).map { $0 % f.classes }
            var parts = (synthetic: [Double](), forward: [Double](), backward: [Double](), step: [Double]())
            for iteration in 0...max(1, o.bench.repeats) {
                let noise = RandomGenerator(seed: 4, stream: UInt64(iteration))
                if iteration == 1 { BufferPool.shared.resetPeak() }
                var t = Console.now()
                let synthetic = noGrad { g(noise.normal([o.batch, g.config.zDim]), noise: .random(noise)).image }
                let t1 = Console.now()
                let x = concatenate([real, synthetic], dim: 0)
                let forward = VisCoINObjective.forward(m, images: x, noise: .random(noise), dropout: noise, recompute: o.recomputeActivations)
                let terms = VisCoINObjective.losses(m, forward, images: x, labels: labels, iteration: 1000, weights: VisCoINWeights(), lpips: lpips,
                                                    recompute: o.recomputeActivations)
                let t2 = Console.now()
                try parallel.backward(terms.total)
                let t3 = Console.now()
                opt.step(); ganOpt.step(); opt.zeroGrad(); ganOpt.zeroGrad()
                let t4 = Console.now()
                if iteration > 0 {  // the first iteration warms the buffer pool up
                    parts.synthetic.append(t1 - t); parts.forward.append(t2 - t1); parts.backward.append(t3 - t2); parts.step.append(t4 - t3)
                }
                t = t4
            }
            func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }
            let total = median(parts.synthetic) + median(parts.forward) + median(parts.backward) + median(parts.step)
            report.add("synthetic half (pretrained G)", median(parts.synthetic) * 1000, "ms")
            report.add("forward (f, Psi, Theta, adapted G, f, LPIPS, losses)", median(parts.forward) * 1000, "ms")
            report.add("backward (with the gradient all-reduce)", median(parts.backward) * 1000, "ms")
            report.add("two Adam steps", median(parts.step) * 1000, "ms")
            report.add("training iteration", Double(2 * o.batch * comm.size) / total, "images/s", [("iteration_ms", .double(total * 1000))])
            // The buffers the iteration holds at once (tensors and scratch of at least 16 KiB), after the first.
            report.add("training iteration: peak tensor memory", Double(BufferPool.shared.usage.peakLiveBytes) / Double(1 << 20), "MiB")
            m.eval()
            let evaluation = timeSteps(max(1, o.bench.repeats)) { _ = noGrad { VisCoINObjective.forward(m, images: real, noise: .const) } }
            report.add("evaluation forward", Double(o.batch * comm.size) / evaluation, "images/s", [("batch_ms", .double(evaluation * 1000))])
            // What the concept explorer does per request, for one image.
            m.freeze()
            let one = real.slice(dim: 0, start: 0, end: 1)
            let analysis = ConceptAmplification.analyse(m, image: one)
            let regenerate = timeSteps(max(1, o.bench.repeats)) {
                let image = noGrad { m.gan(analysis.phi * 2, analysis.phiPrime, noise: .const).image }
                noGrad {
                    let (logits, hidden) = m.classify(image)
                    _ = (logits.softmax(dim: 1).toArray(), m.explainer(m.concepts(hidden).phi).softmax(dim: 1).toArray())
                }
                _ = try? ImageCodec.encodePNG(ImageTensors.images(fromGenerated: image)[0])
            }
            report.add("explorer regenerate (1 image: G, f, Psi, Theta, PNG)", regenerate * 1000, "ms")
            let heatmap = timeSteps(max(1, o.bench.repeats)) { _ = ConceptHeatmaps.compute(m, image: one, concepts: [0]) }
            report.add("explorer heatmap (Grad-CAM of the class and 1 concept)", heatmap * 1000, "ms")
            report.add("peak resident memory", Double(resourceUsage().maxRSS) / 1024, "MiB")
            if comm.isRoot { report.print(json: o.bench.json) }
        }
    }
}
