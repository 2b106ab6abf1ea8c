// `viscoin bench gan`: one full StyleGAN2-ADA training iteration on random images, phase by
// phase (Gmain, Greg, Dmain, Dreg, each with its flat all-reduce and Adam step, ADA on), and
// the iteration with the lazy intervals amortised (Gmain + Dmain + Greg / 4 + Dreg / 16) in
// images/s over all ranks; peak RSS. Run it as 1 rank x 2 threads and 2 ranks x 1 thread.
import ArgumentParser
import Common
import Communication
import Models
import NN
import TensorCore
import Training

struct BenchGANCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gan",
        abstract: "Images/s of a StyleGAN2-ADA training iteration and the time of each phase.")

    @OptionGroup var bench: BenchOptions
    @OptionGroup var runtime: RuntimeOptions
    @Option(help: "Network: tiny (32 px) or auto (256 px, 2-layer mapping).") var cfg = "tiny"
    @Option(help: "Images per rank.") var batch = 8
    @Option(help: "Augmentation probability of the bgc pipeline (0: off).") var p = 0.3

    func validate() throws {
        guard cfg == "tiny" || cfg == "auto" else { throw ValidationError("--cfg must be tiny or auto (got \(cfg))") }
        guard (1...1024).contains(batch) else { throw ValidationError("--batch must be between 1 and 1024 (got \(batch))") }
        guard p.isFinite, (0...1).contains(p) else { throw ValidationError("--p must be in [0, 1] (got \(p))") }
    }

    func run() throws {
        let o = self
        try Runtime.run(runtime) { comm, threads in
            guard o.cfg == "tiny" || o.cfg == "auto" else { throw ValidationError("--cfg must be tiny or auto") }
            guard o.batch >= 2, o.batch % min(4, o.batch) == 0 else { throw ValidationError("--batch must be at least 2 and a multiple of the minibatch-std group 4") }
            let config: StyleGAN2Config = o.cfg == "tiny" ? .tiny : .auto(resolution: 256)
            let report = BenchReport(title: "bench gan", communicator: comm, threads: threads, batch: o.batch * comm.size,
                                     extra: [("cfg", .string(o.cfg)), ("augment_p", .double(o.p))])
            let G = Generator(config, generator: RandomGenerator(seed: 1)), D = Discriminator(config, generator: RandomGenerator(seed: 2))
            let pipe = AugmentPipe(AugmentPreset.bgc.settings, p: Float(o.p))
            let loss = StyleGAN2Loss(G: G, D: D, augmentPipe: o.p > 0 ? pipe : nil, r1Gamma: 0.8192)
            G.train()
            let reals = RandomGenerator(seed: 3, stream: UInt64(comm.rank)).uniform([o.batch, 3, config.resolution, config.resolution], low: -1, high: 1)
            let gParallel = DataParallel(parameters: G.namedParameters(), communicator: comm)
            let dParallel = DataParallel(parameters: D.namedParameters(), communicator: comm)
            let gOpt = Adam([ParameterGroup(G.namedParameters(), lr: 0.002)], beta1: 0, beta2: 0.99)
            let dOpt = Adam([ParameterGroup(D.namedParameters(), lr: 0.002)], beta1: 0, beta2: 0.99)
            var step: UInt64 = 0
            func phase(_ p: StyleGAN2Phase, _ gain: Float) -> TrainingPhase {
                TrainingPhase(name: p.rawValue, optimizers: [p.trainsGenerator ? gOpt : dOpt], parallel: p.trainsGenerator ? gParallel : dParallel,
                              reduction: .afterPhase, nonFinite: .sanitize) { _ in
                    step += 1
                    let random = SeededStyleGAN2Randomness(seed: 0, key: step * 64 + UInt64(comm.rank))
                    let z = RandomGenerator(seed: 4, stream: step).normal([o.batch, config.zDim])
                    loss.accumulateGradients(p, realImages: reals, genZ: z, gain: gain, random: random)
                }
            }
            var seconds: [StyleGAN2Phase: Double] = [:]
            for (p, gain, weight) in [(StyleGAN2Phase.Gmain, Float(1), 1.0), (.Greg, 4, 0.25), (.Dmain, 1, 1.0), (.Dreg, 16, 1.0 / 16)] {
                let runner = phase(p, gain)
                let t = timeSteps(o.bench.repeats) { _ = try? runner.run() }
                seconds[p] = t
                report.add("\(p.rawValue) phase", t * 1000, "ms", [("per_iteration_ms", .double(t * weight * 1000))])
            }
            let iteration = seconds[.Gmain]! + seconds[.Dmain]! + seconds[.Greg]! / 4 + seconds[.Dreg]! / 16
            report.add("training iteration (amortised)", Double(o.batch * comm.size) / iteration, "images/s", [("iteration_ms", .double(iteration * 1000))])
            report.add("peak resident memory", Double(resourceUsage().maxRSS) / 1024, "MiB")
            if comm.isRoot { report.print(json: o.bench.json) }
        }
    }
}
