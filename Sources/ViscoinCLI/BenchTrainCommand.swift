// `viscoin bench train`: the data-parallel classifier step (forward, backward with the
// gradient all-reduce overlapped, Adam) in images/s over all ranks, the share of the step spent
// waiting for communication, and checkpoint write/read speed and size ratio. Run it as
// `launch/run -n 1 --threads 2 -- bench train` and `launch/run -n 2 -- bench train` to get the
// scaling efficiency of 2 ranks x 1 thread against 1 rank x 2 threads.
import ArgumentParser
import Common
import Communication
import Datasets
import Models
import TensorCore
import Training

struct BenchTrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Data-parallel classifier step images/s, communication share, checkpoint MB/s.")

    @OptionGroup var bench: BenchOptions
    @OptionGroup var runtime: RuntimeOptions

    @Option(name: .long, help: "Classifier architecture.") var arch = "resnet50"
    @Option(name: .long, help: "Input resolution.") var resolution = 224
    @Option(name: .long, help: "Global batch (split over the ranks).") var batch = 8
    @Option(name: .long, help: "Timed steps (after one warm-up step).") var steps = 3
    @Option(name: .long, help: "Checkpoint folder used by the measurement (removed afterwards).") var checkpointDirectory = "/tmp/viscoin-bench-checkpoint"

    func validate() throws {
        guard (32...1024).contains(resolution) else { throw ValidationError("--resolution must be between 32 and 1024 (got \(resolution))") }
        guard (1...4096).contains(batch) else { throw ValidationError("--batch must be between 1 and 4096 (got \(batch))") }
        guard (1...10_000).contains(steps) else { throw ValidationError("--steps must be between 1 and 10000 (got \(steps))") }
    }

    func run() throws {
        let (json, arch, resolution, batch, steps, directory) = (bench.json, arch, resolution, batch, steps, checkpointDirectory)
        try Runtime.run(runtime) { comm, threads in
            guard let config = ResNetConfig.named(arch) else { throw ValidationError("--arch \(arch) is not a known ResNet") }
            guard batch % comm.size == 0 else { throw ValidationError("--batch \(batch) must be divisible by the \(comm.size) ranks") }
            let perRank = batch / comm.size
            let report = BenchReport(title: "bench train", communicator: comm, threads: threads, batch: batch,
                                     extra: [("arch", .string(arch)), ("resolution", JSONValue(resolution)), ("batch_per_rank", JSONValue(perRank))])
            let rng = RandomGenerator(seed: 7, stream: UInt64(comm.rank))
            let model = Classifier(config: config, classes: 200, generator: RandomGenerator(seed: 1))
            model.train()
            let parameters = model.namedParameters()
            let optimizer = Adam([ParameterGroup(parameters, lr: 1e-4)])
            let parallel = DataParallel(parameters: parameters, communicator: comm)
            try DataParallel.broadcastState(model, communicator: comm)
            let x = rng.normal([perRank, 3, resolution, resolution])
            let labels = (0..<perRank).map { ($0 + comm.rank * perRank) % 200 }
            func step() throws {
                let (logits, _) = model(imagenetNormalized(x))
                try parallel.backward(crossEntropy(logits, labels: labels))
                optimizer.step()
                optimizer.zeroGrad()
            }
            try step()
            try comm.barrier()
            parallel.resetTimers()
            let started = Console.now()
            for _ in 0..<max(1, steps) { try step() }
            let local = (Console.now() - started) / Double(max(1, steps))
            let stepSeconds = try comm.allReduceMax(local)
            let exposed = try comm.allReduceMax(parallel.exposedCommunicationSeconds / Double(max(1, steps)))
            report.add("classifier step \(arch) \(resolution)px", Double(batch) / stepSeconds, "images/s",
                       [("step_ms", .double(stepSeconds * 1000))])
            report.add("in gradient all-reduce calls (incl. waiting for the slowest rank)", 100 * exposed / stepSeconds, "% of step", [("ms", .double(exposed * 1000))])
            // The same gradients all-reduced without overlap, for scale.
            for (_, p) in parameters { p.grad = Tensor.zeros(p.shape) }
            try comm.barrier()
            let flatStart = Console.now()
            try parallel.allReduceGradients()
            let flat = try comm.allReduceMax(Console.now() - flatStart)
            report.add("flat all-reduce of all gradients (\(Console.bytes(model.parameterCount * 4)))", 100 * flat / stepSeconds, "% of step",
                       [("ms", .double(flat * 1000))])
            optimizer.zeroGrad()

            // Checkpoint of the model and the Adam state.
            let store = CheckpointStore(directory: directory, keep: 1)
            var tensors = model.stateDict().map { ("model." + $0.key, $0.tensor, $0.isInteger) }
            tensors += optimizer.stateTensors().map { ("optimizer." + $0.0, $0.1, false) }
            let content = CheckpointContent(step: 1, tensors: tensors, state: .object([]), config: .object([]))
            try store.save(content, communicator: comm)
            let save = store.lastSave
            let readStart = Console.now()
            _ = try store.resume("latest", communicator: comm, log: { _ in })
            let read = try comm.allReduceMax(Console.now() - readStart)
            report.add("checkpoint write", Double(save.payload) / save.seconds / 1e6, "MB/s",
                       [("bytes", JSONValue(save.payload)), ("seconds", .double(save.seconds))])
            report.add("checkpoint read + verify (every rank)", Double(save.payload) / read / 1e6, "MB/s", [("seconds", .double(read))])
            report.add("checkpoint size ratio (zstd)", Double(save.compressed) / Double(max(1, save.payload)), "x")
            if comm.isRoot { try? Files.remove(directory) }
            if comm.isRoot { report.print(json: json) }
        }
    }
}
