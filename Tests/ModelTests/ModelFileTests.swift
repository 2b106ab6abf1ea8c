// Weight files: a converted file round-trips bitwise, carries its configuration, and strict
// loading reports every missing, unexpected and wrong-shape key in one error.
import Common
import Models
import NN
import SafeTensors
import Testing
import TensorCore
import TestSupport

@Suite struct ModelFileTests {
    @Test func convertedGeneratorRoundTripsBitwise() throws {
        let dir = "/tmp/viscoin-modelfile-\(UInt64.random(in: 0...UInt64.max))"
        try Files.createDirectory(dir)
        defer { try? Files.remove(dir) }
        let g = Generator(.tiny, generator: RandomGenerator(seed: 1))
        let spec = ModelSpec.stylegan(.generator, .tiny)
        try ModelFile.save(g, spec: spec, to: "\(dir)/a.safetensors")
        let (loaded, loadedSpec) = try ModelFile.load("\(dir)/a.safetensors", expecting: .generator)
        #expect(loadedSpec == spec)
        try ModelFile.save(loaded, spec: loadedSpec, to: "\(dir)/b.safetensors")
        #expect(try Files.read("\(dir)/a.safetensors") == Files.read("\(dir)/b.safetensors"))
        for (a, b) in zip(g.stateDict(), loaded.stateDict()) {
            #expect(a.key == b.key && a.tensor.toArray() == b.tensor.toArray())
        }
        #expect(throws: ModelFileError.self) { try ModelFile.load("\(dir)/a.safetensors", expecting: .classifier) }
    }

    @Test func classifierSpecRoundTrip() throws {
        let spec = ModelSpec.classifier(.named("narrow")!, classes: 9)
        let (config, classes) = try spec.resnetConfig()
        #expect(config == .named("narrow")! && classes == 9)
        let module = try spec.makeModule() as! Classifier
        #expect(module.linear.weight.shape == [9, 256])
    }

    @Test func strictLoadingListsEveryProblem() throws {
        let model = Classifier(config: .named("tiny")!, classes: 3, generator: RandomGenerator(seed: 2))
        var weights = Dictionary(uniqueKeysWithValues: model.stateDict().map { ($0.key, $0.tensor.copy()) })
        weights["linear.weight"] = Tensor.zeros([4, 128])
        weights.removeValue(forKey: "linear.bias")
        weights.removeValue(forKey: "resnet.embedder.embedder.convolution.weight")
        weights["extra.tensor"] = Tensor.zeros([1])
        do {
            try model.load(weights, sourceName: "bad.safetensors")
            Issue.record("strict load must fail")
        } catch let error as StateDictError {
            #expect(error.missing.sorted() == ["linear.bias", "resnet.embedder.embedder.convolution.weight"])
            #expect(error.unexpected == ["extra.tensor"])
            #expect(error.wrongShape.map(\.key) == ["linear.weight"])
            #expect(error.description.contains("bad.safetensors") && error.description.contains("wrong shape: linear.weight expected [3, 128], found [4, 128]"))
        }
        let report = try model.load(weights, strict: false)
        #expect(report.skipped.count == 4)
        #expect(report.loaded.contains("linear.bias") == false)
    }

    @Test func notAWeightFileIsAClearError() throws {
        let dir = "/tmp/viscoin-modelfile-\(UInt64.random(in: 0...UInt64.max))"
        try Files.createDirectory(dir)
        defer { try? Files.remove(dir) }
        var w = SafeTensorsWriter()
        try w.add(name: "x", shape: [1], floats: [1])
        try w.write(to: "\(dir)/plain.safetensors")
        do {
            _ = try ModelFile.load("\(dir)/plain.safetensors")
            Issue.record("expected an error")
        } catch let error as ModelFileError {
            #expect(error.description.contains("not a viscoin weight file"))
        }
    }

    /// `convert` reads a StyleGAN2 network's architecture off its tensors: z != w, a mapping
    /// depth and widths that no preset has, minibatch-std channels of the discriminator.
    @Test func styleGANArchitectureIsInferredFromTensors() throws {
        var c = StyleGAN2Config()
        (c.zDim, c.wDim, c.mappingLayers, c.resolution, c.channelBase, c.channelMax, c.mbstdChannels) = (24, 40, 3, 32, 512, 32, 2)
        for kind in [ModelKind.generator, .discriminator] {
            let module: Module = kind == .generator ? Generator(c, generator: RandomGenerator(seed: 1)) : Discriminator(c, generator: RandomGenerator(seed: 2))
            let shapes = Dictionary(uniqueKeysWithValues: module.stateDict().map { ($0.key, $0.tensor.shape) })
            let inferred = try ModelConversion.inferStyleGAN(kind, shapes: shapes)
            #expect(inferred.resolution == 32 && inferred.channelMax == 32 && inferred.channels(8) == c.channels(8) && inferred.channels(32) == c.channels(32))
            if kind == .generator {
                #expect(inferred.zDim == 24 && inferred.wDim == 40 && inferred.mappingLayers == 3)
                #expect(Generator(inferred, generator: RandomGenerator(seed: 3)).stateDict().map(\.tensor.shape) == module.stateDict().map(\.tensor.shape))
            } else {
                #expect(inferred.mbstdChannels == 2)
                #expect(Discriminator(inferred, generator: RandomGenerator(seed: 3)).stateDict().map(\.tensor.shape) == module.stateDict().map(\.tensor.shape))
            }
        }
        #expect(throws: ConversionError.self) { try ModelConversion.inferStyleGAN(.generator, shapes: ["mapping.fc0.weight": [4, 4]]) }
    }
}
