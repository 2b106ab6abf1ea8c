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
// Node-local storage (`useNodeLocalStorage`): the folder is on each host's own disk. The ranks
// of one host share it; the lowest of them (the host's leader) does what rank 0 does on shared
// storage, so each host's folder holds its ranks' shards and a copy of the manifest. Resuming
// needs every shard in the folder of some rank of the new job: the same hosts again (any
// rank placement among them); each shard is read where it is and broadcast to the others.
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
    /// The lowest rank sharing this rank's folder: it creates, renames and prunes directories.
    public private(set) var leader = 0
    /// True when each host has its own folder (see the file header).
    public private(set) var isNodeLocal = false

    public init(directory: String, keep: Int = 3) {
        self.directory = directory
        self.keep = max(1, keep)
    }

    public static func name(step: Int) -> String {
        let digits = String(step)
        return "step-" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits
    }

    /// Switches to node-local storage (collective). Ranks with the same host name share a
    /// folder. Probe files check it: no rank may see the folder of a rank on another host (the
    /// folder would be shared, and two hosts would rename the same directories), and every rank
    /// must see those of the ranks with its host name (else two machines share a host name).
    public func useNodeLocalStorage(communicator: any Communicator) throws {
        isNodeLocal = true
        let me = communicator.rank
        let hosts = try communicator.allGather(string: communicator.hostName)
        leader = hosts.firstIndex(of: hosts[me])!
        guard communicator.size > 1 else { return }
        let token = try communicator.broadcast(string: String(UInt64.random(in: 0...UInt64.max), radix: 16))
        let prefix = ".probe-\(token)-"
        let probe = Files.join(directory, prefix + "\(me)")
        try Files.createDirectory(directory)
        try Files.writeAtomically(probe, text: hosts[me] + "\n")
        try communicator.barrier()
        let seen = Set(((try? Files.list(directory)) ?? []).compactMap { name -> Int? in
            guard name.hasPrefix(prefix), let r = Int(name.dropFirst(prefix.count)), r >= 0, r < hosts.count else { return nil }
            return r
        })
        try communicator.barrier()
        try? Files.remove(probe)
        var problem = ""
        if let other = seen.sorted().first(where: { hosts[$0] != hosts[me] }) {
            problem = "this folder is shared between hosts (\(hosts[me]) sees the folder of \(hosts[other])); drop --node-local-checkpoints for shared storage"
        } else if let peer = hosts.indices.first(where: { hosts[$0] == hosts[me] && !seen.contains($0) }) {
            problem = "ranks \(me) and \(peer) both run on a host named \(hosts[me]) but do not share this folder: the machines need distinct host names"
        }
        let problems = try communicator.allGather(string: problem)
        if let first = problems.first(where: { !$0.isEmpty }) {
            throw CheckpointError(directory, "--node-local-checkpoints: " + first)
        }
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
        let leads = rank == leader
        if leads {
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
        var manifestText = ""
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
            manifestText = manifest.serialized(pretty: true) + "\n"
        }
        if isNodeLocal && world > 1 { manifestText = try communicator.broadcast(string: manifestText) }
        if leads { try Files.writeAtomically(Files.join(partial, "manifest.json"), text: manifestText) }
        // Shards are durable on every rank before the directory becomes visible.
        try communicator.barrier()
        if leads {
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

    /// Removes complete checkpoints beyond `keep` (oldest first), stale partial directories and
    /// step directories without a manifest (what an interrupted removal leaves). A checkpoint is
    /// renamed to `.partial` before it is deleted, so an interruption never leaves a directory
    /// that looks like a checkpoint but is not one.
    func prune(except current: String) throws {
        let names = (try? Files.list(directory)) ?? []
        for name in names where name.hasPrefix("step-") && name != current {
            let path = Files.join(directory, name)
            if name.hasSuffix(".partial") ? name != current + ".partial" : !Files.exists(Files.join(path, "manifest.json")) {
                try? Files.remove(path)
            }
        }
        let complete = completeCheckpoints()
        if complete.count > keep {
            for old in complete.suffix(from: keep) where Files.lastComponent(of: old) != current {
                let doomed = old + ".partial"
                try? Files.remove(doomed)
                try Files.move(old, to: doomed)
                try Files.remove(doomed)
            }
        }
    }

    /// Removes every checkpoint of this folder (`step-*`, `latest`) and nothing else: the
    /// folder may be one the user also keeps other files in (--checkpoint-dir).
    public func removeAll() throws {
        for name in (try? Files.list(directory)) ?? [] where name.hasPrefix("step-") || name == "latest" {
            try Files.remove(Files.join(directory, name))
        }
    }

    /// Complete checkpoint directories (with a manifest), newest step first.
    public func completeCheckpoints() -> [String] {
        let names = ((try? Files.list(directory)) ?? []).filter { $0.hasPrefix("step-") && !$0.hasSuffix(".partial") }
        return names.filter { Files.exists(Files.join(directory, $0 + "/manifest.json")) }.sorted(by: >).map { Files.join(directory, $0) }
    }

    // MARK: Loading

    /// A checkpoint's manifest, checked for its structure.
    struct Manifest {
        var path: String
        var json: JSONValue
        var step: Int
        var worldSize: Int
        /// (file, bytes, xxh64, payload bytes) per rank's shard.
        var shards: [(file: String, bytes: Int, checksum: String, payloadBytes: Int)]
        var index: [JSONValue]
        var file: String { Files.join(path, "manifest.json") }
    }

    static func readManifest(_ path: String) throws -> Manifest {
        let manifestPath = Files.join(path, "manifest.json")
        guard Files.isDirectory(path) else { throw CheckpointError(path, "no such checkpoint directory") }
        guard Files.exists(manifestPath) else { throw CheckpointError(path, "incomplete checkpoint (no manifest.json)") }
        return try parseManifest(try Files.read(manifestPath, maxBytes: 1 << 30), path: path)
    }

    /// Checks a manifest's text (of the checkpoint directory `path`).
    static func parseManifest(_ bytes: [UInt8], path: String) throws -> Manifest {
        let manifestPath = Files.join(path, "manifest.json")
        let manifest: JSONValue
        do { manifest = try JSONValue.parse(bytes) } catch { throw CheckpointError(manifestPath, "\(error)") }
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
        guard step >= 0, world <= 1 << 20 else { throw CheckpointError(manifestPath, "step \(step) or world_size \(world) is out of range") }
        var entries: [(file: String, bytes: Int, checksum: String, payloadBytes: Int)] = []
        for shard in shards {
            guard let file = shard["file"]?.stringValue, !file.contains("/"), file != "..", let bytes = shard["bytes"]?.intValue, bytes >= 0,
                  let checksum = shard["xxh64"]?.stringValue, let payloadBytes = shard["payload_bytes"]?.intValue, payloadBytes >= 0, payloadBytes < 1 << 40 else {
                throw CheckpointError(manifestPath, "invalid shard entry \(shard.serialized())")
            }
            entries.append((file, Int(bytes), checksum, Int(payloadBytes)))
        }
        return Manifest(path: path, json: manifest, step: Int(step), worldSize: Int(world), shards: entries, index: index)
    }

    /// Reads, verifies and decompresses shard `i` of a checkpoint.
    static func readShard(_ manifest: Manifest, _ i: Int) throws -> [UInt8] {
        let shard = manifest.shards[i]
        let shardPath = Files.join(manifest.path, shard.file)
        guard Files.exists(shardPath) else { throw CheckpointError(shardPath, "shard file is missing") }
        let data = try Files.read(shardPath)
        guard data.count == shard.bytes else { throw CheckpointError(shardPath, "shard is \(data.count) bytes, the manifest says \(shard.bytes) (truncated?)") }
        guard XXH64.hex(XXH64.hash(data)) == shard.checksum else { throw CheckpointError(shardPath, "shard checksum mismatch (the file is damaged)") }
        let payload: [UInt8]
        do { payload = try Zstd.decompress(data, source: shardPath) } catch { throw CheckpointError(shardPath, "\(error)") }
        guard payload.count == shard.payloadBytes else { throw CheckpointError(shardPath, "shard holds \(payload.count) bytes, expected \(shard.payloadBytes)") }
        return payload
    }

    /// The tensors of a checkpoint from its manifest and every shard's payload.
    static func decode(_ manifest: Manifest, payloads: [[UInt8]]) throws -> LoadedCheckpoint {
        let manifestPath = manifest.file
        var tensors: [String: Tensor] = [:]
        for entry in manifest.index {
            guard let name = entry["name"]?.stringValue, let dtype = entry["dtype"]?.stringValue,
                  let shapeValues = entry["shape"]?.arrayValue, let shard = entry["shard"]?.intValue, let offset = entry["offset"]?.intValue,
                  shard >= 0, shard < Int64(payloads.count), offset >= 0 else {
                throw CheckpointError(manifestPath, "invalid tensor entry \(entry.serialized())")
            }
            let shape = shapeValues.compactMap { $0.intValue.map(Int.init) }
            guard shape.count == shapeValues.count, shape.allSatisfy({ $0 >= 0 }) else { throw CheckpointError(manifestPath, "invalid shape of \(name)") }
            let width = dtype == "I64" ? 8 : 4
            guard dtype == "I64" || dtype == "F32" else { throw CheckpointError(manifestPath, "unsupported dtype \(dtype) of \(name)") }
            let payload = payloads[Int(shard)]
            // Sizes from the manifest are checked without overflow before any is used.
            var count = 1
            for d in shape {
                let (product, overflow) = count.multipliedReportingOverflow(by: d)
                guard !overflow, product <= payload.count else { throw CheckpointError(manifestPath, "tensor \(name) lies outside its shard") }
                count = product
            }
            guard Int(offset) <= payload.count, count * width <= payload.count - Int(offset) else {
                throw CheckpointError(manifestPath, "tensor \(name) lies outside its shard")
            }
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
        return LoadedCheckpoint(path: manifest.path, step: manifest.step, worldSize: manifest.worldSize, manifest: manifest.json, tensors: tensors)
    }

    /// Reads and verifies one checkpoint directory: manifest, shard sizes and checksums, tensor index.
    public static func load(_ path: String) throws -> LoadedCheckpoint {
        let manifest = try readManifest(path)
        return try decode(manifest, payloads: try manifest.shards.indices.map { try readShard(manifest, $0) })
    }

    /// Resolves `latest` or a directory, verifies it, and loads it on every rank. With `latest`,
    /// a damaged newest checkpoint is reported and the previous complete one is used. Rank 0
    /// chooses; the others load the same directory.
    public func resume(_ spec: String, communicator: any Communicator, log: (String) -> Void) throws -> LoadedCheckpoint? {
        if isNodeLocal && communicator.size > 1 { return try resumeNodeLocal(spec, communicator: communicator, log: log) }
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
        if parts[0] == "error" { throw TrainingError(parts.count > 1 ? parts[1] : "\(spec): cannot resume") }
        guard parts.count > 1, !parts[1].isEmpty else { return nil }
        return try Self.load(parts[1])
    }

    /// Resume from node-local folders: candidates are every host's complete checkpoints, newest
    /// first; each host's leader verifies the shards it holds; the first candidate whose shards
    /// are all on some host of this job is loaded, each shard read by the lowest rank holding it
    /// and broadcast to the others.
    func resumeNodeLocal(_ spec: String, communicator: any Communicator, log: (String) -> Void) throws -> LoadedCheckpoint? {
        let rank = communicator.rank
        var candidates: [String]
        if spec == "latest" {
            let mine = rank == leader ? completeCheckpoints().map { Files.lastComponent(of: $0) } : []
            let all = try communicator.allGather(string: mine.joined(separator: "\n"))
            candidates = Set(all.flatMap { $0.split(separator: "\n").map(String.init) }).sorted(by: >).map { Files.join(directory, $0) }
            if candidates.isEmpty {
                log("resume: no checkpoint in \(directory) on any host yet; starting from the beginning")
                return nil
            }
        } else {
            candidates = [spec]
        }
        for candidate in candidates {
            var held: [Int: [UInt8]] = [:]
            var manifest: Manifest? = nil
            var manifestHash = ""
            var problem = ""
            // A checkpoint this host does not have is normal; anything else wrong is reported.
            if rank == leader && Files.isDirectory(candidate) {
                do {
                    let m = try Self.readManifest(candidate)
                    manifest = m
                    manifestHash = XXH64.hex(XXH64.hash(try Files.read(m.file, maxBytes: 1 << 30)))
                    for i in m.shards.indices where Files.exists(Files.join(candidate, m.shards[i].file)) {
                        do { held[i] = try Self.readShard(m, i) } catch { problem = "\(error)" }
                    }
                } catch {
                    problem = "\(error)"
                }
            }
            let report = "\(manifest?.worldSize ?? 0)|" + held.keys.sorted().map(String.init).joined(separator: ",") + "|\(manifestHash)|" + problem
            let reports = try communicator.allGather(string: report).map { $0.split(separator: "|", maxSplits: 3, omittingEmptySubsequences: false).map(String.init) }
            // Rank 0 decides for everyone: which rank provides the manifest and each shard. Only
            // hosts holding the same manifest (same bytes) count, so shards of a stale checkpoint
            // of the same name are never mixed in.
            var decision = ""
            if rank == 0 {
                let provider = reports.firstIndex { Int($0[0]) ?? 0 > 0 }
                let world = provider.map { Int(reports[$0][0])! } ?? 0
                var owners = [Int](repeating: -1, count: world)
                for (r, fields) in reports.enumerated() where provider != nil && fields.count > 2 && fields[2] == reports[provider!][2] {
                    for i in fields[1].split(separator: ",").compactMap({ Int($0) }) where i < world && owners[i] < 0 { owners[i] = r }
                }
                let problems = reports.map { $0.count > 3 ? $0[3] : "" }.filter { !$0.isEmpty }
                if let provider, owners.allSatisfy({ $0 >= 0 }) {
                    decision = "ok\n\(provider)\n" + owners.map(String.init).joined(separator: ",")
                } else {
                    let missing = owners.enumerated().filter { $0.element < 0 }.map { String($0.offset) }
                    var why = world == 0 ? "found on no host" : "shard(s) \(missing.joined(separator: ", ")) of \(world) are on no host of this job"
                    if let first = problems.first { why += " (\(first))" }
                    why += "; node-local checkpoints resume where their shards are: start the job on the same hosts"
                    decision = (spec == "latest" ? "skip\n" : "error\n") + why
                }
            }
            let parts = try communicator.broadcast(string: decision).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            switch parts[0] {
            case "error": throw CheckpointError(candidate, parts.dropFirst().joined(separator: "\n"))
            case "skip":
                log("resume: checkpoint \(candidate) cannot be used (\(parts.dropFirst().joined(separator: " "))); trying the previous one")
                continue
            default: break
            }
            let provider = Int(parts[1])!, owners = parts[2].split(separator: ",").map { Int($0)! }
            let text = try communicator.broadcast(bytes: rank == provider ? (try Files.read(manifest!.file, maxBytes: 1 << 30)) : [], root: provider)
            var payloads: [[UInt8]] = []
            for (i, owner) in owners.enumerated() {
                payloads.append(try communicator.broadcast(bytes: rank == owner ? held[i]! : [], root: owner))
            }
            // Every rank decodes the same bytes, so all agree on a failure.
            do {
                return try Self.decode(try Self.parseManifest(text, path: candidate), payloads: payloads)
            } catch {
                guard spec == "latest" else { throw error }
                log("resume: checkpoint \(candidate) is damaged (\(error)); trying the previous one")
            }
        }
        throw CheckpointError(directory, "no usable checkpoint on the hosts of this job: every candidate is incomplete or damaged")
    }
}
