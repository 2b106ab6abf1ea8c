// StyleGAN2-ADA generator and discriminator (spec stylegan2.md): mapping network with w_avg
// tracking and truncation, skip-architecture synthesis network, resnet discriminator with the
// minibatch-std epilogue, and the configuration presets (`auto`, `paper256`, `tiny`).
import NN
import TensorCore

public struct StyleGAN2Config: Equatable, Sendable {
    public var zDim = 512
    public var wDim = 512
    public var resolution = 256
    public var imageChannels = 3
    public var mappingLayers = 2
    public var channelBase = 16384
    public var channelMax = 512
    public var convClamp: Float? = 256
    public var mbstdGroupSize: Int? = 4
    public var mbstdChannels = 1
    public var mappingLRMultiplier: Float = 0.01
    public var wAvgBeta: Float = 0.995

    public init() {}

    /// Channels of a block at resolution `res`.
    public func channels(_ res: Int) -> Int { Swift.min(channelBase / res, channelMax) }

    /// num_ws of the skip synthesis network: 2 log2(R) - 2.
    public var numWs: Int {
        var n = 0, r = 4
        while r <= resolution {
            n += r == 4 ? 1 : 2
            r *= 2
        }
        return n + 1
    }

    /// train.py `--cfg=auto` for one GPU at this resolution (spec training.md 1).
    public static func auto(resolution: Int = 256) -> StyleGAN2Config {
        var c = StyleGAN2Config()
        c.resolution = resolution
        c.channelBase = resolution >= 512 ? 32768 : 16384
        c.mappingLayers = 2
        let batch = Swift.max(Swift.min(4096 / resolution, 32), 1)
        c.mbstdGroupSize = Swift.min(batch, 4)
        return c
    }

    /// train.py `--cfg=paper256`: 8-layer mapping, minibatch-std group 8.
    public static var paper256: StyleGAN2Config {
        var c = auto(resolution: 256)
        c.mappingLayers = 8
        c.mbstdGroupSize = 8
        return c
    }

    /// The tiny 32x32 configuration used by the tests and the demo.
    public static var tiny: StyleGAN2Config {
        var c = StyleGAN2Config()
        c.zDim = 64
        c.wDim = 64
        c.resolution = 32
        c.channelBase = 1024
        c.channelMax = 64
        return c
    }

    public static func named(_ name: String, resolution: Int = 256) -> StyleGAN2Config? {
        switch name {
        case "auto": return .auto(resolution: resolution)
        case "paper256": return .paper256
        case "tiny": return .tiny
        default: return nil
        }
    }
}

/// Mapping network: `fc0 .. fc{L-1}` (lrelu, lr multiplier 0.01) and the `w_avg` buffer.
public final class MappingNetwork: Module {
    public let zDim: Int
    public let wDim: Int
    public let numWs: Int
    public let wAvgBeta: Float
    public let wAvg: Tensor
    public let layers: [FullyConnectedLayer]

    public init(zDim: Int, wDim: Int, numWs: Int, numLayers: Int, lrMultiplier: Float = 0.01, wAvgBeta: Float = 0.995,
                generator: RandomGenerator) {
        self.zDim = zDim
        self.wDim = wDim
        self.numWs = numWs
        self.wAvgBeta = wAvgBeta
        wAvg = Tensor.zeros([wDim])
        let features = [zDim] + [Int](repeating: wDim, count: numLayers)
        layers = (0..<numLayers).map { i in
            FullyConnectedLayer(features[i], features[i + 1], activation: .lrelu, lrMultiplier: lrMultiplier, generator: generator)
        }
        super.init()
        buffer("w_avg", wAvg)
        for (i, l) in layers.enumerated() { child("fc\(i)", l) }
    }

    /// ws [N, numWs, wDim]. In training mode (and unless skipped) updates w_avg before truncation.
    public func callAsFunction(_ z: Tensor, truncationPsi: Float = 1, truncationCutoff: Int? = nil,
                               skipWAvgUpdate: Bool = false) -> Tensor {
        var x = normalize2ndMoment(z)
        for l in layers { x = l(x) }
        if isTraining && !skipWAvgUpdate {
            let batchMean = noGrad { x.detach().mean(dims: [0]) }
            wAvg.assign(noGrad { lerp(batchMean, wAvg, wAvgBeta) })
        }
        var ws = x.unsqueezed(1).broadcastTo([x.shape[0], numWs, wDim])
        if truncationPsi != 1 {
            let avg = wAvg.detach().reshaped([1, 1, wDim])
            let cutoff = truncationCutoff ?? numWs
            let truncated = lerp(avg, ws, truncationPsi)
            if cutoff >= numWs {
                ws = truncated
            } else {
                ws = concatenate([truncated.slice(dim: 1, start: 0, end: cutoff), ws.slice(dim: 1, start: cutoff, end: numWs)], dim: 1)
            }
        }
        return ws
    }
}

/// One synthesis block (skip architecture): `const` (first block) or `conv0` (upsampling),
/// `conv1`, `torgb`, and the image upsampling filter.
public final class SynthesisBlock: Module {
    public let inChannels: Int
    public let resolution: Int
    public let const_: Tensor?
    public let conv0: SynthesisLayer?
    public let conv1: SynthesisLayer
    public let torgb: ToRGBLayer
    let filter = FIRFilter.setup([1, 3, 3, 1])

    public var numConv: Int { conv0 == nil ? 1 : 2 }
    public let numToRGB = 1

    public init(_ inChannels: Int, _ outChannels: Int, wDim: Int, resolution: Int, imageChannels: Int, convClamp: Float?,
                generator: RandomGenerator) {
        self.inChannels = inChannels
        self.resolution = resolution
        const_ = inChannels == 0 ? generator.normal([outChannels, resolution, resolution]) : nil
        conv0 = inChannels == 0 ? nil : SynthesisLayer(inChannels, outChannels, wDim: wDim, resolution: resolution, up: 2,
                                                      convClamp: convClamp, generator: generator)
        conv1 = SynthesisLayer(outChannels, outChannels, wDim: wDim, resolution: resolution, convClamp: convClamp, generator: generator)
        torgb = ToRGBLayer(outChannels, imageChannels, wDim: wDim, convClamp: convClamp, generator: generator)
        super.init()
        if let c = const_ { parameter("const", c) }
        buffer("resample_filter", resampleFilterBuffer())
        if let c0 = conv0 { child("conv0", c0) }
        child("conv1", conv1)
        child("torgb", torgb)
    }

    /// ws: [N, numConv + 1, wDim]. Returns the features and the running image.
    /// `fusedModconv` nil: fused in evaluation mode (as the reference); in training mode each
    /// layer picks the faster of the two equivalent executions (see SynthesisLayer).
    public func callAsFunction(_ x: Tensor?, _ img: Tensor?, _ ws: Tensor, noise: NoiseMode, fusedModconv: Bool? = nil) -> (Tensor, Tensor) {
        let fused: Bool? = fusedModconv ?? (isTraining ? nil : true)
        var index = 0
        func nextW() -> Tensor {
            defer { index += 1 }
            return ws.slice(dim: 1, start: index, end: index + 1).squeezed(1)
        }
        var h: Tensor
        if let c = const_ {
            h = c.unsqueezed(0).broadcastTo([ws.shape[0]] + c.shape)
            h = conv1(h, nextW(), noise: noise, fusedModconv: fused)
        } else {
            h = conv0!(x!, nextW(), noise: noise, fusedModconv: fused)
            h = conv1(h, nextW(), noise: noise, fusedModconv: fused)
        }
        let y = torgb(h, nextW(), fusedModconv: fused)
        let image = img.map { upsample2d($0, filter) + y } ?? y
        return (h, image)
    }
}

/// Synthesis network: blocks `b4 .. b{R}`; block k reads ws[idx ..< idx + numConv + 1] and
/// advances idx by numConv (each torgb shares its w with the next block's first conv).
public final class SynthesisNetwork: Module {
    public let blocks: [SynthesisBlock]
    public let numWs: Int
    public let resolution: Int
    public let config: StyleGAN2Config

    public init(_ config: StyleGAN2Config, generator: RandomGenerator) {
        self.config = config
        var list: [SynthesisBlock] = []
        var res = 4
        while res <= config.resolution {
            let inChannels = res == 4 ? 0 : config.channels(res / 2)
            list.append(SynthesisBlock(inChannels, config.channels(res), wDim: config.wDim, resolution: res,
                                       imageChannels: config.imageChannels, convClamp: config.convClamp, generator: generator))
            res *= 2
        }
        blocks = list
        numWs = list.reduce(0) { $0 + $1.numConv } + 1
        resolution = config.resolution
        super.init()
        for b in list { child("b\(b.resolution)", b) }
    }

    /// ws [N, numWs, wDim] -> image [N, 3, R, R].
    public func callAsFunction(_ ws: Tensor, noise: NoiseMode, fusedModconv: Bool? = nil) -> Tensor {
        guard ws.rank == 3, ws.shape[1] == numWs else { shapeFailure("synthesis expects ws [N, \(numWs), w_dim], got \(ws.shape)") }
        return ConvBackend.network(.onednn) {  // see ConvBackend: every StyleGAN2 case passes on it
            var x: Tensor? = nil, img: Tensor? = nil
            var index = 0
            for b in blocks {
                let w = ws.slice(dim: 1, start: index, end: index + b.numConv + b.numToRGB)
                (x, img) = b(x, img, w, noise: noise, fusedModconv: fusedModconv)
                index += b.numConv
            }
            return img!
        }
    }
}

/// Generator: `synthesis` then `mapping` (state-dict order of the reference).
public final class Generator: Module {
    public let config: StyleGAN2Config
    public let synthesis: SynthesisNetwork
    public let mapping: MappingNetwork

    public init(_ config: StyleGAN2Config, generator: RandomGenerator) {
        self.config = config
        synthesis = SynthesisNetwork(config, generator: generator)
        mapping = MappingNetwork(zDim: config.zDim, wDim: config.wDim, numWs: synthesis.numWs, numLayers: config.mappingLayers,
                                 lrMultiplier: config.mappingLRMultiplier, wAvgBeta: config.wAvgBeta, generator: generator)
        super.init()
        child("synthesis", synthesis)
        child("mapping", mapping)
    }

    public func callAsFunction(_ z: Tensor, truncationPsi: Float = 1, truncationCutoff: Int? = nil, noise: NoiseMode) -> (image: Tensor, ws: Tensor) {
        let ws = mapping(z, truncationPsi: truncationPsi, truncationCutoff: truncationCutoff)
        return (synthesis(ws, noise: noise), ws)
    }
}

/// Resnet discriminator block: `fromrgb` (first block), `conv0`, `conv1` (down 2), `skip`.
public final class DiscriminatorBlock: Module {
    public let fromrgb: Conv2dLayer?
    public let conv0: Conv2dLayer
    public let conv1: Conv2dLayer
    public let skip: Conv2dLayer
    public let resolution: Int

    /// `trainable(k)` tells whether the block's k-th layer (fromrgb, conv0, conv1, skip in that
    /// order, counted over the whole network) trains; Freeze-D stores the first ones as buffers.
    public init(_ inChannels: Int, tmpChannels: Int, outChannels: Int, resolution: Int, imageChannels: Int, convClamp: Float?,
                trainable: () -> Bool = { true }, generator: RandomGenerator) {
        self.resolution = resolution
        fromrgb = inChannels == 0 ? Conv2dLayer(imageChannels, tmpChannels, kernel: 1, activation: .lrelu, convClamp: convClamp,
                                                trainable: trainable(), generator: generator) : nil
        conv0 = Conv2dLayer(tmpChannels, tmpChannels, kernel: 3, activation: .lrelu, convClamp: convClamp, trainable: trainable(), generator: generator)
        conv1 = Conv2dLayer(tmpChannels, outChannels, kernel: 3, activation: .lrelu, down: 2, convClamp: convClamp, trainable: trainable(),
                            generator: generator)
        skip = Conv2dLayer(tmpChannels, outChannels, kernel: 1, bias: false, down: 2, trainable: trainable(), generator: generator)
        super.init()
        buffer("resample_filter", resampleFilterBuffer())
        if let f = fromrgb { child("fromrgb", f) }
        child("conv0", conv0)
        child("conv1", conv1)
        child("skip", skip)
    }

    public func callAsFunction(_ x: Tensor?, image: Tensor?) -> Tensor {
        var h = x
        if let fromrgb { h = fromrgb(image!) }
        let gain = Float(0.5.squareRoot())
        let y = skip(h!, gain: gain)
        let t = conv1(conv0(h!), gain: gain)
        return y + t
    }
}

/// Epilogue at 4x4: minibatch-std, `conv`, `fc`, `out`.
public final class DiscriminatorEpilogue: Module {
    public let mbstd: MinibatchStdLayer
    public let conv: Conv2dLayer
    public let fc: FullyConnectedLayer
    public let out: FullyConnectedLayer

    public init(_ inChannels: Int, resolution: Int = 4, mbstdGroupSize: Int?, mbstdChannels: Int = 1, convClamp: Float?,
                generator: RandomGenerator) {
        mbstd = MinibatchStdLayer(groupSize: mbstdGroupSize, numChannels: mbstdChannels)
        conv = Conv2dLayer(inChannels + mbstdChannels, inChannels, kernel: 3, activation: .lrelu, convClamp: convClamp, generator: generator)
        fc = FullyConnectedLayer(inChannels * resolution * resolution, inChannels, activation: .lrelu, generator: generator)
        out = FullyConnectedLayer(inChannels, 1, generator: generator)
        super.init()
        child("conv", conv)
        child("fc", fc)
        child("out", out)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        var h = mbstd(x)
        h = conv(h)
        h = fc(h.flattened(from: 1))
        return out(h)
    }
}

/// Discriminator (resnet architecture): blocks `b{R} .. b8`, epilogue `b4`. Output [N, 1] logits.
public final class Discriminator: Module {
    public let config: StyleGAN2Config
    public let blocks: [DiscriminatorBlock]
    public let epilogue: DiscriminatorEpilogue

    /// `freezeLayers`: Freeze-D (`--freezed`), the first layers from the input side do not train.
    public init(_ config: StyleGAN2Config, freezeLayers: Int = 0, generator: RandomGenerator) {
        self.config = config
        var list: [DiscriminatorBlock] = []
        var res = config.resolution
        var layerIndex = 0
        func trainable() -> Bool {
            defer { layerIndex += 1 }
            return layerIndex >= freezeLayers
        }
        while res >= 8 {
            let inChannels = res < config.resolution ? config.channels(res) : 0
            list.append(DiscriminatorBlock(inChannels, tmpChannels: config.channels(res), outChannels: config.channels(res / 2),
                                           resolution: res, imageChannels: config.imageChannels, convClamp: config.convClamp,
                                           trainable: trainable, generator: generator))
            res /= 2
        }
        blocks = list
        epilogue = DiscriminatorEpilogue(config.channels(4), mbstdGroupSize: config.mbstdGroupSize, mbstdChannels: config.mbstdChannels,
                                         convClamp: config.convClamp, generator: generator)
        super.init()
        for b in list { child("b\(b.resolution)", b) }
        child("b4", epilogue)
    }

    public func callAsFunction(_ image: Tensor) -> Tensor {
        ConvBackend.network(.onednn) {  // see ConvBackend: every StyleGAN2 case passes on it
            var x: Tensor? = nil
            for b in blocks { x = b(x, image: image) }
            return epilogue(x!)
        }
    }
}
