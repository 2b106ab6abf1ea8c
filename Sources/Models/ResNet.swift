// The classifier `f`: ResNet in the Hugging Face `microsoft/resnet-50` layout (spec
// resnet.md), with configurable widths and depths, plus VisCoIN's linear head. Returns the
// logits and the five hidden states (stem after max-pool, then each stage). Names follow the
// HF state dict (`resnet.encoder.stages.2.layers.0.shortcut.convolution.weight`); torchvision
// names are mapped by `ResNetNames`.
import Common
import NN
import TensorCore

public struct ResNetConfig: Equatable, Sendable {
    public enum LayerType: String, Sendable { case basic, bottleneck }
    public var embeddingSize = 64
    public var hiddenSizes = [256, 512, 1024, 2048]
    public var depths = [3, 4, 6, 3]
    public var layerType = LayerType.bottleneck
    public var downsampleInFirstStage = false
    public var numChannels = 3

    public init(embeddingSize: Int = 64, hiddenSizes: [Int] = [256, 512, 1024, 2048], depths: [Int] = [3, 4, 6, 3],
                layerType: LayerType = .bottleneck, downsampleInFirstStage: Bool = false) {
        self.embeddingSize = embeddingSize
        self.hiddenSizes = hiddenSizes
        self.depths = depths
        self.layerType = layerType
        self.downsampleInFirstStage = downsampleInFirstStage
    }

    public static let resnet18 = ResNetConfig(hiddenSizes: [64, 128, 256, 512], depths: [2, 2, 2, 2], layerType: .basic)
    public static let resnet34 = ResNetConfig(hiddenSizes: [64, 128, 256, 512], depths: [3, 4, 6, 3], layerType: .basic)
    public static let resnet50 = ResNetConfig()
    public static let resnet101 = ResNetConfig(depths: [3, 4, 23, 3])

    /// Named presets: resnet18, resnet34, resnet50, resnet101, "narrow" (test width), "tiny" (demo).
    public static func named(_ name: String) -> ResNetConfig? { ResNetArchitecture(rawValue: name)?.config }
}

/// The named ResNet presets (`--arch`).
public enum ResNetArchitecture: String, ConfigurationChoice {
    case resnet18, resnet34, resnet50, resnet101, narrow, tiny

    public var config: ResNetConfig {
        switch self {
        case .resnet18: return .resnet18
        case .resnet34: return .resnet34
        case .resnet50: return .resnet50
        case .resnet101: return .resnet101
        case .narrow: return ResNetConfig(embeddingSize: 16, hiddenSizes: [32, 64, 128, 256])
        case .tiny: return ResNetConfig(embeddingSize: 8, hiddenSizes: [16, 32, 64, 128], depths: [1, 1, 1, 1])
        }
    }
}

/// Convolution (no bias) + BatchNorm + optional ReLU: `convolution`, `normalization`.
final class ResNetConvLayer: Module {
    let convolution: Conv2d
    let normalization: BatchNorm2d
    let activation: Bool

    init(_ inChannels: Int, _ outChannels: Int, kernel: Int = 3, stride: Int = 1, activation: Bool = true, generator: RandomGenerator) {
        convolution = Conv2d(inChannels, outChannels, kernel: kernel, stride: stride, padding: kernel / 2, bias: false, generator: generator)
        // HF init: kaiming normal, fan_out, relu gain.
        generator.fillNormal(convolution.weight.data, count: convolution.weight.count,
                             std: (2 / Float(outChannels * kernel * kernel)).squareRoot())
        normalization = BatchNorm2d(outChannels)
        self.activation = activation
        super.init()
        child("convolution", convolution)
        child("normalization", normalization)
    }

    func callAsFunction(_ x: Tensor) -> Tensor { normalization(convolution(x), relu: activation) }
}

/// 1x1 projection shortcut: `convolution`, `normalization`.
final class ResNetShortCut: Module {
    let convolution: Conv2d
    let normalization: BatchNorm2d

    init(_ inChannels: Int, _ outChannels: Int, stride: Int, generator: RandomGenerator) {
        convolution = Conv2d(inChannels, outChannels, kernel: 1, stride: stride, bias: false, generator: generator)
        generator.fillNormal(convolution.weight.data, count: convolution.weight.count, std: (2 / Float(outChannels)).squareRoot())
        normalization = BatchNorm2d(outChannels)
        super.init()
        child("convolution", convolution)
        child("normalization", normalization)
    }

    func callAsFunction(_ x: Tensor) -> Tensor { normalization(convolution(x)) }
}

/// A residual block: `shortcut` (when needed) and `layer.{0,1[,2]}`; relu(layer(x) + shortcut(x)).
final class ResNetResidualLayer: Module {
    let shortcut: ResNetShortCut?
    let layers: ModuleList<ResNetConvLayer>

    init(_ inChannels: Int, _ outChannels: Int, stride: Int, type: ResNetConfig.LayerType, generator: RandomGenerator) {
        let needsShortcut = inChannels != outChannels || stride != 1
        shortcut = needsShortcut ? ResNetShortCut(inChannels, outChannels, stride: stride, generator: generator) : nil
        switch type {
        case .bottleneck:
            let reduced = outChannels / 4
            layers = ModuleList([
                ResNetConvLayer(inChannels, reduced, kernel: 1, generator: generator),
                ResNetConvLayer(reduced, reduced, stride: stride, generator: generator),
                ResNetConvLayer(reduced, outChannels, kernel: 1, activation: false, generator: generator),
            ])
        case .basic:
            layers = ModuleList([
                ResNetConvLayer(inChannels, outChannels, stride: stride, generator: generator),
                ResNetConvLayer(outChannels, outChannels, activation: false, generator: generator),
            ])
        }
        super.init()
        if let shortcut { child("shortcut", shortcut) }
        child("layer", layers)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        var h = x
        for l in layers.items { h = l(h) }
        return addRelu(h, shortcut.map { $0(x) } ?? x)
    }
}

/// The stem: `embedder` (7x7/2 conv + BN + ReLU) then a 3x3/2 max-pool.
final class ResNetEmbeddings: Module {
    let embedder: ResNetConvLayer

    init(_ config: ResNetConfig, generator: RandomGenerator) {
        embedder = ResNetConvLayer(config.numChannels, config.embeddingSize, kernel: 7, stride: 2, generator: generator)
        super.init()
        child("embedder", embedder)
    }

    func callAsFunction(_ x: Tensor) -> Tensor { embedder(x).maxPool2d(kernel: 3, stride: 2, padding: 1) }
}

/// Stages of residual layers: `stages.{s}.layers.{l}`.
final class ResNetEncoder: Module {
    final class Stage: Module {
        let layers: ModuleList<ResNetResidualLayer>
        init(_ inChannels: Int, _ outChannels: Int, stride: Int, depth: Int, type: ResNetConfig.LayerType, generator: RandomGenerator) {
            var list: [ResNetResidualLayer] = [ResNetResidualLayer(inChannels, outChannels, stride: stride, type: type, generator: generator)]
            for _ in 1..<max(depth, 1) { list.append(ResNetResidualLayer(outChannels, outChannels, stride: 1, type: type, generator: generator)) }
            layers = ModuleList(list)
            super.init()
            child("layers", layers)
        }
    }

    let stages: ModuleList<Stage>

    init(_ config: ResNetConfig, generator: RandomGenerator) {
        var list: [Stage] = []
        var inChannels = config.embeddingSize
        for (s, out) in config.hiddenSizes.enumerated() {
            let stride = s == 0 ? (config.downsampleInFirstStage ? 2 : 1) : 2
            list.append(Stage(inChannels, out, stride: stride, depth: config.depths[s], type: config.layerType, generator: generator))
            inChannels = out
        }
        stages = ModuleList(list)
        super.init()
        child("stages", stages)
    }
}

/// The backbone (HF ResNetModel): `embedder`, `encoder`; pooler = global average pooling.
public final class ResNetModel: Module {
    public let config: ResNetConfig
    let embedder: ResNetEmbeddings
    let encoder: ResNetEncoder

    public init(_ config: ResNetConfig, generator: RandomGenerator) {
        self.config = config
        embedder = ResNetEmbeddings(config, generator: generator)
        encoder = ResNetEncoder(config, generator: generator)
        super.init()
        child("embedder", embedder)
        child("encoder", encoder)
    }

    /// Returns the pooled features [N, C, 1, 1] and the five hidden states. `tap(i, h)` may
    /// replace hidden state `i` before the next stage reads it (Grad-CAM makes it a leaf).
    public func callAsFunction(_ x: Tensor, tap: ((Int, Tensor) -> Tensor)? = nil) -> (pooled: Tensor, hiddenStates: [Tensor]) {
        var h = embedder(x)
        if let tap { h = tap(0, h) }
        var hidden = [h]
        for (s, stage) in encoder.stages.items.enumerated() {
            for layer in stage.layers.items { h = layer(h) }
            if let tap { h = tap(s + 1, h) }
            hidden.append(h)
        }
        return (h.adaptiveAvgPool2d(1), hidden)
    }
}

/// VisCoIN's classifier: `resnet` backbone + `linear` head.
public final class Classifier: Module {
    public let resnet: ResNetModel
    public let linear: Linear
    public let classes: Int

    public init(config: ResNetConfig = .resnet50, classes: Int, generator: RandomGenerator) {
        resnet = ResNetModel(config, generator: generator)
        let features = config.hiddenSizes.last!
        linear = Linear(features, classes, generator: generator)
        // VisCoIN head: Kaiming-normal weight (fan_in, relu gain); PyTorch-default bias.
        generator.fillNormal(linear.weight.data, count: linear.weight.count, std: (2 / Float(features)).squareRoot())
        self.classes = classes
        super.init()
        child("resnet", resnet)
        child("linear", linear)
    }

    /// Logits [N, classes] and the five hidden states (`tap` as in `ResNetModel`).
    public func callAsFunction(_ x: Tensor, tap: ((Int, Tensor) -> Tensor)? = nil) -> (logits: Tensor, hiddenStates: [Tensor]) {
        let (pooled, hidden) = resnet(x, tap: tap)
        return (linear(pooled.flattened(from: 1)), hidden)
    }

    /// Logits and the pooled features [N, C, 1, 1].
    public func logitsAndPooled(_ x: Tensor) -> (logits: Tensor, pooled: Tensor, hiddenStates: [Tensor]) {
        let (pooled, hidden) = resnet(x)
        return (linear(pooled.flattened(from: 1)), pooled, hidden)
    }
}

/// Key mappings between our (HF) names and torchvision's `resnet*` names.
public enum ResNetNames {
    /// HF key relative to the classifier (`resnet.…`, `linear.…`) -> torchvision key.
    public static func torchvision(fromClassifierKey key: String) -> String? {
        if key.hasPrefix("linear.") { return "fc." + key.dropFirst("linear.".count) }
        guard key.hasPrefix("resnet.") else { return nil }
        let parts = key.dropFirst("resnet.".count).split(separator: ".").map(String.init)
        // embedder.embedder.{convolution,normalization}.X
        if parts.count == 4, parts[0] == "embedder", parts[1] == "embedder" {
            return (parts[2] == "convolution" ? "conv1." : "bn1.") + parts[3]
        }
        // encoder.stages.S.layers.L.{layer.J|shortcut}.{convolution,normalization}.X
        guard parts.count >= 8, parts[0] == "encoder", parts[1] == "stages", parts[3] == "layers",
              let s = Int(parts[2]), let l = Int(parts[4]) else { return nil }
        let block = "layer\(s + 1).\(l)."
        if parts[5] == "layer", parts.count == 9, let j = Int(parts[6]) {
            return block + (parts[7] == "convolution" ? "conv\(j + 1)." : "bn\(j + 1).") + parts[8]
        }
        if parts[5] == "shortcut", parts.count == 8 {
            return block + (parts[6] == "convolution" ? "downsample.0." : "downsample.1.") + parts[7]
        }
        return nil
    }

    /// torchvision key -> HF classifier key.
    public static func classifierKey(fromTorchvision key: String) -> String? {
        let parts = key.split(separator: ".").map(String.init)
        if parts.first == "fc", parts.count == 2 { return "linear." + parts[1] }
        if parts.count == 2, parts[0] == "conv1" { return "resnet.embedder.embedder.convolution." + parts[1] }
        if parts.count == 2, parts[0] == "bn1" { return "resnet.embedder.embedder.normalization." + parts[1] }
        guard parts.count >= 4, parts[0].hasPrefix("layer"), let s = Int(parts[0].dropFirst(5)), let l = Int(parts[1]) else { return nil }
        let block = "resnet.encoder.stages.\(s - 1).layers.\(l)."
        if parts[2] == "downsample", parts.count == 5 {
            return block + (parts[3] == "0" ? "shortcut.convolution." : "shortcut.normalization.") + parts[4]
        }
        if parts.count == 4, parts[2].hasPrefix("conv"), let j = Int(parts[2].dropFirst(4)) {
            return block + "layer.\(j - 1).convolution." + parts[3]
        }
        if parts.count == 4, parts[2].hasPrefix("bn"), let j = Int(parts[2].dropFirst(2)) {
            return block + "layer.\(j - 1).normalization." + parts[3]
        }
        return nil
    }
}
