// Inception-v3 FID feature extractor (spec metrics.md section 1) in the pytorch-fid /
// torchvision naming (`Conv2d_1a_3x3.conv.weight`, `Mixed_5b.branch5x5_2.bn.running_var`, ...),
// with the mapping from the NVIDIA TorchScript names, and both input conventions: pytorch-fid
// ([0, 1], bilinear resize, 2x - 1) and stylegan2-ada's ([0, 255], TF-style resize by
// grid_sample with border padding, (x - 128) / 128).
import NN
import TensorCore

/// conv (no bias) + BatchNorm(eps 0.001, eval) + ReLU.
final class BasicConv2d: Module {
    let conv: Conv2d
    let bn: BatchNorm2d

    init(_ inChannels: Int, _ outChannels: Int, kernel: (Int, Int), stride: Int = 1, padding: (Int, Int) = (0, 0), generator: RandomGenerator) {
        conv = Conv2d(inChannels, outChannels, kernel: kernel, stride: (stride, stride), padding: padding, bias: false, generator: generator)
        bn = BatchNorm2d(outChannels, eps: 0.001)
        super.init()
        child("conv", conv)
        child("bn", bn)
    }

    convenience init(_ i: Int, _ o: Int, _ k: Int, stride: Int = 1, padding: Int = 0, generator: RandomGenerator) {
        self.init(i, o, kernel: (k, k), stride: stride, padding: (padding, padding), generator: generator)
    }

    func callAsFunction(_ x: Tensor) -> Tensor { bn(conv(x), relu: true) }
}

/// An Inception block: named branches, evaluated in registration order and concatenated.
class InceptionBlock: Module {
    var branches: [String: BasicConv2d] = [:]

    @discardableResult
    func branch(_ name: String, _ i: Int, _ o: Int, kernel: (Int, Int), stride: Int = 1, padding: (Int, Int) = (0, 0),
                generator: RandomGenerator) -> BasicConv2d {
        let b = BasicConv2d(i, o, kernel: kernel, stride: stride, padding: padding, generator: generator)
        branches[name] = b
        child(name, b)
        return b
    }

    func b(_ name: String) -> BasicConv2d { branches[name]! }
}

/// FIDInceptionA: 1x1, 5x5, double 3x3, average pool (padding excluded) + 1x1.
final class InceptionA: InceptionBlock {
    init(_ inChannels: Int, poolFeatures: Int, generator g: RandomGenerator) {
        super.init()
        branch("branch1x1", inChannels, 64, kernel: (1, 1), generator: g)
        branch("branch5x5_1", inChannels, 48, kernel: (1, 1), generator: g)
        branch("branch5x5_2", 48, 64, kernel: (5, 5), padding: (2, 2), generator: g)
        branch("branch3x3dbl_1", inChannels, 64, kernel: (1, 1), generator: g)
        branch("branch3x3dbl_2", 64, 96, kernel: (3, 3), padding: (1, 1), generator: g)
        branch("branch3x3dbl_3", 96, 96, kernel: (3, 3), padding: (1, 1), generator: g)
        branch("branch_pool", inChannels, poolFeatures, kernel: (1, 1), generator: g)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let a = b("branch1x1")(x)
        let c = b("branch5x5_2")(b("branch5x5_1")(x))
        let d = b("branch3x3dbl_3")(b("branch3x3dbl_2")(b("branch3x3dbl_1")(x)))
        let p = b("branch_pool")(x.avgPool2d(kernel: 3, stride: 1, padding: 1, countIncludePad: false))
        return concatenate([a, c, d, p], dim: 1)
    }
}

/// InceptionB (torchvision's): strided 3x3, strided double 3x3, max pool.
final class InceptionB: InceptionBlock {
    init(_ inChannels: Int, generator g: RandomGenerator) {
        super.init()
        branch("branch3x3", inChannels, 384, kernel: (3, 3), stride: 2, generator: g)
        branch("branch3x3dbl_1", inChannels, 64, kernel: (1, 1), generator: g)
        branch("branch3x3dbl_2", 64, 96, kernel: (3, 3), padding: (1, 1), generator: g)
        branch("branch3x3dbl_3", 96, 96, kernel: (3, 3), stride: 2, generator: g)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let a = b("branch3x3")(x)
        let d = b("branch3x3dbl_3")(b("branch3x3dbl_2")(b("branch3x3dbl_1")(x)))
        return concatenate([a, d, x.maxPool2d(kernel: 3, stride: 2)], dim: 1)
    }
}

/// FIDInceptionC: factorised 7x7 branches, average pool (padding excluded) + 1x1.
final class InceptionC: InceptionBlock {
    init(_ inChannels: Int, c7: Int, generator g: RandomGenerator) {
        super.init()
        branch("branch1x1", inChannels, 192, kernel: (1, 1), generator: g)
        branch("branch7x7_1", inChannels, c7, kernel: (1, 1), generator: g)
        branch("branch7x7_2", c7, c7, kernel: (1, 7), padding: (0, 3), generator: g)
        branch("branch7x7_3", c7, 192, kernel: (7, 1), padding: (3, 0), generator: g)
        branch("branch7x7dbl_1", inChannels, c7, kernel: (1, 1), generator: g)
        branch("branch7x7dbl_2", c7, c7, kernel: (7, 1), padding: (3, 0), generator: g)
        branch("branch7x7dbl_3", c7, c7, kernel: (1, 7), padding: (0, 3), generator: g)
        branch("branch7x7dbl_4", c7, c7, kernel: (7, 1), padding: (3, 0), generator: g)
        branch("branch7x7dbl_5", c7, 192, kernel: (1, 7), padding: (0, 3), generator: g)
        branch("branch_pool", inChannels, 192, kernel: (1, 1), generator: g)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let a = b("branch1x1")(x)
        let c = b("branch7x7_3")(b("branch7x7_2")(b("branch7x7_1")(x)))
        var d = b("branch7x7dbl_1")(x)
        for k in 2...5 { d = b("branch7x7dbl_\(k)")(d) }
        let p = b("branch_pool")(x.avgPool2d(kernel: 3, stride: 1, padding: 1, countIncludePad: false))
        return concatenate([a, c, d, p], dim: 1)
    }
}

/// InceptionD (torchvision's): strided 3x3 and 7x7x3 branches, max pool.
final class InceptionD: InceptionBlock {
    init(_ inChannels: Int, generator g: RandomGenerator) {
        super.init()
        branch("branch3x3_1", inChannels, 192, kernel: (1, 1), generator: g)
        branch("branch3x3_2", 192, 320, kernel: (3, 3), stride: 2, generator: g)
        branch("branch7x7x3_1", inChannels, 192, kernel: (1, 1), generator: g)
        branch("branch7x7x3_2", 192, 192, kernel: (1, 7), padding: (0, 3), generator: g)
        branch("branch7x7x3_3", 192, 192, kernel: (7, 1), padding: (3, 0), generator: g)
        branch("branch7x7x3_4", 192, 192, kernel: (3, 3), stride: 2, generator: g)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let a = b("branch3x3_2")(b("branch3x3_1")(x))
        var d = b("branch7x7x3_1")(x)
        for k in 2...4 { d = b("branch7x7x3_\(k)")(d) }
        return concatenate([a, d, x.maxPool2d(kernel: 3, stride: 2)], dim: 1)
    }
}

/// FIDInceptionE_1 (average pool, padding excluded) or FIDInceptionE_2 (max pool).
final class InceptionE: InceptionBlock {
    let maxPool: Bool

    init(_ inChannels: Int, maxPool: Bool, generator g: RandomGenerator) {
        self.maxPool = maxPool
        super.init()
        branch("branch1x1", inChannels, 320, kernel: (1, 1), generator: g)
        branch("branch3x3_1", inChannels, 384, kernel: (1, 1), generator: g)
        branch("branch3x3_2a", 384, 384, kernel: (1, 3), padding: (0, 1), generator: g)
        branch("branch3x3_2b", 384, 384, kernel: (3, 1), padding: (1, 0), generator: g)
        branch("branch3x3dbl_1", inChannels, 448, kernel: (1, 1), generator: g)
        branch("branch3x3dbl_2", 448, 384, kernel: (3, 3), padding: (1, 1), generator: g)
        branch("branch3x3dbl_3a", 384, 384, kernel: (1, 3), padding: (0, 1), generator: g)
        branch("branch3x3dbl_3b", 384, 384, kernel: (3, 1), padding: (1, 0), generator: g)
        branch("branch_pool", inChannels, 192, kernel: (1, 1), generator: g)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let a = b("branch1x1")(x)
        let t = b("branch3x3_1")(x)
        let c = concatenate([b("branch3x3_2a")(t), b("branch3x3_2b")(t)], dim: 1)
        let u = b("branch3x3dbl_2")(b("branch3x3dbl_1")(x))
        let d = concatenate([b("branch3x3dbl_3a")(u), b("branch3x3dbl_3b")(u)], dim: 1)
        let pooled = maxPool ? x.maxPool2d(kernel: 3, stride: 1, padding: 1) : x.avgPool2d(kernel: 3, stride: 1, padding: 1, countIncludePad: false)
        return concatenate([a, c, d, b("branch_pool")(pooled)], dim: 1)
    }
}

/// The FID Inception-v3 (pytorch-fid `fid_inception_v3()`, 1008-class `fc` kept for the names).
public final class InceptionV3: Module {
    let conv1a, conv2a, conv2b, conv3b, conv4a: BasicConv2d
    let mixed5b, mixed5c, mixed5d: InceptionA
    let mixed6a: InceptionB
    let mixed6b, mixed6c, mixed6d, mixed6e: InceptionC
    let mixed7a: InceptionD
    let mixed7b, mixed7c: InceptionE
    let fc: Linear

    public init(generator g: RandomGenerator) {
        conv1a = BasicConv2d(3, 32, 3, stride: 2, generator: g)
        conv2a = BasicConv2d(32, 32, 3, generator: g)
        conv2b = BasicConv2d(32, 64, 3, padding: 1, generator: g)
        conv3b = BasicConv2d(64, 80, 1, generator: g)
        conv4a = BasicConv2d(80, 192, 3, generator: g)
        mixed5b = InceptionA(192, poolFeatures: 32, generator: g)
        mixed5c = InceptionA(256, poolFeatures: 64, generator: g)
        mixed5d = InceptionA(288, poolFeatures: 64, generator: g)
        mixed6a = InceptionB(288, generator: g)
        mixed6b = InceptionC(768, c7: 128, generator: g)
        mixed6c = InceptionC(768, c7: 160, generator: g)
        mixed6d = InceptionC(768, c7: 160, generator: g)
        mixed6e = InceptionC(768, c7: 192, generator: g)
        mixed7a = InceptionD(768, generator: g)
        mixed7b = InceptionE(1280, maxPool: false, generator: g)
        mixed7c = InceptionE(2048, maxPool: true, generator: g)
        fc = Linear(2048, 1008, generator: g)
        super.init()
        child("Conv2d_1a_3x3", conv1a)
        child("Conv2d_2a_3x3", conv2a)
        child("Conv2d_2b_3x3", conv2b)
        child("Conv2d_3b_1x1", conv3b)
        child("Conv2d_4a_3x3", conv4a)
        for (n, m) in [("Mixed_5b", mixed5b as Module), ("Mixed_5c", mixed5c), ("Mixed_5d", mixed5d), ("Mixed_6a", mixed6a),
                       ("Mixed_6b", mixed6b), ("Mixed_6c", mixed6c), ("Mixed_6d", mixed6d), ("Mixed_6e", mixed6e),
                       ("Mixed_7a", mixed7a), ("Mixed_7b", mixed7b), ("Mixed_7c", mixed7c)] {
            child(n, m)
        }
        child("fc", fc)
        eval()
    }

    /// The four pytorch-fid blocks' outputs for an already normalised input.
    public func blocks(_ x: Tensor) -> [Tensor] {
        var h = conv2b(conv2a(conv1a(x))).maxPool2d(kernel: 3, stride: 2)
        let b0 = h
        h = conv4a(conv3b(h)).maxPool2d(kernel: 3, stride: 2)
        let b1 = h
        h = mixed5d(mixed5c(mixed5b(h)))
        h = mixed6e(mixed6d(mixed6c(mixed6b(mixed6a(h)))))
        let b2 = h
        h = mixed7c(mixed7b(mixed7a(h)))
        return [b0, b1, b2, h.adaptiveAvgPool2d(1)]
    }

    /// Runs one of the stem / block pieces (for block-level tests).
    public func stemBlock0(_ x: Tensor) -> Tensor { conv2b(conv2a(conv1a(x))).maxPool2d(kernel: 3, stride: 2) }
    public func stemBlock1(_ x: Tensor) -> Tensor { conv4a(conv3b(x)).maxPool2d(kernel: 3, stride: 2) }
    public func mixed(_ name: String, _ x: Tensor) -> Tensor {
        switch name {
        case "Mixed_5b": return mixed5b(x)
        case "Mixed_5c": return mixed5c(x)
        case "Mixed_5d": return mixed5d(x)
        case "Mixed_6a": return mixed6a(x)
        case "Mixed_6b": return mixed6b(x)
        case "Mixed_6c": return mixed6c(x)
        case "Mixed_6d": return mixed6d(x)
        case "Mixed_6e": return mixed6e(x)
        case "Mixed_7a": return mixed7a(x)
        case "Mixed_7b": return mixed7b(x)
        default: return mixed7c(x)
        }
    }

    /// pytorch-fid preprocessing: images in [0, 1]; optional bilinear resize to 299; 2x - 1.
    public func pytorchFIDFeatures(_ x: Tensor, resize: Bool = true) -> Tensor {
        let input = resize && (x.shape[2] != 299 || x.shape[3] != 299) ? x.interpolate(size: (299, 299)) : x
        return blocks(input * 2 - 1)[3].flattened(from: 1)
    }

    /// stylegan2-ada / NVIDIA detector preprocessing: images in [0, 255]; resize to 299 by
    /// grid_sample (bilinear, border, theta = [[1, 0, 1/W - 1/299], [0, 1, 1/H - 1/299]]); (x - 128) / 128.
    public func features(_ x: Tensor) -> Tensor {
        let n = x.shape[0], h = Float(x.shape[2]), w = Float(x.shape[3])
        var input = x
        if x.shape[2] != 299 || x.shape[3] != 299 {
            var theta: [Float] = []
            for _ in 0..<n { theta += [1, 0, 1 / w - 1 / 299, 0, 1, 1 / h - 1 / 299] }
            let grid = affineGrid(Tensor(theta, shape: [n, 2, 3]), height: 299, width: 299)
            input = gridSample(x, grid, padding: .border)
        }
        return blocks((input - 128) / 128)[3].flattened(from: 1)
    }
}

/// Names of the NVIDIA TorchScript detector (`inception-2015-12-05.pt`) mapped to ours.
public enum InceptionNames {
    static let top: [String: String] = [
        "conv": "Conv2d_1a_3x3", "conv_1": "Conv2d_2a_3x3", "conv_2": "Conv2d_2b_3x3", "conv_3": "Conv2d_3b_1x1",
        "conv_4": "Conv2d_4a_3x3", "mixed": "Mixed_5b", "mixed_1": "Mixed_5c", "mixed_2": "Mixed_5d", "mixed_3": "Mixed_6a",
        "mixed_4": "Mixed_6b", "mixed_5": "Mixed_6c", "mixed_6": "Mixed_6d", "mixed_7": "Mixed_6e", "mixed_8": "Mixed_7a",
        "mixed_9": "Mixed_7b", "mixed_10": "Mixed_7c",
    ]
    static let blockA = ["conv": "branch1x1", "tower.conv": "branch5x5_1", "tower.conv_1": "branch5x5_2", "tower_1.conv": "branch3x3dbl_1",
                         "tower_1.conv_1": "branch3x3dbl_2", "tower_1.conv_2": "branch3x3dbl_3", "tower_2.conv": "branch_pool"]
    static let blockB = ["conv": "branch3x3", "tower.conv": "branch3x3dbl_1", "tower.conv_1": "branch3x3dbl_2", "tower.conv_2": "branch3x3dbl_3"]
    static let blockC = ["conv": "branch1x1", "tower.conv": "branch7x7_1", "tower.conv_1": "branch7x7_2", "tower.conv_2": "branch7x7_3",
                         "tower_1.conv": "branch7x7dbl_1", "tower_1.conv_1": "branch7x7dbl_2", "tower_1.conv_2": "branch7x7dbl_3",
                         "tower_1.conv_3": "branch7x7dbl_4", "tower_1.conv_4": "branch7x7dbl_5", "tower_2.conv": "branch_pool"]
    static let blockD = ["tower.conv": "branch3x3_1", "tower.conv_1": "branch3x3_2", "tower_1.conv": "branch7x7x3_1",
                         "tower_1.conv_1": "branch7x7x3_2", "tower_1.conv_2": "branch7x7x3_3", "tower_1.conv_3": "branch7x7x3_4"]
    static let blockE = ["conv": "branch1x1", "tower_conv": "branch3x3_1", "tower_mixed_conv": "branch3x3_2a",
                         "tower_mixed_conv_1": "branch3x3_2b", "tower_1_conv": "branch3x3dbl_1", "tower_1_conv_1": "branch3x3dbl_2",
                         "tower_1_mixed_conv": "branch3x3dbl_3a", "tower_1_mixed_conv_1": "branch3x3dbl_3b", "tower_2_conv": "branch_pool"]

    /// pytorch-fid key for an NVIDIA key (`layers.mixed_4.tower_1.conv_2.conv.weight`,
    /// `output.weight`), or nil. The NVIDIA file has no BatchNorm weight (it is 1).
    public static func pytorchFID(fromNVIDIA key: String) -> String? {
        var k = key
        if k.hasPrefix("layers.") { k.removeFirst("layers.".count) }
        if k.hasPrefix("output.") { return "fc." + k.dropFirst("output.".count) }
        let parts = k.split(separator: ".").map(String.init)
        guard let first = parts.first, let mapped = top[first] else { return nil }
        let rest = Array(parts.dropFirst())
        if mapped.hasPrefix("Conv2d") { return ([mapped] + rest).joined(separator: ".") }
        // Inside a block: find the longest branch prefix that maps.
        let table: [String: String]
        switch mapped {
        case "Mixed_5b", "Mixed_5c", "Mixed_5d": table = blockA
        case "Mixed_6a": table = blockB
        case "Mixed_7a": table = blockD
        case "Mixed_7b", "Mixed_7c": table = blockE
        default: table = blockC
        }
        for length in stride(from: min(2, rest.count - 2), through: 1, by: -1) where length >= 1 {
            let prefix = rest[0..<length].joined(separator: ".")
            if let branch = table[prefix] { return ([mapped, branch] + rest[length...]).joined(separator: ".") }
        }
        return nil
    }
}
