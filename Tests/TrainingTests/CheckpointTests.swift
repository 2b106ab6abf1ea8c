// Checkpoints on one process: round trip, verification of damaged and truncated shards,
// fall-back to the previous checkpoint, keep-K, incomplete directories.
import Common
import Communication
import TensorCore
import Testing
import Training

@Suite(.serialized) struct CheckpointTests {
    func content(step: Int) -> CheckpointContent {
        let rng = RandomGenerator(seed: UInt64(step))
        return CheckpointContent(step: step, tensors: [
            ("model.weight", rng.normal([64, 33]), false), ("model.num_batches_tracked", Tensor([Float(step)], shape: []), true),
            ("optimizer.weight.exp_avg", rng.normal([64, 33]), false), ("model.bias", rng.normal([7]), false),
        ], state: .object([("step", JSONValue(step)), ("epoch", 1)]), rankState: .object([("rank", 0)]),
        config: .object([("job", "test")]))
    }

    func temporary() throws -> String {
        let dir = "/tmp/viscoin-ckpt-\(UInt64.random(in: 0...UInt64.max))"
        try Files.createDirectory(dir)
        return dir
    }

    @Test func roundTripAndKeepLast() throws {
        let dir = try temporary()
        defer { try? Files.remove(dir) }
        let store = CheckpointStore(directory: dir, keep: 2)
        let comm = SingleProcessCommunicator()
        for step in [10, 20, 30] { try store.save(content(step: step), communicator: comm) }
        #expect(store.completeCheckpoints().map { Files.lastComponent(of: $0) } == ["step-00000030", "step-00000020"])
        #expect(try Files.readText(Files.join(dir, "latest")) == "step-00000030\n")
        let loaded = try #require(try store.resume("latest", communicator: comm, log: { _ in }))
        #expect(loaded.step == 30 && loaded.state["epoch"]?.intValue == 1 && loaded.rankStates.count == 1)
        let expected = content(step: 30)
        for (name, tensor, _) in expected.tensors {
            #expect(loaded.tensors[name]?.shape == tensor.shape)
            #expect(loaded.tensors[name]?.toArray() == tensor.toArray(), "\(name)")
        }
    }

    @Test func pruneCleansLeftoversAndRemoveAllKeepsOtherFiles() throws {
        let dir = try temporary()
        defer { try? Files.remove(dir) }
        let store = CheckpointStore(directory: dir, keep: 2)
        let comm = SingleProcessCommunicator()
        try Files.writeAtomically(Files.join(dir, "notes.txt"), text: "mine\n")
        // What an interrupted removal leaves: a step folder without its manifest.
        try Files.createDirectory(Files.join(dir, "step-00000001"))
        try Files.writeAtomically(Files.join(dir, "step-00000001/shard-00000-of-00001.zst"), text: "x")
        for step in [10, 20, 30] { try store.save(content(step: step), communicator: comm) }
        #expect(try Files.list(dir).sorted() == ["latest", "notes.txt", "step-00000020", "step-00000030"])
        // --force in a --checkpoint-dir the user also keeps other files in.
        try store.removeAll()
        #expect(try Files.list(dir) == ["notes.txt"])
    }

    @Test func damagedNewestFallsBackToThePrevious() throws {
        let dir = try temporary()
        defer { try? Files.remove(dir) }
        let store = CheckpointStore(directory: dir, keep: 3)
        let comm = SingleProcessCommunicator()
        for step in [1, 2] { try store.save(content(step: step), communicator: comm) }
        let shard = Files.join(dir, "step-00000002/shard-00000-of-00001.zst")
        var bytes = try Files.read(shard)
        bytes[bytes.count / 2] ^= 0x40
        try Files.writeAtomically(shard, bytes: bytes)
        #expect { try CheckpointStore.load(Files.join(dir, "step-00000002")) } throws: { "\($0)".contains("checksum mismatch") }
        var messages: [String] = []
        let loaded = try #require(try store.resume("latest", communicator: comm, log: { messages.append($0) }))
        #expect(loaded.step == 1)
        #expect(messages.contains { $0.contains("step-00000002 is damaged") && $0.contains("trying the previous one") }, "\(messages)")
        // An explicit directory does not fall back.
        #expect { try store.resume(Files.join(dir, "step-00000002"), communicator: comm, log: { _ in }) } throws: { "\($0)".contains("checksum") }
        // Truncation, a missing shard and a missing manifest are errors too.
        try Files.writeAtomically(shard, bytes: Array(bytes.prefix(10)))
        #expect { try CheckpointStore.load(Files.join(dir, "step-00000002")) } throws: { "\($0)".contains("truncated") }
        try Files.remove(shard)
        #expect { try CheckpointStore.load(Files.join(dir, "step-00000002")) } throws: { "\($0)".contains("shard file is missing") }
        try Files.remove(Files.join(dir, "step-00000002/manifest.json"))
        #expect { try CheckpointStore.load(Files.join(dir, "step-00000002")) } throws: { "\($0)".contains("incomplete checkpoint") }
        // A directory without manifest is not a candidate at all.
        #expect(store.completeCheckpoints().count == 1)
    }

    @Test func noCheckpointYetStartsFresh() throws {
        let dir = try temporary()
        defer { try? Files.remove(dir) }
        var messages: [String] = []
        let store = CheckpointStore(directory: Files.join(dir, "none"))
        #expect(try store.resume("latest", communicator: SingleProcessCommunicator(), log: { messages.append($0) }) == nil)
        #expect(messages.first?.contains("starting from the beginning") == true)
    }
}
