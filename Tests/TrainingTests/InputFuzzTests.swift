// Fuzz loops over the structured inputs a user or a damaged disk hands us: a checkpoint
// manifest, a dataset index and a latents file. Each mutation (byte damage, or one value
// replaced by a hostile number or type, or removed) must either load or be refused with an
// error; a trap would end the test process. The originals must load, and most mutations of
// the structure must be refused.
import Common
import Communication
import Datasets
import Evaluation
import Models
import SafeTensors
import TensorCore
import Testing
import TestSupport
import Training

@Suite struct InputFuzzTests {
    func temporary(_ name: String) throws -> String {
        let dir = "/tmp/viscoin-fuzz-\(name)-\(UInt64.random(in: 0...UInt64.max))"
        try Files.createDirectory(dir)
        return dir
    }

    /// A checkpoint of a classifier run as the engine writes it.
    func writeCheckpoint(in dir: String) throws -> String {
        let rng = RandomGenerator(seed: 3)
        let state = try JSONValue.parse(#"{"epoch": 1, "loader_batch": 2, "best": {"accuracy": 0.5, "epoch": 1}, "#
                                        + #""history": [{"step": 4, "epoch": 1, "loss": 1.5, "accuracy": 0.5, "count": 9}]}"#)
        _ = try JSONValueDecoder().decode(ClassifierState.self, from: state)
        let content = CheckpointContent(step: 6, tensors: [
            ("model.weight", rng.normal([16, 9]), false), ("model.num_batches_tracked", Tensor([6], shape: []), true),
            ("optimizer.weight.exp_avg", rng.normal([16, 9]), false),
        ], state: .object([
            ("engine", .object([("step", 6), ("skipped_steps", 0)])),
            ("job", state),
            ("optimizers", .object([("optimizer", .object([("step", 6)]))])),
        ]), rankState: .object([("rank", 0)]), config: ClassifierTrainingConfig(data: "d", run: "r").json)
        return try CheckpointStore(directory: dir).save(content, communicator: SingleProcessCommunicator())
    }

    @Test func manifestMutationsLoadOrAreRefused() throws {
        let dir = try temporary("manifest")
        defer { try? Files.remove(dir) }
        let checkpoint = try writeCheckpoint(in: dir)
        let path = Files.join(checkpoint, "manifest.json")
        let original = try Files.read(path)
        let parsed = try JSONValue.parse(original)
        try CheckpointChecks.validate(try CheckpointStore.load(checkpoint))
        var mutator = Mutator(seed: 11)
        var refused = 0
        let rounds = 2000
        for round in 0..<rounds {
            let bytes = round % 3 == 0 ? mutator.damage(original) : Array(mutator.mutate(parsed).serialized().utf8)
            try Files.writeAtomically(path, bytes: bytes)
            do {
                try CheckpointChecks.validate(try CheckpointStore.load(checkpoint))
            } catch {
                refused += 1
                let message = "\(error)"
                #expect(message.contains(checkpoint), "round \(round): the error names the checkpoint: \(message)")
            }
        }
        #expect(refused > rounds / 3, "only \(refused) of \(rounds) mutations were refused")
    }

    @Test func datasetIndexMutationsParseOrAreRefused() throws {
        let items = (0..<12).map { i in
            DatasetItem(file: DatasetItem.fileName(i), label: i % 3, split: i < 8 ? .train : (i < 10 ? .val : .test),
                        source: "src/\(i).png", bbox: i % 2 == 0 ? [1, 2, 30, 40] : nil, concepts: [0.5, Float(i) / 12])
        }
        let index = DatasetIndex(kind: "demo", resolution: 32, classes: ["a", "b", "c"], conceptNames: ["x", "y"], items: items,
                                 provenance: [("seed", 1)])
        let original = Array(index.serialized().utf8)
        #expect(try DatasetIndex.parse(original, path: "dataset.json") == index)
        let parsed = try JSONValue.parse(original)
        var mutator = Mutator(seed: 12)
        var refused = 0
        let rounds = 2000
        for round in 0..<rounds {
            let bytes = round % 3 == 0 ? mutator.damage(original) : Array(mutator.mutate(parsed).serialized().utf8)
            do {
                let loaded = try DatasetIndex.parse(bytes, path: "dataset.json")
                // What parses is usable: labels name a class, files stay inside the dataset.
                for item in loaded.items {
                    let labelOK = item.label >= 0 && item.label < loaded.classes.count
                    let inside = !item.file.hasPrefix("/") && !item.file.split(separator: "/").contains("..")
                    #expect(labelOK, "round \(round): label \(item.label)")
                    #expect(inside, "round \(round): file \(item.file)")
                }
                let resolutionOK = loaded.resolution >= 1
                #expect(resolutionOK, "round \(round): resolution \(loaded.resolution)")
            } catch {
                refused += 1
                let message = "\(error)"
                #expect(message.contains("dataset.json"), "round \(round): the error names the file: \(message)")
            }
        }
        #expect(refused > rounds / 3, "only \(refused) of \(rounds) mutations were refused")
    }

    @Test func latentsFileMutationsLoadOrAreRefused() throws {
        let dir = try temporary("latents")
        defer { try? Files.remove(dir) }
        var config = StyleGAN2Config.tiny
        config.resolution = 16
        let g = Generator(config, generator: RandomGenerator(seed: 1))
        let z = RandomGenerator(seed: 2).normal([3, config.zDim])
        var writer = SafeTensorsWriter()
        try writer.add(name: "z", shape: z.shape, floats: z.toArray())
        let path = Files.join(dir, "latents.safetensors")
        try writer.write(to: path)
        let original = try Files.read(path)
        _ = try GeneratorSampling.latents(file: path, for: g)
        // The header as JSON, for structural mutations; the payload is kept.
        let headerLength = original.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        let header = try JSONValue.parse(original[8..<(8 + headerLength)])
        let payload = Array(original[(8 + headerLength)...])
        var mutator = Mutator(seed: 13)
        var refused = 0
        let rounds = 1500
        for round in 0..<rounds {
            var bytes: [UInt8]
            switch round % 4 {
            case 0: bytes = mutator.damage(original)
            case 1:
                // NaN and infinities among the values.
                bytes = original
                let at = 8 + headerLength + 4 * mutator.below(payload.count / 4)
                let bad: Float = [.nan, .infinity, -.infinity][mutator.below(3)]
                withUnsafeBytes(of: bad.bitPattern.littleEndian) { for k in 0..<4 { bytes[at + k] = $0[k] } }
            default:
                let text = Array(mutator.mutate(header).serialized().utf8)
                bytes = withUnsafeBytes(of: UInt64(text.count).littleEndian) { Array($0) } + text + payload
            }
            try Files.writeAtomically(path, bytes: bytes)
            do {
                switch try GeneratorSampling.latents(file: path, for: g) {
                case .z(let t), .ws(let t):
                    let finite = t.toArray().allSatisfy(\.isFinite)
                    #expect(finite, "round \(round): non-finite latents accepted")
                case .seeds: Issue.record("round \(round): a file cannot give seeds")
                }
            } catch {
                refused += 1
                let message = "\(error)"
                #expect(message.contains(path), "round \(round): the error names the file: \(message)")
            }
        }
        #expect(refused > rounds / 3, "only \(refused) of \(rounds) mutations were refused")
    }
}
