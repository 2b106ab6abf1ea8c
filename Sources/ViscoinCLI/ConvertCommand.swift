// `viscoin convert`: a safetensors file exported from a PyTorch state dict (tools/export_safetensors.py)
// plus the architecture flags -> the project's weight file, which carries the configuration in
// its metadata. Names may come from torchvision, the Hugging Face hub, pytorch-fid or NVIDIA's
// TorchScript detector; loading is strict unless --non-strict, which lists what it skipped.
import ArgumentParser
import Common
import Models
import NN
import SafeTensors
import TensorCore

struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert exported PyTorch weights (safetensors) into a viscoin weight file.",
        discussion: """
            Examples:
              viscoin convert --input gan-cub.safetensors --prefix G_ema. --model generator --cfg auto --output G.safetensors
              viscoin convert --input resnet50-tv.safetensors --names torchvision --model classifier --arch resnet50 --classes 1000 --output f.safetensors
              viscoin convert --input inception-2015-12-05.safetensors --names nvidia --model inception --output inception.safetensors
            """)

    enum Names: String, ExpressibleByArgument, CaseIterable {
        case native, torchvision, hfHub = "hf-hub", hfBackbone = "hf-backbone", nvidia, pytorchFIDBlocks = "pytorch-fid-blocks"
    }

    @Option(help: "Input safetensors file (a PyTorch state dict exported with tools/export_safetensors.py).") var input: String
    @Option(help: "Output weight file.") var output: String
    @Option(help: "Model kind: \(ModelKind.allCases.map(\.rawValue).joined(separator: ", ")).") var model: String
    @Option(help: "Naming of the input keys: \(Names.allCases.map(\.rawValue).joined(separator: ", ")).") var names: Names = .native
    @Option(help: "Only keys starting with this prefix are used, with the prefix removed (e.g. G_ema.).") var prefix = ""
    @Flag(help: "Load what matches and list the skipped keys instead of failing.") var nonStrict = false
    @Option(help: "Compress the output with zstd at this level (0 = none).") var compress: Int32 = 0

    @Option(help: "Classifier: resnet18, resnet34, resnet50, resnet101, narrow.") var arch = "resnet50"
    @Option(help: "Classifier / explainer: number of classes.") var classes: Int?
    @Option(help: "StyleGAN2 preset: auto, paper256, tiny.") var cfg = "auto"
    @Option(help: "StyleGAN2 resolution.") var resolution = 256
    @Option(help: "StyleGAN2 mapping layers (overrides the preset).") var mappingLayers: Int?
    @Option(help: "StyleGAN2 z/w dimension (overrides the preset).") var zDim: Int?
    @Option(help: "StyleGAN2 channel base (overrides the preset).") var channelBase: Int?
    @Option(help: "StyleGAN2 channel max (overrides the preset).") var channelMax: Int?
    @Option(help: "StyleGAN2 minibatch-std group size (discriminator).") var mbstdGroup: Int?
    @Option(help: "Concept extractor / explainer: number of concepts.") var concepts = 256
    @Option(help: "Concept extractor: latent channels.") var latentChannels = 512
    @Flag(help: "Explainer: weight-normalised head.") var normalized = false

    func spec() throws -> ModelSpec {
        guard let kind = ModelKind(rawValue: model) else {
            throw ValidationError("--model must be one of \(ModelKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        switch kind {
        case .classifier:
            guard let c = ResNetConfig.named(arch) else { throw ValidationError("--arch must be resnet18, resnet34, resnet50, resnet101 or narrow") }
            guard let classes, classes > 0 else { throw ValidationError("--classes is required for a classifier") }
            return .classifier(c, classes: classes)
        case .generator, .discriminator:
            guard var c = StyleGAN2Config.named(cfg, resolution: resolution) else { throw ValidationError("--cfg must be auto, paper256 or tiny") }
            if let mappingLayers { c.mappingLayers = mappingLayers }
            if let zDim { c.zDim = zDim; c.wDim = zDim }
            if let channelBase { c.channelBase = channelBase }
            if let channelMax { c.channelMax = channelMax }
            if let mbstdGroup { c.mbstdGroupSize = mbstdGroup }
            return .stylegan(kind, c)
        case .inception, .lpips:
            return ModelSpec(kind: kind, config: [:])
        case .conceptExtractor:
            return ModelSpec(kind: kind, config: ["n_concepts": JSONValue(concepts), "latent_channels": JSONValue(latentChannels),
                                                  "input_channels1": 512, "input_channels2": 1024, "input_channels3": 2048])
        case .explainer:
            guard let classes, classes > 0 else { throw ValidationError("--classes is required for an explainer") }
            return ModelSpec(kind: kind, config: ["n_concepts": JSONValue(concepts), "n_classes": JSONValue(classes), "normalized": .bool(normalized)])
        }
    }

    /// Maps an input key (after the prefix) to our state-dict key, or nil to drop it.
    func mapName(_ key: String) -> String? {
        switch names {
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

    func run() throws {
        let spec = try spec()
        let file = try SafeTensorsFile(path: input)
        let module = try spec.makeModule()
        var weights: [String: Tensor] = [:]
        var dropped: [String] = []
        for info in file.tensors {
            guard info.name.hasPrefix(prefix) else { continue }
            guard let key = mapName(String(info.name.dropFirst(prefix.count))) else {
                dropped.append(info.name)
                continue
            }
            weights[key] = Tensor(try file.floats(info.name), shape: info.shape)
        }
        if names == .nvidia {
            // The NVIDIA detector has no BatchNorm scale (it is 1).
            for e in module.stateDict() where e.key.hasSuffix(".bn.weight") && weights[e.key] == nil {
                weights[e.key] = Tensor.ones(e.tensor.shape)
            }
        }
        if weights.isEmpty {
            throw ValidationError("\(input): no tensor matched (prefix '\(prefix)', names \(names.rawValue)); see `viscoin inspect \(input)`")
        }
        let report = try module.load(weights, strict: !nonStrict, sourceName: input)
        try ModelFile.save(module, spec: spec, to: output, extraMetadata: [("viscoin.source", Files.lastComponent(of: input))],
                           compressionLevel: compress)
        var text = "converted \(report.loaded.count) tensors of \(input) into a \(spec.kind.rawValue) (\(module.parameterCount) parameters): \(output)\n"
        if !dropped.isEmpty { text += "ignored \(dropped.count) input tensors without a counterpart name: \(dropped.prefix(20).joined(separator: ", "))\(dropped.count > 20 ? ", ..." : "")\n" }
        if !report.skipped.isEmpty { text += "skipped (non-strict): \(report.skipped.joined(separator: ", "))\n" }
        Console.print(text, terminator: "")
    }
}
