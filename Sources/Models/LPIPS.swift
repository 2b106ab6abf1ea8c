// LPIPS (VGG16, version 0.1; spec metrics.md section 4) in the lpips package's naming:
// `scaling_layer.{shift,scale}`, `net.slice{1..5}.{index}.{weight,bias}` (torchvision
// vgg16.features indices), `lin{k}.model.1.weight` and the same heads again as `lins.{k}`.
import NN
import TensorCore

public final class LPIPS: Module {
    /// torchvision vgg16.features indices of the convolutions, per slice.
    static let slices: [[Int]] = [[0, 2], [5, 7], [10, 12, 14], [17, 19, 21], [24, 26, 28]]
    static let channels = [64, 128, 256, 512, 512]

    public let shift: Tensor
    public let scale: Tensor
    var convs: [[Conv2d]] = []
    var heads: [Module] = []
    var headWeights: [Tensor] = []

    public init(generator g: RandomGenerator) {
        shift = Tensor([-0.030, -0.088, -0.188], shape: [1, 3, 1, 1])
        scale = Tensor([0.458, 0.448, 0.450], shape: [1, 3, 1, 1])
        super.init()
        let scaling = Module()
        scaling.buffer("shift", shift)
        scaling.buffer("scale", scale)
        child("scaling_layer", scaling)
        let net = Module()
        var inChannels = 3
        for (s, indices) in LPIPS.slices.enumerated() {
            let slice = Module()
            var list: [Conv2d] = []
            for i in indices {
                let conv = Conv2d(inChannels, LPIPS.channels[s], kernel: 3, padding: 1, generator: g)
                slice.child(String(i), conv)
                list.append(conv)
                inChannels = LPIPS.channels[s]
            }
            net.child("slice\(s + 1)", slice)
            convs.append(list)
        }
        child("net", net)
        for (k, c) in LPIPS.channels.enumerated() {
            // NetLinLayer: Sequential(Dropout, Conv2d(c, 1, 1, bias=False)) -> key model.1.weight
            let head = Module()
            let model = Module()
            let weight = g.uniform([1, c, 1, 1], low: 0, high: 1 / Float(c))
            let conv = Module()
            conv.parameter("weight", weight)
            model.child("1", conv)
            head.child("model", model)
            child("lin\(k)", head)
            heads.append(head)
            headWeights.append(weight)
        }
        let lins = Module()
        for (k, head) in heads.enumerated() { lins.child(String(k), head) }
        child("lins", lins)
        eval()
        freeze()
    }

    func features(_ x: Tensor) -> [Tensor] {
        var h = (x - shift) / scale
        var taps: [Tensor] = []
        for (s, list) in convs.enumerated() {
            if s > 0 { h = h.maxPool2d(kernel: 2, stride: 2) }
            for c in list { h = c(h).relu() }
            taps.append(h)
        }
        return taps
    }

    /// The five feature taps of images in [-1, 1], each normalised to unit length over channels.
    public func normalizedFeatures(_ x: Tensor) -> [Tensor] {
        features(x).map { $0 / ($0.square().sum(dims: [1], keepDims: true).sqrt() + 1e-10) }
    }

    /// Per-sample distances [N, 1, 1, 1] and the five per-layer terms. Inputs in [-1, 1].
    public func distance(_ x0: Tensor, _ x1: Tensor) -> (total: Tensor, perLayer: [Tensor]) {
        distance(normalizedFeatures(x0), normalizedFeatures(x1))
    }

    /// The distances between two images' normalised feature taps (`normalizedFeatures`).
    public func distance(_ a: [Tensor], _ b: [Tensor]) -> (total: Tensor, perLayer: [Tensor]) {
        var perLayer: [Tensor] = []
        for k in 0..<5 {
            let d = conv2d((a[k] - b[k]).square(), headWeights[k])
            perLayer.append(d.mean(dims: [2, 3], keepDims: true))
        }
        return (perLayer.dropFirst().reduce(perLayer[0], +), perLayer)
    }

    /// VisCoIN's lpips_loss: mean over the batch of the distances.
    public func callAsFunction(_ x0: Tensor, _ x1: Tensor) -> Tensor { distance(x0, x1).total.mean() }
}
