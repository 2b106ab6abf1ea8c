// The project's own weight files: safetensors whose metadata carries the model kind and its
// architecture configuration, so later commands need only the file. Tensors keep the PyTorch
// state-dict names, so the files are also readable by PyTorch tooling.
import Common
import NN
import SafeTensors
import TensorCore

/// The kinds of networks a weight file can hold.
public enum ModelKind: String, CaseIterable, Sendable {
    case classifier, generator, discriminator, inception, lpips
    case conceptExtractor = "concept-extractor"
    case explainer
    /// The VisCoIN ensemble (classifier, concept extractor, explainer, adapted generator).
    case viscoin
}

/// Architecture configuration, stored as JSON in the file's metadata (`viscoin.config`).
public struct ModelSpec: Equatable, Sendable {
    public var kind: ModelKind
    public var config: JSONValue

    public init(kind: ModelKind, config: JSONValue) {
        self.kind = kind
        self.config = config
    }

    public static func classifier(_ c: ResNetConfig, classes: Int) -> ModelSpec {
        ModelSpec(kind: .classifier, config: [
            "embedding_size": JSONValue(c.embeddingSize), "hidden_sizes": JSONValue(c.hiddenSizes), "depths": JSONValue(c.depths),
            "layer_type": .string(c.layerType.rawValue), "downsample_in_first_stage": .bool(c.downsampleInFirstStage),
            "classes": JSONValue(classes),
        ])
    }

    public static func stylegan(_ kind: ModelKind, _ c: StyleGAN2Config) -> ModelSpec {
        ModelSpec(kind: kind, config: [
            "z_dim": JSONValue(c.zDim), "w_dim": JSONValue(c.wDim), "img_resolution": JSONValue(c.resolution),
            "img_channels": JSONValue(c.imageChannels), "mapping_layers": JSONValue(c.mappingLayers),
            "channel_base": JSONValue(c.channelBase), "channel_max": JSONValue(c.channelMax),
            "conv_clamp": c.convClamp.map { JSONValue(Double($0)) } ?? .null,
            "mbstd_group_size": c.mbstdGroupSize.map { JSONValue($0) } ?? .null, "mbstd_num_channels": JSONValue(c.mbstdChannels),
        ])
    }

    func int(_ key: String) throws -> Int {
        guard let v = config[key]?.intValue else { throw ModelFileError(message: "configuration field '\(key)' is missing or not an integer") }
        return Int(v)
    }

    public func resnetConfig() throws -> (ResNetConfig, Int) {
        var c = ResNetConfig()
        c.embeddingSize = try int("embedding_size")
        c.hiddenSizes = (config["hidden_sizes"]?.arrayValue ?? []).compactMap { $0.intValue.map(Int.init) }
        c.depths = (config["depths"]?.arrayValue ?? []).compactMap { $0.intValue.map(Int.init) }
        guard c.hiddenSizes.count == 4, c.depths.count == 4, let type = config["layer_type"]?.stringValue,
              let layerType = ResNetConfig.LayerType(rawValue: type) else {
            throw ModelFileError(message: "invalid ResNet configuration \(config.serialized())")
        }
        c.layerType = layerType
        c.downsampleInFirstStage = config["downsample_in_first_stage"]?.boolValue ?? false
        return (c, try int("classes"))
    }

    public func styleganConfig() throws -> StyleGAN2Config {
        var c = StyleGAN2Config()
        c.zDim = try int("z_dim")
        c.wDim = try int("w_dim")
        c.resolution = try int("img_resolution")
        c.imageChannels = try int("img_channels")
        c.mappingLayers = try int("mapping_layers")
        c.channelBase = try int("channel_base")
        c.channelMax = try int("channel_max")
        c.convClamp = config["conv_clamp"]?.doubleValue.map { Float($0) }
        c.mbstdGroupSize = config["mbstd_group_size"]?.intValue.map { Int($0) }
        c.mbstdChannels = config["mbstd_num_channels"]?.intValue.map { Int($0) } ?? 1
        guard c.resolution >= 4, c.resolution & (c.resolution - 1) == 0 else {
            throw ModelFileError(message: "img_resolution \(c.resolution) is not a power of two >= 4")
        }
        return c
    }

    /// A freshly initialised module of this specification.
    public func makeModule(seed: UInt64 = 0) throws -> Module {
        let g = RandomGenerator(seed: seed)
        switch kind {
        case .classifier:
            let (c, classes) = try resnetConfig()
            return Classifier(config: c, classes: classes, generator: g)
        case .generator: return Generator(try styleganConfig(), generator: g)
        case .discriminator: return Discriminator(try styleganConfig(), generator: g)
        case .inception: return InceptionV3(generator: g)
        case .lpips: return LPIPS(generator: g)
        case .conceptExtractor:
            return ConceptExtractor(nConcepts: try int("n_concepts"), latentChannels: try int("latent_channels"),
                                    inputChannels: (try int("input_channels1"), try int("input_channels2"), try int("input_channels3")), generator: g)
        case .explainer:
            return Explainer(nConcepts: try int("n_concepts"), nClasses: try int("n_classes"),
                             normalized: config["normalized"]?.boolValue ?? false, generator: g)
        case .viscoin:
            func part(_ name: String, _ kind: ModelKind) throws -> ModelSpec {
                guard let c = config[name] else { throw ModelFileError(message: "VisCoIN configuration lacks '\(name)'") }
                return ModelSpec(kind: kind, config: c)
            }
            let f = try part("classifier", .classifier).makeModule(seed: seed) as! Classifier
            let psi = try part("concept_extractor", .conceptExtractor).makeModule(seed: seed) as! ConceptExtractor
            let theta = try part("explainer", .explainer).makeModule(seed: seed) as! Explainer
            let ganSpec = try part("gan", .generator)
            let synthesis = SynthesisNetwork(try ModelSpec(kind: .generator, config: ganSpec.config["synthesis"] ?? .null).styleganConfig(), generator: g)
            let gan = GeneratorAdapted(synthesis: synthesis, zDim: try ganSpec.int("z_dim"), wDim: try ganSpec.int("w_dim"),
                                       numLayers: try ganSpec.int("num_layers"), coarseLayer: try ganSpec.int("coarse_layer"),
                                       midLayer: try ganSpec.int("mid_layer"), generator: g)
            return VisCoINModels(classifier: f, conceptExtractor: psi, explainer: theta, gan: gan)
        }
    }
}

public struct ModelFileError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}

public enum ModelFile {
    public static let formatKey = "viscoin.format"
    public static let kindKey = "viscoin.model"
    public static let configKey = "viscoin.config"

    /// Writes a module's state dict with its specification in the metadata.
    public static func save(_ module: Module, spec: ModelSpec, to path: String, extraMetadata: [(String, String)] = [],
                            compressionLevel: Int32 = 0) throws {
        var writer = try module.safetensors()
        writer.metadata = [(formatKey, "weights-v1"), (kindKey, spec.kind.rawValue), (configKey, spec.config.serialized())] + extraMetadata
        try writer.write(to: path, compressionLevel: compressionLevel)
    }

    /// Reads the specification of a weight file.
    public static func spec(of file: SafeTensorsFile) throws -> ModelSpec {
        guard let kindName = file.metadata[kindKey] else {
            throw ModelFileError(message: "\(file.source): not a viscoin weight file (no '\(kindKey)' metadata); convert it with `viscoin convert`")
        }
        guard let kind = ModelKind(rawValue: kindName) else { throw ModelFileError(message: "\(file.source): unknown model kind '\(kindName)'") }
        do {
            return ModelSpec(kind: kind, config: try JSONValue.parse(file.metadata[configKey] ?? "{}"))
        } catch {
            throw ModelFileError(message: "\(file.source): invalid '\(configKey)' metadata: \(error)")
        }
    }

    /// Builds the module described by a weight file and loads its tensors (strict).
    public static func load(_ path: String, expecting kind: ModelKind? = nil) throws -> (Module, ModelSpec) {
        let file = try SafeTensorsFile(path: path)
        let spec = try spec(of: file)
        if let kind, kind != spec.kind {
            throw ModelFileError(message: "\(path): holds a \(spec.kind.rawValue), expected a \(kind.rawValue)")
        }
        let module = try spec.makeModule()
        try module.load(file: file)
        return (module, spec)
    }
}
