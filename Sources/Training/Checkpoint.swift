// Sharded checkpoints. One directory per step:
//   step-00001234/manifest.json           format, step, world size, configuration, trainer
//                                         state, each rank's state, shard list with XXH64
//                                         checksums, tensor index (dtype, shape, shard, offset)
//   step-00001234/shard-00000-of-00002.zst one zstd-compressed shard per rank
// Every rank writes its share of the tensors (balanced by size) at the same time; rank 0 writes
// the manifest last, into `step-N.partial/`, which is then renamed to `step-N/` (files fsynced
// first), so a directory that looks complete is complete. `latest` names the newest one, the
// oldest are removed beyond `keep`. Loading verifies the checksums; `latest` falls back to the
// previous complete checkpoint when the newest is damaged. Tensors are replicated state, so a
// checkpoint loads on any number of ranks.
import Common
import Communication
import TensorCore
import Zstd
#if canImport(Glibc)
import Glibc
#endif

public struct CheckpointError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public init(_ path: String, _ reason: String) {
        self.path = path
        self.reason = reason
    }
    public var description: String { "\(path): \(reason)" }
}

/// What a trainer saves.
public struct CheckpointContent {
    public var step: Int
    /// (name, tensor, stored as int64)
    public var tensors: [(String, Tensor, Bool)]
    /// Trainer state, identical on every rank (epoch, position, best metric, history, ...).
    public var state: JSONValue
    /// This rank's own state (random streams, ...).
    public var rankState: JSONValue
    /// The full configuration of the run.
    public var config: JSONValue

    public init(step: Int, tensors: [(String, Tensor, Bool)], state: JSONValue, rankState: JSONValue = .null, config: JSONValue) {
        self.step = step
        self.tensors = tensors
        self.state = state
        self.rankState = rankState
        self.config = config
    }
}

/// A verified checkpoint, read back.
public struct LoadedCheckpoint {
    public let path: String
    public let step: Int
    public let worldSize: Int
    public let manifest: JSONValue
    public let tensors: [String: Tensor]
    public var state: JSONValue { manifest["state"] ?? .null }
    public var config: JSONValue { manifest["config"] ?? .null }
    public var rankStates: [JSONValue] { manifest["ranks"]?.arrayValue ?? [] }
}

public final class CheckpointStore {
    public static let formatName = "viscoin-checkpoint"
    /// 2: the state is `{engine, job, optimizers}` and tensors are named `<part>.<key>` (named parts).
    public static let formatVersion = 2
    public let directory: String
    public let keep: Int
    /// zstd level of the shards.
    public var level: Int32 = 3
    /// Statistics of the last save (bytes before and after compression, seconds).
    public private(set) var lastSave: (payload: Int, compressed: Int, seconds: Double) = (0, 0, 0)

    public init(directory: String, keep: Int = 3) {
        self.directory = directory
        self.keep = max(1, keep)
    }

    public static func name(step: Int) -> String {
        let digits = String(step)
        return "step-" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits
    }

    static func shardName(_ rank: Int, _ world: Int) -> String {
        func pad(_ v: Int) -> String { let d = String(v); return String(repeating: "0", count: max(0, 5 - d.count)) + d }
        return "shard-\(pad(rank))-of-\(pad(world)).zst"
    }

    /// Which rank stores each tensor: greedy by size, so shards are balanced.
    static func assign(_ sizes: [Int], world: Int) -> [Int] {
        var load = [Int](repeating: 0, count: world)
        return sizes.map { size in
            let r = load.indices.min { load[$0] < load[$1] || (load[$0] == load[$1] && $0 < $1) }!
            load[r] += size
            return r
        }
    }

    // MARK: Saving

    /// Writes a checkpoint (collective: every rank calls it with the same tensors and state).
    @discardableResult
    public func save(_ content: CheckpointContent, communicator: any Communicator) throws -> String {
        let started = Console.now()
        let rank = communicator.rank, world = communicator.size
        let name = Self.name(step: content.step)
        let final = Files.join(directory, name), partial = final + ".partial"
        if rank == 0 {
            try Files.createDirectory(directory)
            try Files.remove(partial)
            try Files.createDirectory(partial)
        }
        try communicator.barrier()

        // This rank's shard.
        let sizes = content.tensors.map { $0.1.count * ($0.2 ? 8 : 4) }
        let owner = Self.assign(sizes, world: world)
        var payload: [UInt8] = []
        payload.reserveCapacity(zip(sizes, owner).reduce(0) { $0 + ($1.1 == rank ? $1.0 : 0) })
        var offsets = [Int](repeating: 0, count: content.tensors.count)
        for (i, (_, tensor, isInteger)) in content.tensors.enumerated() where owner[i] == rank {
            offsets[i] = payload.count
            if isInteger {
                for k in 0..<tensor.count { withUnsafeBytes(of: Int64(tensor.data[k]).littleEndian) { payload.append(contentsOf: $0) } }
            } else {
                payload.append(contentsOf: UnsafeRawBufferPointer(start: tensor.data, count: tensor.count * 4))
            }
        }
        let compressed = try payload.withUnsafeBytes { try Zstd.compress($0, level: level) }
        let shardPath = Files.join(partial, Self.shardName(rank, world))
        try Files.writeAtomically(shardPath, bytes: compressed)
        let checksum = XXH64.hash(compressed)

        // Everything rank 0 needs for the manifest.
        let mine: JSONValue = .object([
            ("file", .string(Self.shardName(rank, world))), ("bytes", JSONValue(compressed.count)),
            ("payload_bytes", JSONValue(payload.count)), ("xxh64", .string(XXH64.hex(checksum))),
            ("offsets", .array(offsets.enumerated().filter { owner[$0.offset] == rank }.map { .array([JSONValue($0.offset), JSONValue($0.element)]) })),
            ("rank_state", content.rankState),
        ])
        let gathered = try communicator.allGather(string: mine.serialized())
        var totals = (payload: 0, compressed: 0)
        if rank == 0 {
            var shards: [JSONValue] = [], ranks: [JSONValue] = []
            var allOffsets = [Int](repeating: 0, count: content.tensors.count)
            for text in gathered {
                let value = try JSONValue.parse(text)
                shards.append(.object([("file", value["file"]!), ("bytes", value["bytes"]!), ("payload_bytes", value["payload_bytes"]!),
                                       ("xxh64", value["xxh64"]!)]))
                ranks.append(value["rank_state"] ?? .null)
                totals.payload += Int(value["payload_bytes"]?.intValue ?? 0)
                totals.compressed += Int(value["bytes"]?.intValue ?? 0)
                for pair in value["offsets"]?.arrayValue ?? [] {
                    if let i = pair.arrayValue?[0].intValue, let o = pair.arrayValue?[1].intValue { allOffsets[Int(i)] = Int(o) }
                }
            }
            let index: [JSONValue] = content.tensors.enumerated().map { i, entry in
                .object([("name", .string(entry.0)), ("dtype", .string(entry.2 ? "I64" : "F32")), ("shape", JSONValue(entry.1.shape)),
                         ("shard", JSONValue(owner[i])), ("offset", JSONValue(allOffsets[i])), ("bytes", JSONValue(sizes[i]))])
            }
            let manifest: JSONValue = .object([
                ("format", .string(Self.formatName)), ("version", JSONValue(Self.formatVersion)), ("step", JSONValue(content.step)),
                ("world_size", JSONValue(world)), ("created", .string(Console.timestamp())), ("config", content.config),
                ("state", content.state), ("ranks", .array(ranks)), ("shards", .array(shards)), ("tensors", .array(index)),
            ])
            try Files.writeAtomically(Files.join(partial, "manifest.json"), text: manifest.serialized(pretty: true) + "\n")
        }
        // Shards are durable on every rank before the directory becomes visible.
        try communicator.barrier()
        if rank == 0 {
            if Files.exists(final) { try Files.remove(final) }
            try Files.move(partial, to: final)
            Files.syncDirectory(directory)
            try Files.writeAtomically(Files.join(directory, "latest"), text: name + "\n")
            try prune(except: name)
        }
        try communicator.barrier()
        lastSave = (totals.payload, totals.compressed, Console.now() - started)
        return final
    }

    /// Removes complete checkpoints beyond `keep` (oldest first) and stale partial directories.
    func prune(except current: String) throws {
        let names = (try? Files.list(directory)) ?? []
        for partial in names where partial.hasSuffix(".partial") && partial != current + ".partial" {
            try? Files.remove(Files.join(directory, partial))
        }
        let complete = completeCheckpoints()
        if complete.count > keep {
            for old in complete.suffix(from: keep) where Files.lastComponent(of: old) != current { try Files.remove(old) }
        }
    }

    /// Complete checkpoint directories (with a manifest), newest step first.
    public func completeCheckpoints() -> [String] {
        let names = ((try? Files.list(directory)) ?? []).filter { $0.hasPrefix("step-") && !$0.hasSuffix(".partial") }
        return names.filter { Files.exists(Files.join(directory, $0 + "/manifest.json")) }.sorted(by: >).map { Files.join(directory, $0) }
    }

    // MARK: Loading

    /// Reads and verifies one checkpoint directory: manifest, shard sizes and checksums, tensor index.
    public static func load(_ path: String) throws -> LoadedCheckpoint {
        let manifestPath = Files.join(path, "manifest.json")
        guard Files.isDirectory(path) else { throw CheckpointError(path, "no such checkpoint directory") }
        guard Files.exists(manifestPath) else { throw CheckpointError(path, "incomplete checkpoint (no manifest.json)") }
        let manifest: JSONValue
        do { manifest = try JSONValue.parse(try Files.read(manifestPath)) } catch { throw CheckpointError(manifestPath, "\(error)") }
        guard manifest["format"]?.stringValue == formatName else { throw CheckpointError(manifestPath, "not a viscoin checkpoint manifest") }
        guard manifest["version"]?.intValue == Int64(formatVersion) else {
            let found = manifest["version"].map { $0.serialized() } ?? "none"
            if manifest["version"]?.intValue == 1 {
                throw CheckpointError(manifestPath, "checkpoint format 1 was written by an earlier viscoin whose trainer state this version does not read; "
                                      + "start the run again (or finish it with the viscoin that wrote it)")
            }
            throw CheckpointError(manifestPath, "unsupported checkpoint format version \(found) (this viscoin reads version \(formatVersion))")
        }
        guard let step = manifest["step"]?.intValue, let world = manifest["world_size"]?.intValue, world >= 1,
              let shards = manifest["shards"]?.arrayValue, shards.count == Int(world), let index = manifest["tensors"]?.arrayValue else {
            throw CheckpointError(manifestPath, "manifest lacks step, world_size, shards or tensors")
        }
        var payloads: [[UInt8]] = []
        for shard in shards {
            guard let file = shard["file"]?.stringValue, !file.contains("/"), let bytes = shard["bytes"]?.intValue,
                  let checksum = shard["xxh64"]?.stringValue, let payloadBytes = shard["payload_bytes"]?.intValue else {
                throw CheckpointError(manifestPath, "invalid shard entry \(shard.serialized())")
            }
            let shardPath = Files.join(path, file)
            guard Files.exists(shardPath) else { throw CheckpointError(shardPath, "shard file is missing") }
            let data = try Files.read(shardPath)
            guard data.count == Int(bytes) else { throw CheckpointError(shardPath, "shard is \(data.count) bytes, the manifest says \(bytes) (truncated?)") }
            guard XXH64.hex(XXH64.hash(data)) == checksum else { throw CheckpointError(shardPath, "shard checksum mismatch (the file is damaged)") }
            let payload: [UInt8]
            do { payload = try Zstd.decompress(data, source: shardPath) } catch { throw CheckpointError(shardPath, "\(error)") }
            guard payload.count == Int(payloadBytes) else { throw CheckpointError(shardPath, "shard holds \(payload.count) bytes, expected \(payloadBytes)") }
            payloads.append(payload)
        }
        var tensors: [String: Tensor] = [:]
        for entry in index {
            guard let name = entry["name"]?.stringValue, let dtype = entry["dtype"]?.stringValue,
                  let shapeValues = entry["shape"]?.arrayValue, let shard = entry["shard"]?.intValue, let offset = entry["offset"]?.intValue,
                  shard >= 0, shard < Int64(payloads.count), offset >= 0 else {
                throw CheckpointError(manifestPath, "invalid tensor entry \(entry.serialized())")
            }
            let shape = shapeValues.compactMap { $0.intValue.map(Int.init) }
            guard shape.count == shapeValues.count, shape.allSatisfy({ $0 >= 0 }) else { throw CheckpointError(manifestPath, "invalid shape of \(name)") }
            let count = shape.reduce(1, *), width = dtype == "I64" ? 8 : 4
            guard dtype == "I64" || dtype == "F32" else { throw CheckpointError(manifestPath, "unsupported dtype \(dtype) of \(name)") }
            let payload = payloads[Int(shard)]
            guard Int(offset) + count * width <= payload.count else { throw CheckpointError(manifestPath, "tensor \(name) lies outside its shard") }
            let tensor = Tensor(uninitializedShape: shape)
            payload.withUnsafeBytes { raw in
                for k in 0..<count {
                    if width == 8 {
                        tensor.data[k] = Float(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: Int(offset) + 8 * k, as: Int64.self)))
                    } else {
                        tensor.data[k] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: Int(offset) + 4 * k, as: UInt32.self)))
                    }
                }
            }
            tensors[name] = tensor
        }
        return LoadedCheckpoint(path: path, step: Int(step), worldSize: Int(world), manifest: manifest, tensors: tensors)
    }

    /// Resolves `latest` or a directory, verifies it, and loads it on every rank. With `latest`,
    /// a damaged newest checkpoint is reported and the previous complete one is used. Rank 0
    /// chooses; the others load the same directory.
    public func resume(_ spec: String, communicator: any Communicator, log: (String) -> Void) throws -> LoadedCheckpoint? {
        var chosen = ""
        var failure = ""
        if communicator.rank == 0 {
            var candidates: [String]
            if spec == "latest" {
                candidates = completeCheckpoints()
                if let pointer = try? Files.readText(Files.join(directory, "latest")).split(separator: "\n").first.map(String.init) {
                    let target = Files.join(directory, pointer)
                    candidates.removeAll { $0 == target }
                    if Files.isDirectory(target) { candidates.insert(target, at: 0) }
                }
                if candidates.isEmpty { log("resume: no checkpoint in \(directory) yet; starting from the beginning") }
            } else {
                candidates = [spec]
            }
            for candidate in candidates {
                do {
                    _ = try Self.load(candidate)
                    chosen = candidate
                    break
                } catch {
                    if spec != "latest" {
                        failure = "\(error)"
                        break
                    }
                    log("resume: checkpoint \(candidate) is damaged (\(error)); trying the previous one")
                }
            }
            if chosen.isEmpty && failure.isEmpty && !candidates.isEmpty {
                failure = "no valid checkpoint in \(directory): every candidate is damaged"
            }
        }
        let decision = try communicator.broadcast(string: failure.isEmpty ? "ok\n" + chosen : "error\n" + failure)
        let parts = decision.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        if parts[0] == "error" { throw CheckpointError(spec, parts.count > 1 ? parts[1] : "cannot resume") }
        guard parts.count > 1, !parts[1].isEmpty else { return nil }
        return try Self.load(parts[1])
    }
}
