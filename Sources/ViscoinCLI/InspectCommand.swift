// `viscoin inspect FILE|CHECKPOINT`: the tensors (name, dtype, shape), metadata, model
// configuration and parameter count of a safetensors or viscoin weight file; or a training
// checkpoint directory (verified: every shard's size and checksum), with content hashes.
import ArgumentParser
import Common
import Models
import SafeTensors
import TensorCore
import Training

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show a weight file (tensors, configuration, parameter count) or verify and show a checkpoint.")

    @Argument(help: "A .safetensors file (optionally zstd-compressed), or a checkpoint directory (RUN/checkpoints/step-N, or RUN/checkpoints for the latest).")
    var path: String
    @Option(help: "Show at most this many tensors (0 = all).") var limit = 0
    @Flag(help: "Checkpoints: print an XXH64 hash of the tensors of each group (model, optimizer, ...).") var hash = false

    func run() throws {
        if Files.isDirectory(path) {
            try inspectCheckpoint()
            return
        }
        let file: SafeTensorsFile
        do {
            file = try SafeTensorsFile(path: path)
        } catch {
            Console.error("error: \(error)")
            throw ExitCode(1)
        }
        var out = "\(path): \(file.tensors.count) tensors, \(Console.bytes(try Files.fileSize(path)))\n"
        if let spec = try? ModelFile.spec(of: file) {
            out += "model: \(spec.kind.rawValue)\nconfiguration: \(spec.config.serialized(pretty: true))\n"
        }
        for (key, value) in file.metadata.sorted(by: { $0.key < $1.key }) where key != ModelFile.configKey {
            out += "metadata \(key): \(value.count > 200 ? String(value.prefix(200)) + "..." : value)\n"
        }
        var floats = 0
        let shown = limit > 0 ? Array(file.tensors.sorted { $0.name < $1.name }.prefix(limit)) : file.tensors.sorted { $0.name < $1.name }
        let rows = shown.map { [$0.name, $0.dtype.rawValue, "\($0.shape)", "\($0.elementCount)"] }
        for t in file.tensors where t.dtype.isFloatingPoint { floats += t.elementCount }
        out += Console.table(header: ["tensor", "dtype", "shape", "elements"], rows: rows)
        if shown.count < file.tensors.count { out += "... \(file.tensors.count - shown.count) more\n" }
        out += "floating-point values: \(floats)\n"
        Console.print(out, terminator: "")
    }

    func inspectCheckpoint() throws {
        var directory = path
        if !Files.exists(Files.join(path, "manifest.json")) {
            let store = CheckpointStore(directory: path)
            guard let newest = store.completeCheckpoints().first else {
                Console.error("error: \(path): neither a checkpoint (no manifest.json) nor a folder of checkpoints")
                throw ExitCode(1)
            }
            directory = newest
        }
        let loaded: LoadedCheckpoint
        do {
            loaded = try CheckpointStore.load(directory)
            // What resume would reject, inspect reports.
            try CheckpointChecks.validate(loaded)
        } catch {
            Console.error("error: \(error)")
            throw ExitCode(1)
        }
        var out = "\(directory): checkpoint of step \(loaded.step), written by \(loaded.worldSize) rank(s) at \(loaded.manifest["created"]?.stringValue ?? "?")\n"
        out += "verified: \(loaded.manifest["shards"]?.arrayValue?.count ?? 0) shard(s), sizes and XXH64 checksums match\n"
        if let job = loaded.config["job"]?.stringValue { out += "job: \(job)\n" }
        // The engine's counters and the job's scalar state (epoch, position, best score, ...).
        for part in ["engine", "job"] {
            for (key, value) in loaded.state[part]?.objectValue ?? [] {
                switch value {
                case .null, .array, .object: continue
                default: out += "\(key): \(value.serialized())\n"
                }
            }
        }
        let names = loaded.tensors.keys.sorted()
        var groups: [String: [String]] = [:]
        for name in names { groups[String(name.split(separator: ".").first ?? ""), default: []].append(name) }
        for (group, members) in groups.sorted(by: { $0.key < $1.key }) {
            let values = members.reduce(0) { $0 + loaded.tensors[$1]!.count }
            var line = "\(group): \(members.count) tensors, \(values) values"
            if hash {
                var h = XXH64()
                for name in members {
                    let t = loaded.tensors[name]!
                    h.update(Array(name.utf8))
                    h.update(UnsafeRawBufferPointer(start: t.data, count: t.count * 4))
                }
                line += ", xxh64 \(XXH64.hex(h.finalize()))"
            }
            out += line + "\n"
        }
        if limit > 0 {
            let rows = names.prefix(limit).map { [$0, "\(loaded.tensors[$0]!.shape)"] }
            out += Console.table(header: ["tensor", "shape"], rows: rows)
        }
        Console.print(out, terminator: "")
    }
}
