// `viscoin bench ops`: GFLOP/s of conv2d forward, input gradient and weight gradient at the
// ResNet-50 layer shapes (batch 8, 224 and 256 input) and at StyleGAN2 256px modulated
// convolution shapes, each as a fraction of the sgemm peak measured in the same run; and the
// bandwidth of the main element-wise operators against memcpy.
import ArgumentParser
import Common
import Communication
import LinearAlgebra
import TensorCore

struct BenchOpsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ops",
        abstract: "Convolution GFLOP/s (fraction of sgemm peak) and element-wise bandwidth.")

    @OptionGroup var bench: BenchOptions
    @OptionGroup var runtime: RuntimeOptions

    @Option(help: "Batch size of the convolution shapes.") var batch = 8
    @Option(help: "Which shapes: resnet, stylegan, elementwise, all.") var only = "all"

    func validate() throws {
        guard (1...1024).contains(batch) else { throw ValidationError("--batch must be between 1 and 1024 (got \(batch))") }
        guard ["resnet", "stylegan", "elementwise", "all"].contains(only) else { throw ValidationError("--only must be resnet, stylegan, elementwise or all (got \(only))") }
    }

    func run() throws {
        let repeats = bench.repeats, json = bench.json, batch = batch, only = only
        try Runtime.run(runtime) { comm, threads in
            Parallel.setThreadCount(threads)
            let report = BenchReport(title: "bench ops", communicator: comm, threads: threads, batch: batch)
            let probe = PeakProbe()
            report.add("sgemm 1024^3 OpenBLAS reference (median)", (0..<5).map { _ in probe.measure() }.sorted()[2], "GFLOP/s")
            if only == "all" || only == "resnet" {
                for resolution in [224, 256] {
                    for shape in resnetShapes(resolution: resolution) {
                        benchConvolution(shape, batch: batch, probe: probe, repeats: repeats, report: report)
                    }
                }
            }
            if only == "all" || only == "stylegan" {
                for shape in styleganShapes() { benchModulatedConvolution(shape, batch: batch, probe: probe, repeats: repeats, report: report) }
            }
            if only == "all" || only == "elementwise" { benchElementwise(repeats: repeats, report: report) }
            if comm.isRoot { report.print(json: json) }
        }
    }
}

/// A convolution shape: name, input channels, output channels, kernel, stride, padding, input size.
struct ConvShape {
    var name: String
    var cin, cout, kernel, stride, padding, size: Int
}

func resnetShapes(resolution r: Int) -> [ConvShape] {
    let s1 = r / 4, s2 = r / 8, s3 = r / 16, s4 = r / 32
    return [
        ConvShape(name: "resnet\(r) stem 7x7/2 3->64", cin: 3, cout: 64, kernel: 7, stride: 2, padding: 3, size: r),
        ConvShape(name: "resnet\(r) layer1 1x1 256->64", cin: 256, cout: 64, kernel: 1, stride: 1, padding: 0, size: s1),
        ConvShape(name: "resnet\(r) layer1 3x3 64->64", cin: 64, cout: 64, kernel: 3, stride: 1, padding: 1, size: s1),
        ConvShape(name: "resnet\(r) layer1 1x1 64->256", cin: 64, cout: 256, kernel: 1, stride: 1, padding: 0, size: s1),
        ConvShape(name: "resnet\(r) layer2 3x3/2 128->128", cin: 128, cout: 128, kernel: 3, stride: 2, padding: 1, size: s1),
        ConvShape(name: "resnet\(r) layer2 3x3 128->128", cin: 128, cout: 128, kernel: 3, stride: 1, padding: 1, size: s2),
        ConvShape(name: "resnet\(r) layer3 3x3 256->256", cin: 256, cout: 256, kernel: 3, stride: 1, padding: 1, size: s3),
        ConvShape(name: "resnet\(r) layer4 3x3 512->512", cin: 512, cout: 512, kernel: 3, stride: 1, padding: 1, size: s4),
        ConvShape(name: "resnet\(r) layer4 1x1 2048->512", cin: 2048, cout: 512, kernel: 1, stride: 1, padding: 0, size: s4),
    ]
}

/// StyleGAN2 256px synthesis convolutions (channel_base 16384): (name, in, out, resolution, up).
func styleganShapes() -> [(String, Int, Int, Int, Int)] {
    [("sg2 b16 conv1 512->512 @16", 512, 512, 16, 1), ("sg2 b32 conv1 512->512 @32", 512, 512, 32, 1),
     ("sg2 b64 conv0 up 512->256 @64", 512, 256, 32, 2), ("sg2 b128 conv1 128->128 @128", 128, 128, 128, 1),
     ("sg2 b256 conv0 up 128->64 @256", 128, 64, 128, 2), ("sg2 b256 conv1 64->64 @256", 64, 64, 256, 1)]
}

/// Interleaves a reference sgemm with the measured operation, so that slow drifts of this
/// (shared, virtual) machine cancel out of the ratio.
final class PeakProbe {
    private let probe = SgemmPeakProbe()

    /// sgemm 1024^3 GFLOP/s (best of 3), with the run's threads.
    func measure() -> Double { probe.measure(runs: 3) }

    /// The medians of the operation's time and of (operation GFLOP/s) / (sgemm GFLOP/s) over
    /// the repeats, the peak measured again before each.
    func timeRelative(flops: Double, repeats: Int, _ body: () -> Void) -> (seconds: Double, ofPeak: Double) {
        body()  // warm-up
        var times: [Double] = [], ratios: [Double] = []
        for _ in 0..<max(1, repeats) {
            let peak = measure()
            let start = Console.now()
            body()
            let t = Console.now() - start
            times.append(t)
            ratios.append(flops / t / 1e9 / peak)
        }
        return (times.sorted()[times.count / 2], ratios.sorted()[ratios.count / 2])
    }
}

func benchConvolution(_ s: ConvShape, batch: Int, probe: PeakProbe, repeats: Int, report: BenchReport) {
    let generator = RandomGenerator(seed: 1)
    let x = generator.normal([batch, s.cin, s.size, s.size])
    let w = generator.normal([s.cout, s.cin, s.kernel, s.kernel], std: 0.05)
    let y = noGrad { conv2d(x, w, stride: s.stride, padding: s.padding) }
    let flops = 2.0 * Double(y.count) * Double(s.cin * s.kernel * s.kernel)
    let gy = generator.normal(y.shape)
    let stride = (s.stride, s.stride), padding = (s.padding, s.padding)
    let phases: [(String, () -> Void)] = [
        ("forward", { _ = noGrad { conv2d(x, w, stride: s.stride, padding: s.padding) } }),
        ("input grad", { _ = noGrad { conv2dBackwardInput(gy, weight: w, inputShape: x.shape, stride: stride, padding: padding) } }),
        ("weight grad", { _ = noGrad { conv2dBackwardWeight(x, gradOutput: gy, weightShape: w.shape, stride: stride, padding: padding) } }),
    ]
    for (phase, body) in phases {
        let (seconds, ofPeak) = probe.timeRelative(flops: flops, repeats: repeats, body)
        report.add("\(s.name) \(phase)", flops / seconds / 1e9, "GFLOP/s", [("of_peak", .double(ofPeak)), ("ms", .double(seconds * 1000))])
    }
}

func benchModulatedConvolution(_ s: (String, Int, Int, Int, Int), batch: Int, probe: PeakProbe, repeats: Int, report: BenchReport) {
    let (name, cin, cout, size, up) = s
    let generator = RandomGenerator(seed: 2)
    let x = generator.normal([batch, cin, size, size]).requiringGrad()
    let weight = generator.normal([cout, cin, 3, 3]).requiringGrad()
    let styles = generator.uniform([batch, cin], low: 0.5, high: 1.5).requiringGrad()
    let filter = FIRFilter.setup([1, 3, 3, 1])
    let outSize = size * up
    // Multiply-adds of the convolution: every input pixel meets 9 taps per output channel when
    // upsampling (transposed convolution), every output pixel otherwise.
    let flops = 2.0 * Double(batch * cout * (up > 1 ? size * size : outSize * outSize)) * Double(cin * 9)
    let gy = generator.normal([batch, cout, outSize, outSize])
    let forward = probe.timeRelative(flops: flops, repeats: repeats) {
        _ = noGrad { modulatedConv2d(x, weight: weight, styles: styles, up: up, padding: 1, resampleFilter: filter, flipWeight: up == 1, fusedModconv: false) }
    }
    let total = probe.timeRelative(flops: 3 * flops, repeats: repeats) {
        let y = modulatedConv2d(x, weight: weight, styles: styles, up: up, padding: 1, resampleFilter: filter, flipWeight: up == 1, fusedModconv: false)
        _ = Autograd.grad(of: [y], wrt: [x, weight, styles], gradOutputs: [gy])
    }
    report.add("\(name) forward", flops / forward.seconds / 1e9, "GFLOP/s", [("of_peak", .double(forward.ofPeak)), ("ms", .double(forward.seconds * 1000))])
    report.add("\(name) forward+backward", 3 * flops / total.seconds / 1e9, "GFLOP/s", [("of_peak", .double(total.ofPeak)), ("ms", .double(total.seconds * 1000))])
}

func benchElementwise(repeats: Int, report: BenchReport) {
    let n = 1 << 24
    let generator = RandomGenerator(seed: 3)
    let a = generator.normal([16, 64, 128, 128]), b = generator.normal([16, 64, 128, 128])
    let bias = generator.normal([64])
    let dst = Tensor(uninitializedShape: [n])
    let memcpy = medianSeconds(repeats: repeats) { dst.data.update(from: a.data, count: n) }
    let base = 2.0 * Double(n * 4) / memcpy / 1e9
    report.add("memcpy", base, "GB/s", [("of_memcpy", .double(1))])
    let cases: [(String, Double, () -> Void)] = [
        ("add (a + b)", 3, { _ = noGrad { a + b } }),
        ("mul (a * b)", 3, { _ = noGrad { a * b } }),
        ("scale (a * 2)", 2, { _ = noGrad { a * 2 } }),
        ("relu", 2, { _ = noGrad { a.relu() } }),
        ("exp", 2, { _ = noGrad { a.exp() } }),
        ("bias_act lrelu", 2, { _ = noGrad { biasAct(a, bias: bias, act: .lrelu, clamp: 256) } }),
        ("channel broadcast add", 2, { _ = noGrad { a + bias.reshaped([1, 64, 1, 1]) } }),
        ("batch norm (train)", 3, { _ = noGrad { batchNorm(a, weight: nil, bias: nil, runningMean: nil, runningVar: nil, training: true) } }),
        ("sum", 1, { _ = noGrad { a.sum() } }),
    ]
    for (name, passes, body) in cases {
        let seconds = medianSeconds(repeats: repeats) { body() }
        let gbs = passes * Double(n * 4) / seconds / 1e9
        report.add(name, gbs, "GB/s", [("of_memcpy", .double(gbs / base))])
    }
}
