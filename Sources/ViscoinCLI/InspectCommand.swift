// `viscoin inspect FILE`: the tensors (name, dtype, shape), metadata, model configuration and
// parameter count of a safetensors or viscoin weight file.
import ArgumentParser
import Common
import Models
import SafeTensors

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show the tensors, metadata, configuration and parameter count of a weight file.")

    @Argument(help: "A .safetensors file (optionally zstd-compressed).") var path: String
    @Option(help: "Show at most this many tensors (0 = all).") var limit = 0

    func run() throws {
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
}
