// Conversion of exported PyTorch state dicts (safetensors) into the project's weight files:
// the key maps of other naming schemes (torchvision, the Hugging Face hub, NVIDIA's TorchScript
// Inception, pytorch-fid's block layout), strict or reporting loads, and the architecture of a
// StyleGAN2 network read off its tensors (z and w dimensions, mapping depth, resolution,
// channel widths, minibatch-std channels), so any network converts without preset flags.
import Common
import NN
import SafeTensors
import TensorCore

/// How the keys of an exported state dict are named.
public enum KeyNaming: String, ConfigurationChoice {
    case native, torchvision
    case hfHub = "hf-hub"
    case hfBackbone = "hf-backbone"
    case nvidia
    case pytorchFIDBlocks = "pytorch-fid-blocks"

    /// Maps an input key (after the prefix) to our state-dict key, or nil to drop it.
    public func map(_ key: String) -> String? {
        switch self {
        case .native: return key
        case .torchvision: return ResNetNames.classifierKey(fromTorchvision: key)
        case .hfHub:
            if key.hasPrefix("classifier.1.") { return "linear." + key.dropFirst("classifier.1.".count) }
            return key.hasPrefix("resnet.") ? key : nil
        case .hfBackbone: return "resnet." + key
        case .nvidia: return InceptionNames.pytorchFID(fromNVIDIA: key)
        case .pytorchFIDBlocks:
            let blocks = [["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"], ["Conv2d_3b_1x1", "Conv2d_4a_3x3"],
                          ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"],
                          ["Mixed_7a", "Mixed_7b", "Mixed_7c"]]
            let parts = key.split(separator: ".", maxSplits: 3).map(String.init)
            guard parts.count == 4, parts[0] == "blocks", let b = Int(parts[1]), let i = Int(parts[2]), b < blocks.count, i < blocks[b].count else {
                return key.hasPrefix("fc.") ? key : nil
            }
            return blocks[b][i] + "." + parts[3]
        }
    }
}

public struct ConversionError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public enum ModelConversion {
    public struct Result {
        public let module: Module
        public let spec: ModelSpec
        public let report: LoadReport
        /// Input tensors without a counterpart name under the naming scheme.
        public let dropped: [String]
    }

    /// The tensors of `file` under `prefix`, renamed by `naming` (shapes only, for inference).
    public static func shapes(of file: SafeTensorsFile, prefix: String = "", naming: KeyNaming = .native) -> [String: [Int]] {
        var out: [String: [Int]] = [:]
        for info in file.tensors where info.name.hasPrefix(prefix) {
            if let key = naming.map(String(info.name.dropFirst(prefix.count))) { out[key] = info.shape }
        }
        return out
    }

    /// Loads the renamed tensors of `file` into a fresh module of `spec` (strict unless told).
    public static func convert(_ file: SafeTensorsFile, prefix: String, naming: KeyNaming, spec: ModelSpec, strict: Bool) throws -> Result {
        let module = try spec.makeModule()
        var weights: [String: Tensor] = [:]
        var dropped: [String] = []
        for info in file.tensors where info.name.hasPrefix(prefix) {
            guard let key = naming.map(String(info.name.dropFirst(prefix.count))) else {
                dropped.append(info.name)
                continue
            }
            weights[key] = Tensor(try file.floats(info.name), shape: info.shape)
        }
        if naming == .nvidia {
            // The NVIDIA detector has no BatchNorm scale (it is 1).
            for e in module.stateDict() where e.key.hasSuffix(".bn.weight") && weights[e.key] == nil {
                weights[e.key] = Tensor.ones(e.tensor.shape)
            }
        }
        guard !weights.isEmpty else {
            throw ConversionError("\(file.source): no tensor matched (prefix '\(prefix)', names \(naming.rawValue)); see `viscoin inspect \(file.source)`")
        }
        let report = try module.load(weights, strict: strict, sourceName: file.source)
        if !strict && report.loaded.isEmpty {
            throw ConversionError("\(file.source): no tensor fits a \(spec.kind.rawValue) of this configuration (prefix '\(prefix)', names \(naming.rawValue))")
        }
        return Result(module: module, spec: spec, report: report, dropped: dropped)
    }

    // MARK: StyleGAN2 architecture from tensors

    /// The configuration of a StyleGAN2 generator or discriminator whose state dict has these
    /// shapes. What tensors cannot tell (conv_clamp, the minibatch-std group size) comes from `defaults`.
    public static func inferStyleGAN(_ kind: ModelKind, shapes: [String: [Int]], defaults: StyleGAN2Config = .auto()) throws -> StyleGAN2Config {
        var c = defaults
        func shape(_ key: String) throws -> [Int] {
            guard let s = shapes[key] else { throw ConversionError("cannot infer the \(kind.rawValue) architecture: no tensor \(key)") }
            return s
        }
        var channels: [Int: Int] = [:]
        switch kind {
        case .generator:
            let fc0 = try shape("mapping.fc0.weight")
            guard fc0.count == 2 else { throw ConversionError("mapping.fc0.weight has shape \(fc0), expected [w_dim, z_dim]") }
            (c.wDim, c.zDim) = (fc0[0], fc0[1])
            c.mappingLayers = (0...).first { shapes["mapping.fc\($0).weight"] == nil }!
            let resolutions = shapes.keys.compactMap { key -> Int? in
                guard key.hasPrefix("synthesis.b") else { return nil }
                return Int(key.dropFirst("synthesis.b".count).prefix { $0.isNumber })
            }
            guard let top = resolutions.max() else { throw ConversionError("cannot infer the generator architecture: no synthesis.b* tensors") }
            c.resolution = top
            var res = 4
            while res <= top {
                channels[res] = try shape("synthesis.b\(res).conv1.weight")[0]
                res *= 2
            }
            c.imageChannels = try shape("synthesis.b\(top).torgb.weight")[0]
        case .discriminator:
            let resolutions = shapes.keys.compactMap { key -> Int? in
                guard key.hasPrefix("b"), let r = Int(key.dropFirst().prefix { $0.isNumber }), r >= 8 else { return nil }
                return r
            }
            guard let top = resolutions.max() else { throw ConversionError("cannot infer the discriminator architecture: no b* blocks") }
            c.resolution = top
            let fromrgb = try shape("b\(top).fromrgb.weight")
            c.imageChannels = fromrgb[1]
            var res = top
            while res >= 8 {
                channels[res] = try shape("b\(res).conv0.weight")[0]
                res /= 2
            }
            let epilogue = try shape("b4.conv.weight")
            channels[4] = epilogue[0]
            c.mbstdChannels = epilogue[1] - epilogue[0]
            guard c.mbstdChannels >= 0 else { throw ConversionError("b4.conv.weight \(epilogue) has fewer input than output channels") }
            if c.mbstdChannels == 0 { c.mbstdGroupSize = nil }
        default:
            throw ConversionError("\(kind.rawValue) is not a StyleGAN2 network")
        }
        guard c.resolution >= 4, c.resolution & (c.resolution - 1) == 0 else { throw ConversionError("resolution \(c.resolution) is not a power of two") }
        // channels(res) = min(channel_base / res, channel_max).
        c.channelMax = channels.values.max() ?? c.channelMax
        let unclipped = channels.filter { $0.value < c.channelMax }
        c.channelBase = unclipped.map { $0.value * $0.key }.max() ?? c.channelMax * c.resolution
        for (res, ch) in channels where c.channels(res) != ch {
            throw ConversionError("the channel widths \(channels.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }) do not follow min(channel_base / res, channel_max)")
        }
        return c
    }

    // MARK: Classifier and VisCoIN ensemble from tensors

    /// The HF-layout ResNet under `prefix` (`resnet.embedder...`, `resnet.encoder.stages.S.layers.L...`).
    public static func inferResNet(shapes: [String: [Int]], prefix: String = "") throws -> (ResNetConfig, classes: Int) {
        func shape(_ key: String) throws -> [Int] {
            guard let s = shapes[prefix + key] else { throw ConversionError("cannot infer the classifier architecture: no tensor \(prefix)\(key)") }
            return s
        }
        var c = ResNetConfig()
        c.embeddingSize = try shape("resnet.embedder.embedder.convolution.weight")[0]
        let stagePrefix = "resnet.encoder.stages."
        let stages = (0...).first { shapes["\(prefix)\(stagePrefix)\($0).layers.0.layer.0.convolution.weight"] == nil }!
        guard stages >= 1 else { throw ConversionError("cannot infer the classifier architecture: no \(prefix)\(stagePrefix)0 layers") }
        let bottleneck = shapes["\(prefix)\(stagePrefix)0.layers.0.layer.2.convolution.weight"] != nil
        c.layerType = bottleneck ? .bottleneck : .basic
        c.hiddenSizes = try (0..<stages).map { try shape("\(stagePrefix)\($0).layers.0.layer.\(bottleneck ? 2 : 1).convolution.weight")[0] }
        c.depths = (0..<stages).map { s in (0...).first { shapes["\(prefix)\(stagePrefix)\(s).layers.\($0).layer.0.convolution.weight"] == nil }! }
        let head = try shape("linear.weight")
        return (c, head[0])
    }

    /// A VisCoIN checkpoint's configuration (save_viscoin layout) from its tensors. The adapted
    /// mapping's split between Phi and Phi' (coarse and mid layer) is not visible in the shapes.
    public static func inferVisCoIN(shapes: [String: [Int]], coarseLayer: Int = 2, midLayer: Int = 10,
                                    convClamp: Float? = 256) throws -> ModelSpec {
        func shape(_ key: String) throws -> [Int] {
            guard let s = shapes[key] else { throw ConversionError("not a VisCoIN checkpoint: no tensor \(key)") }
            return s
        }
        let (resnet, classes) = try inferResNet(shapes: shapes, prefix: "classifier.")
        let conv1 = try shape("concept_extractor.conv1.weight"), conv2 = try shape("concept_extractor.conv2.weight")
        let conv3 = try shape("concept_extractor.conv3.weight"), conv5 = try shape("concept_extractor.conv5.weight")
        let normalized = shapes["explainer.linear.parametrizations.weight.original1"] != nil
        var synthesisShapes: [String: [Int]] = [:]
        for (k, v) in shapes where k.hasPrefix("gan.synthesis.") { synthesisShapes[String(k.dropFirst(4))] = v }
        synthesisShapes["mapping.fc0.weight"] = [try shape("gan.mapping.fixed_w_avg")[0], 1]
        var synthesis = try inferStyleGAN(.generator, shapes: synthesisShapes)
        synthesis.convClamp = convClamp
        let s0 = try shape("gan.mapping.s0.0.weight")
        let layers = (0...).first { shapes["gan.mapping.s0.\($0).weight"] == nil }!
        guard s0[1] % 9 == 0 else { throw ConversionError("gan.mapping.s0.0.weight \(s0): its input is not 9 x the concept count") }
        return ModelSpec(kind: .viscoin, config: [
            "classifier": ModelSpec.classifier(resnet, classes: classes).config,
            "concept_extractor": ["n_concepts": JSONValue(conv5[0]), "latent_channels": JSONValue(conv1[0]), "input_channels1": JSONValue(conv1[1]),
                                  "input_channels2": JSONValue(conv2[1]), "input_channels3": JSONValue(conv3[1])],
            "explainer": ["n_concepts": JSONValue(conv5[0]), "n_classes": JSONValue(classes), "normalized": .bool(normalized)],
            "gan": ["synthesis": ModelSpec.stylegan(.generator, synthesis).config, "z_dim": JSONValue(s0[1] / 9), "w_dim": JSONValue(s0[0]),
                    "num_layers": JSONValue(layers), "coarse_layer": JSONValue(coarseLayer), "mid_layer": JSONValue(midLayer)],
        ])
    }
}
