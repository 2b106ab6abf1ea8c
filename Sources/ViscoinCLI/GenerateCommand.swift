// `viscoin generate`: images from a StyleGAN2 generator (seeds or latents read from a file),
// written as individual PNGs, a grid, and optionally the raw float output (safetensors), like
// stylegan2-ada's generate.py. Seeds are split across ranks.
import ArgumentParser
import Common
import Communication
import ImageCodecs
import Models
import SafeTensors
import TensorCore

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate images with a StyleGAN2 generator.",
        discussion: """
            z for seed s is drawn from this project's counter-based generator (seed s), not NumPy's
            RandomState: to compare with another implementation, pass --latents FILE with a tensor
            "z" [N, z_dim] (or "ws" [N, num_ws, w_dim]).
            """)

    @Option(help: "Generator weight file (viscoin convert / train-gan).") var network: String
    @Option(help: "Seeds, e.g. 0-15 or 1,5,9.") var seeds = "0-7"
    @Option(help: "Safetensors file with \"z\" [N, z_dim] or \"ws\" [N, num_ws, w_dim] (overrides --seeds).") var latents: String?
    @Option(help: "Truncation psi.") var trunc: Float = 1
    @Option(help: "Truncation cutoff (number of ws truncated; default all).") var truncCutoff: Int?
    @Option(help: "Noise mode: const, random, none.") var noiseMode = "const"
    @Option(help: "Output directory.") var outdir: String
    @Option(help: "Images per forward pass.") var batch = 4
    @Flag(help: "Also write the raw float images to images.safetensors.") var raw = false
    @OptionGroup var runtime: RuntimeOptions

    static func parseSeeds(_ text: String) throws -> [Int] {
        var out: [Int] = []
        for part in text.split(separator: ",") {
            let bounds = part.split(separator: "-")
            if bounds.count == 2, let a = Int(bounds[0]), let b = Int(bounds[1]), a <= b {
                out.append(contentsOf: a...b)
            } else if bounds.count == 1, let a = Int(bounds[0]) {
                out.append(a)
            } else {
                throw ValidationError("invalid --seeds '\(text)': use a range 0-15 or a list 1,5,9")
            }
        }
        guard !out.isEmpty, out.allSatisfy({ $0 >= 0 }) else { throw ValidationError("--seeds must list non-negative integers") }
        return out
    }

    func validate() throws {
        _ = try Self.parseSeeds(seeds)
        guard ["const", "random", "none"].contains(noiseMode) else { throw ValidationError("--noise-mode must be const, random or none") }
        guard batch > 0 else { throw ValidationError("--batch must be positive") }
    }

    func run() throws {
        let options = self
        try Runtime.run(threads: runtime.threads) { comm, _ in
            let (module, _) = try ModelFile.load(options.network, expecting: .generator)
            let g = module as! Generator
            g.eval()
            let zDim = g.config.zDim
            var zs: [Tensor] = [], names: [String] = []
            var wsInput: Tensor? = nil
            if let path = options.latents {
                let file = try SafeTensorsFile(path: path)
                if file.contains("ws") {
                    let info = try file.info("ws")
                    guard info.shape.count == 3, info.shape[1] == g.synthesis.numWs, info.shape[2] == g.config.wDim else {
                        throw ValidationError("\(path): ws must be [N, \(g.synthesis.numWs), \(g.config.wDim)], found \(info.shape)")
                    }
                    wsInput = Tensor(try file.floats("ws"), shape: info.shape)
                    names = (0..<info.shape[0]).map { String(format4: $0, prefix: "latent") }
                } else {
                    let info = try file.info("z")
                    guard info.shape.count == 2, info.shape[1] == zDim else { throw ValidationError("\(path): z must be [N, \(zDim)], found \(info.shape)") }
                    let all = Tensor(try file.floats("z"), shape: info.shape)
                    zs = (0..<info.shape[0]).map { all.slice(dim: 0, start: $0, end: $0 + 1) }
                    names = (0..<info.shape[0]).map { String(format4: $0, prefix: "latent") }
                }
            } else {
                let seeds = try Self.parseSeeds(options.seeds)
                zs = seeds.map { RandomGenerator(seed: UInt64($0)).normal([1, zDim]) }
                names = seeds.map { String(format4: $0, prefix: "seed") }
            }
            let count = wsInput?.shape[0] ?? zs.count
            if comm.isRoot { try Files.createDirectory(options.outdir) }
            try comm.barrier()
            let noiseGenerator = RandomGenerator(seed: 0, stream: UInt64(comm.rank))
            let noise: NoiseMode = options.noiseMode == "const" ? .const : (options.noiseMode == "random" ? .random(noiseGenerator) : .none)
            var mine: [(Int, Tensor)] = []
            let indices = Array(stride(from: comm.rank, to: count, by: comm.size))
            var start = 0
            while start < indices.count {
                let part = Array(indices[start..<min(indices.count, start + options.batch)])
                let images: Tensor = noGrad {
                    if let wsInput {
                        return g.synthesis(wsInput.indexSelect(dim: 0, part), noise: noise)
                    }
                    let z = concatenate(part.map { zs[$0] }, dim: 0)
                    return g(z, truncationPsi: options.trunc, truncationCutoff: options.truncCutoff, noise: noise).image
                }
                for (k, index) in part.enumerated() { mine.append((index, images.slice(dim: 0, start: k, end: k + 1))) }
                start += options.batch
            }
            for (index, image) in mine {
                try ImageCodec.write(ImageTensors.images(fromGenerated: image)[0], path: "\(options.outdir)/\(names[index]).png")
            }
            // Gather every image on rank 0 for the grid and the raw file.
            let local = mine.flatMap { [Float(Float($0.0))] + $0.1.toArray() }
            let gathered = try comm.allGather(variable: local.withUnsafeBytes { Array($0) })
            if comm.isRoot {
                let r = g.config.resolution, perImage = 1 + 3 * r * r
                var ordered = [Tensor?](repeating: nil, count: count)
                for bytes in gathered {
                    let floats = bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
                    for k in 0..<(floats.count / perImage) {
                        let chunk = Array(floats[(k * perImage)..<((k + 1) * perImage)])
                        ordered[Int(chunk[0])] = Tensor(Array(chunk.dropFirst()), shape: [1, 3, r, r])
                    }
                }
                let all = concatenate(ordered.compactMap { $0 }, dim: 0)
                let images = ImageTensors.images(fromGenerated: all)
                let columns = Int(Double(images.count).squareRoot().rounded(.up))
                if let grid = RGBImage.grid(images, columns: columns) { try ImageCodec.write(grid, path: "\(options.outdir)/grid.png") }
                if options.raw {
                    var writer = SafeTensorsWriter()
                    try writer.add(name: "images", shape: all.shape, floats: all.toArray())
                    writer.metadata = [("names", names.joined(separator: ",")), ("truncation_psi", "\(options.trunc)"), ("noise_mode", options.noiseMode)]
                    try writer.write(to: "\(options.outdir)/images.safetensors")
                }
                Console.print("generated \(count) images of \(r)x\(r) in \(options.outdir) (grid.png\(options.raw ? ", images.safetensors" : ""))")
            }
            try comm.sleepingBarrier()
        }
    }
}

extension String {
    /// "seed0007"-style names.
    init(format4 value: Int, prefix: String) {
        let digits = String(value)
        self = prefix + String(repeating: "0", count: Swift.max(0, 4 - digits.count)) + digits
    }
}
