// `viscoin convert`: a safetensors file exported from a PyTorch state dict (tools/export_safetensors.py)
// -> the project's weight file, which carries the configuration in its metadata. Names may come
// from torchvision, the Hugging Face hub, pytorch-fid or NVIDIA's TorchScript detector; a
// StyleGAN2 network's architecture is read off its tensors unless --cfg names a preset. The
// work is `ModelConversion` (Models); this command builds the specification and prints.
import ArgumentParser
import Common
import Models
import NN
import SafeTensors

struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert exported PyTorch weights (safetensors) into a viscoin weight file.",
        discussion: """
            Examples:
              viscoin convert --input snapshot.safetensors --prefix G_ema. --model generator --output G.safetensors
              viscoin convert --input resnet50-tv.safetensors --names torchvision --model classifier --arch resnet50 --classes 1000 --output f.safetensors
              viscoin convert --input inception-2015-12-05.safetensors --names nvidia --model inception --output inception.safetensors
            """)

    @Option(help: "Input safetensors file (a PyTorch state dict exported with tools/export_safetensors.py).") var input: String
    @Option(help: "Output weight file.") var output: String
    @Option(help: "Model kind: \(ModelKind.allCases.map(\.rawValue).joined(separator: ", ")).") var model: String
    @Option(help: "Naming of the input keys.") var names: KeyNaming = .native
    @Option(help: "Only keys starting with this prefix are used, with the prefix removed (e.g. G_ema.).") var prefix = ""
    @Flag(help: "Load what matches and list the skipped keys instead of failing.") var nonStrict = false
    @Option(help: "Compress the output with zstd at this level (0 = none).") var compress: Int32 = 0

    @Option(help: "Classifier: resnet18, resnet34, resnet50, resnet101, narrow, tiny.") var arch = ResNetArchitecture.resnet50
    @Option(help: "Classifier / explainer: number of classes.") var classes: Int?
    @Option(help: "StyleGAN2: a preset (auto, paper256, tiny) instead of reading the architecture off the tensors.") var cfg: String?
    @Option(help: "StyleGAN2 with --cfg: resolution.") var resolution = 256
    @Option(help: "StyleGAN2: conv_clamp (not stored in the tensors): a number, or none.") var convClamp = "256"
    @Option(help: "StyleGAN2 discriminator: minibatch-std group size (not stored in the tensors).") var mbstdGroup = 4
    @Option(help: "Concept extractor / explainer: number of concepts.") var concepts = 256
    @Option(help: "Concept extractor: latent channels.") var latentChannels = 512
    @Flag(help: "Explainer: weight-normalised head.") var normalized = false
    @Option(help: "VisCoIN: last style index fed by Phi' before the concept maps (not stored in the tensors).") var coarseLayer = 2
    @Option(help: "VisCoIN: last style index fed by the concept maps Phi (not stored in the tensors).") var midLayer = 10

    func spec(for file: SafeTensorsFile) throws -> ModelSpec {
        guard let kind = ModelKind(rawValue: model) else {
            throw ValidationError("--model must be one of \(ModelKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        switch kind {
        case .classifier:
            guard let classes, classes > 0 else { throw ValidationError("--classes is required for a classifier") }
            return .classifier(arch.config, classes: classes)
        case .generator, .discriminator:
            var c: StyleGAN2Config
            if let cfg {
                guard let preset = StyleGAN2Config.named(cfg, resolution: resolution) else { throw ValidationError("--cfg must be auto, paper256 or tiny") }
                c = preset
            } else {
                c = try ModelConversion.inferStyleGAN(kind, shapes: ModelConversion.shapes(of: file, prefix: prefix, naming: names))
            }
            if convClamp == "none" { c.convClamp = nil } else if let v = Float(convClamp), v > 0 { c.convClamp = v } else {
                throw ValidationError("--conv-clamp must be a positive number or none, got \(convClamp)")
            }
            if kind == .discriminator && c.mbstdChannels > 0 { c.mbstdGroupSize = mbstdGroup }
            return .stylegan(kind, c)
        case .inception, .lpips:
            return ModelSpec(kind: kind, config: [:])
        case .conceptExtractor:
            return ModelSpec(kind: kind, config: ["n_concepts": JSONValue(concepts), "latent_channels": JSONValue(latentChannels),
                                                  "input_channels1": 512, "input_channels2": 1024, "input_channels3": 2048])
        case .explainer:
            guard let classes, classes > 0 else { throw ValidationError("--classes is required for an explainer") }
            return ModelSpec(kind: kind, config: ["n_concepts": JSONValue(concepts), "n_classes": JSONValue(classes), "normalized": .bool(normalized)])
        case .viscoin:
            // A save_viscoin checkpoint (exported with tools/export_safetensors.py): every part's
            // architecture from its tensors.
            return try ModelConversion.inferVisCoIN(shapes: ModelConversion.shapes(of: file, prefix: prefix, naming: names),
                                                    coarseLayer: coarseLayer, midLayer: midLayer, convClamp: convClamp == "none" ? nil : Float(convClamp) ?? 256)
        }
    }

    func run() throws {
        try requireWritable(output, "--output")
        let file = try SafeTensorsFile(path: input)
        let spec = try spec(for: file)
        let result = try ModelConversion.convert(file, prefix: prefix, naming: names, spec: spec, strict: !nonStrict)
        try ModelFile.save(result.module, spec: spec, to: output, extraMetadata: [("viscoin.source", Files.lastComponent(of: input))],
                           compressionLevel: compress)
        var text = "converted \(result.report.loaded.count) tensors of \(input) into a \(spec.kind.rawValue) (\(result.module.parameterCount) parameters): \(output)\n"
        if spec.kind == .generator || spec.kind == .discriminator { text += "architecture: \(spec.config.serialized())\n" }
        let dropped = result.dropped
        if !dropped.isEmpty { text += "ignored \(dropped.count) input tensors without a counterpart name: \(dropped.prefix(20).joined(separator: ", "))\(dropped.count > 20 ? ", ..." : "")\n" }
        if !result.report.skipped.isEmpty { text += "skipped (non-strict): \(result.report.skipped.joined(separator: ", "))\n" }
        Console.print(text, terminator: "")
    }
}

extension KeyNaming: ExpressibleByArgument {}
