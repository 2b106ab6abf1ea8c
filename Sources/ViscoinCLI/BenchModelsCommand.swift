// `viscoin bench models`: ResNet-50 training step (forward, backward, Adam) and inference
// images/s at 224 and 256; StyleGAN2 generator inference and one G step (G forward, D forward,
// backward) and one D step on reals with R1 images/s for the `auto` 256px and the tiny preset;
// resident memory and minor page faults of the process. Each line also gives the GEMM and
// convolution GFLOP of one step, the GFLOP/s they ran at, and that as a fraction of the sgemm
// peak measured at the start (sgemm 1024^3, the same library and threads).
import ArgumentParser
import Common
import Communication
import LinearAlgebra
import Models
import NN
import TensorCore
#if canImport(Glibc)
import Glibc
#endif

struct BenchModelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "Images/s of the ResNet-50 train step and of StyleGAN2 G inference and G steps.")

    @OptionGroup var bench: BenchOptions
    @OptionGroup var runtime: RuntimeOptions
    @Option(help: "Batch size.") var batch = 8
    @Option(help: "Which: resnet, stylegan, tiny, all.") var only = "all"
    @Option(help: "ResNet input resolutions.") var resolutions = "224,256"
    @Option(help: "Timed steps per measurement.") var steps = 3
    @Option(help: "Resolution of the StyleGAN2 auto networks (a power of two, 32 to 1024).") var ganResolution = 256

    func validate() throws {
        guard (1...1024).contains(batch) else { throw ValidationError("--batch must be between 1 and 1024 (got \(batch))") }
        guard (1...10_000).contains(steps) else { throw ValidationError("--steps must be between 1 and 10000 (got \(steps))") }
        guard (32...1024).contains(ganResolution), ganResolution & (ganResolution - 1) == 0 else {
            throw ValidationError("--gan-resolution must be a power of two between 32 and 1024 (got \(ganResolution))")
        }
        guard ["resnet", "stylegan", "tiny", "all"].contains(only) else { throw ValidationError("--only must be resnet, stylegan, tiny or all (got \(only))") }
        let sizes = resolutions.split(separator: ",", omittingEmptySubsequences: false).map { Int($0) }
        guard !sizes.isEmpty, sizes.allSatisfy({ ($0 ?? 0) >= 32 && ($0 ?? 0) <= 2048 }) else {
            throw ValidationError("--resolutions must be a comma-separated list of sizes between 32 and 2048 (got \(resolutions))")
        }
    }

    func run() throws {
        let o = self
        try Runtime.run(runtime) { comm, threads in
            let report = BenchReport(title: "bench models", communicator: comm, threads: threads, batch: o.batch)
            let probe = PeakProbe()
            benchPeak = (0..<5).map { _ in probe.measure() }.sorted()[2]
            report.add("sgemm 1024^3 peak (median)", benchPeak, "GFLOP/s")
            let sizes = o.resolutions.split(separator: ",").compactMap { Int($0) }
            if o.only == "all" || o.only == "resnet" {
                for r in sizes { benchResNet(resolution: r, batch: o.batch, steps: o.steps, report: report) }
            }
            if o.only == "all" || o.only == "stylegan" {
                benchStyleGAN(.auto(resolution: o.ganResolution), name: "stylegan2 auto \(o.ganResolution)", batch: o.batch, steps: o.steps, report: report)
            }
            if o.only == "all" || o.only == "tiny" {
                benchStyleGAN(.tiny, name: "stylegan2 tiny 32", batch: o.batch, steps: o.steps * 5, report: report)
            }
            let usage = resourceUsage()
            report.add("peak resident memory", Double(usage.maxRSS) / 1024, "MiB")
            report.add("minor page faults", Double(usage.minorFaults), "faults")
            if comm.isRoot { report.print(json: o.bench.json) }
        }
    }
}

/// Peak RSS (KiB) and minor faults of this process so far.
func resourceUsage() -> (maxRSS: Int, minorFaults: Int) {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return (Int(usage.ru_maxrss), Int(usage.ru_minflt))
}

/// The sgemm peak `bench models` measured at its start (GFLOP/s), for the fractions of it.
nonisolated(unsafe) var benchPeak = 0.0

/// GEMM and convolution FLOPs of the last run of `timeSteps`' body.
nonisolated(unsafe) var lastStepFLOPs = 0.0

/// Median seconds of `steps` runs after one warm-up run.
func timeSteps(_ steps: Int, _ body: () -> Void) -> Double {
    body()
    var times: [Double] = []
    for _ in 0..<max(1, steps) {
        let flops = BLAS.countedFLOPs
        let start = Console.now()
        body()
        times.append(Console.now() - start)
        lastStepFLOPs = BLAS.countedFLOPs - flops
    }
    return times.sorted()[times.count / 2]
}

/// The extras of a step measurement: its time, its GFLOP, their rate and the fraction of the peak.
func stepExtras(_ seconds: Double, _ more: [(String, JSONValue)] = []) -> [(String, JSONValue)] {
    let gflop = lastStepFLOPs / 1e9
    var extras: [(String, JSONValue)] = [("step_ms", .double(seconds * 1000)), ("gflop_per_step", .double(gflop)), ("gflop_s", .double(gflop / seconds))]
    if benchPeak > 0 { extras.append(("of_peak", .double(gflop / seconds / benchPeak))) }
    return extras + more
}

func benchResNet(resolution r: Int, batch: Int, steps: Int, report: BenchReport) {
    let rng = RandomGenerator(seed: 1)
    let model = Classifier(config: .resnet50, classes: 200, generator: rng)
    let optimizer = BenchAdam(model.parameters)
    let x = rng.normal([batch, 3, r, r])
    let labels = (0..<batch).map { $0 % 200 }
    model.train()
    var faults = 0
    let step = timeSteps(steps) {
        let before = resourceUsage().minorFaults
        let (logits, _) = model(x)
        let loss = crossEntropy(logits, labels: labels)
        loss.backward()
        optimizer.step()
        faults = resourceUsage().minorFaults - before
    }
    report.add("resnet50 train step \(r)px", Double(batch) / step, "images/s", stepExtras(step, [("minor_faults_per_step", .double(Double(faults)))]))
    model.eval()
    let inference = timeSteps(steps) { _ = noGrad { model(x) } }
    report.add("resnet50 inference \(r)px", Double(batch) / inference, "images/s", stepExtras(inference))
}

func benchStyleGAN(_ config: StyleGAN2Config, name: String, batch: Int, steps: Int, report: BenchReport) {
    let rng = RandomGenerator(seed: 2)
    let g = Generator(config, generator: rng), d = Discriminator(config, generator: rng)
    let noise = RandomGenerator(seed: 3)
    g.eval()
    let z = rng.normal([batch, config.zDim])
    let inference = timeSteps(steps) { _ = noGrad { g(z, noise: .const) } }
    report.add("\(name) G inference", Double(batch) / inference, "images/s", stepExtras(inference))
    g.train()
    // As in stylegan2-ada's Gmain phase: D is not trained (no D weight gradients).
    d.freeze()
    let optimizer = BenchAdam(g.parameters)
    var faults = 0
    let gstep = timeSteps(steps) {
        let before = resourceUsage().minorFaults
        let (img, _) = g(z, noise: .random(noise))
        let loss = (-d(img)).softplus().mean()
        Autograd.backward([loss])
        optimizer.step()
        faults = resourceUsage().minorFaults - before
    }
    report.add("\(name) G step (G fwd, D fwd, backward)", Double(batch) / gstep, "images/s", stepExtras(gstep, [("minor_faults_per_step", .double(Double(faults)))]))
    // The D step on reals with the R1 penalty (stylegan2-ada's Dreg phase without augmentation):
    // D forward, the gradient of the logits with respect to the images (graph kept), backward
    // through both, Adam on D.
    g.freeze()
    d.freeze(false)
    let dOptimizer = BenchAdam(d.parameters)
    let reals = rng.uniform([batch, 3, config.resolution, config.resolution], low: -1, high: 1)
    let dstep = timeSteps(steps) {
        let before = resourceUsage().minorFaults
        let x = reals.detach().requiringGrad()
        let (logits, _, penalty) = StyleGAN2Loss.r1(images: x) { d($0) }
        let loss = (logits.reshaped([batch]) * 0 + penalty * Float(0.8192 / 2)).mean()
        Autograd.backward([loss])
        dOptimizer.step()
        faults = resourceUsage().minorFaults - before
    }
    report.add("\(name) D real + R1 step", Double(batch) / dstep, "images/s", stepExtras(dstep, [("minor_faults_per_step", .double(Double(faults)))]))
}

/// A minimal Adam for the benchmarks (the training engine has the full optimizer).
final class BenchAdam {
    let parameters: [Tensor]
    var m: [Tensor], v: [Tensor]
    var t = 0

    init(_ parameters: [Tensor]) {
        self.parameters = parameters
        m = parameters.map { Tensor.zeros($0.shape) }
        v = parameters.map { Tensor.zeros($0.shape) }
    }

    func step(lr: Float = 1e-4, beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8) {
        t += 1
        let c1 = 1 - Float(pow(Double(beta1), Double(t))), c2 = 1 - Float(pow(Double(beta2), Double(t)))
        for (i, p) in parameters.enumerated() {
            guard let g = p.grad else { continue }
            let mp = m[i].data, vp = v[i].data, gp = g.data, pp = p.data
            for k in 0..<p.count {
                mp[k] = beta1 * mp[k] + (1 - beta1) * gp[k]
                vp[k] = beta2 * vp[k] + (1 - beta2) * gp[k] * gp[k]
                pp[k] -= lr * (mp[k] / c1) / ((vp[k] / c2).squareRoot() + eps)
            }
            p.grad = nil
        }
    }
}

