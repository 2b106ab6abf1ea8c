// Images from a StyleGAN2 generator, as stylegan2-ada's generate.py: latents from seeds (our
// counter-based generator, seed s -> z), or given z [N, z_dim] / ws [N, num_ws, w_dim]; the
// work shared out across ranks in batches and the images gathered on rank 0 in input order.
import Common
import Communication
import ImageCodecs
import Models
import SafeTensors
import TensorCore

public enum GeneratorSampling {
    public enum Latents {
        case seeds([Int])
        case z(Tensor)
        case ws(Tensor)

        public var count: Int {
            switch self {
            case .seeds(let s): return s.count
            case .z(let t), .ws(let t): return t.shape[0]
            }
        }

        /// File names: seed0007, latent0003.
        public var names: [String] {
            switch self {
            case .seeds(let s): return s.map { numbered("seed", $0) }
            case .z, .ws: return (0..<count).map { numbered("latent", $0) }
            }
        }
    }

    public enum NoiseChoice: String, ConfigurationChoice { case const, random, none }

    public struct SamplingError: Error, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    /// "0-15", "1,5,9" or a mix; at most `limit` seeds (a typo such as 0-99999999999 would
    /// otherwise allocate without bound).
    public static func parseSeeds(_ text: String, limit: Int = 1_000_000) throws -> [Int] {
        var out: [Int] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = part.split(separator: "-", omittingEmptySubsequences: false)
            if bounds.count == 2, let a = Int(bounds[0]), let b = Int(bounds[1]), a >= 0, a <= b {
                guard b - a < limit else { throw SamplingError(message: "--seeds '\(text)': the range \(part) holds more than \(limit) seeds") }
                out.append(contentsOf: a...b)
            } else if bounds.count == 2, let a = Int(bounds[0]), let b = Int(bounds[1]), a > b {
                throw SamplingError(message: "--seeds '\(text)': the range \(part) ends before it starts")
            } else if bounds.count == 1, let a = Int(bounds[0]), a >= 0 {
                out.append(a)
            } else {
                throw SamplingError(message: "--seeds '\(text)': use non-negative seeds as a range 0-15 or a list 1,5,9")
            }
            guard out.count <= limit else { throw SamplingError(message: "--seeds '\(text)': more than \(limit) seeds") }
        }
        guard !out.isEmpty else { throw SamplingError(message: "--seeds '\(text)' lists no seed") }
        return out
    }

    /// Reads "z" [N, z_dim] or "ws" [N, num_ws, w_dim] from a safetensors file, checked against `g`.
    public static func latents(file path: String, for g: Generator) throws -> Latents {
        let file = try SafeTensorsFile(path: path)
        if file.contains("ws") {
            let info = try file.info("ws")
            guard info.shape.count == 3, info.shape[0] > 0, info.shape[1] == g.synthesis.numWs, info.shape[2] == g.config.wDim else {
                throw SamplingError(message: "\(path): ws must be [N >= 1, \(g.synthesis.numWs), \(g.config.wDim)], found \(info.shape)")
            }
            let ws = Tensor(try file.floats("ws"), shape: info.shape)
            guard ws.toArray().allSatisfy(\.isFinite) else { throw SamplingError(message: "\(path): ws holds NaN or infinite values") }
            return .ws(ws)
        }
        guard file.contains("z") else { throw SamplingError(message: "\(path): no tensor named \"z\" or \"ws\"") }
        let info = try file.info("z")
        guard info.shape.count == 2, info.shape[0] > 0, info.shape[1] == g.config.zDim else {
            throw SamplingError(message: "\(path): z must be [N >= 1, \(g.config.zDim)], found \(info.shape)")
        }
        let z = Tensor(try file.floats("z"), shape: info.shape)
        guard z.toArray().allSatisfy(\.isFinite) else { throw SamplingError(message: "\(path): z holds NaN or infinite values") }
        return .z(z)
    }

    /// Generates every image (collective); rank 0 receives all of them in input order as one
    /// tensor [N, C, R, R], the other ranks nil.
    public static func generate(_ g: Generator, latents: Latents, truncation: Float = 1, truncationCutoff: Int? = nil,
                                noise: NoiseChoice = .const, batch: Int = 4, communicator comm: any Communicator) throws -> Tensor? {
        g.eval()
        let count = latents.count
        let noiseGenerator = RandomGenerator(seed: 0, stream: UInt64(comm.rank))
        let mode: NoiseMode = noise == .const ? .const : (noise == .random ? .random(noiseGenerator) : .none)
        var mine: [Float] = []
        let r = g.config.resolution, channels = g.config.imageChannels, perImage = 1 + channels * r * r
        for range in FIDPipeline.myBatches(count: count, batch: batch, communicator: comm) {
            let part = Array(range)
            let images: Tensor = noGrad {
                switch latents {
                case .ws(let ws): return g.synthesis(ws.indexSelect(dim: 0, part), noise: mode)
                case .z(let z): return g(z.indexSelect(dim: 0, part), truncationPsi: truncation, truncationCutoff: truncationCutoff, noise: mode).image
                case .seeds(let seeds):
                    let z = concatenate(part.map { RandomGenerator(seed: UInt64(seeds[$0])).normal([1, g.config.zDim]) }, dim: 0)
                    return g(z, truncationPsi: truncation, truncationCutoff: truncationCutoff, noise: mode).image
                }
            }
            let values = images.toArray()
            if let bad = values.firstIndex(where: { !$0.isFinite }) {
                let image = part[bad / (perImage - 1)]
                let which: String
                switch latents {
                case .seeds(let seeds): which = "seed \(seeds[image])"
                default: which = "latent \(image)"
                }
                throw SamplingError(message: "the generator's output for \(which) holds NaN or infinite values: the network diverged or its weights are damaged")
            }
            for (k, index) in part.enumerated() {
                mine.append(Float(index))
                mine += values[(k * (perImage - 1))..<((k + 1) * (perImage - 1))]
            }
        }
        let gathered = try comm.allGather(variable: mine.withUnsafeBytes { Array($0) })
        guard comm.isRoot else { return nil }
        let all = Tensor(uninitializedShape: [count, channels, r, r])
        for bytes in gathered {
            bytes.withUnsafeBytes { raw in
                let floats = raw.bindMemory(to: Float.self)
                for k in 0..<(floats.count / perImage) {
                    let index = Int(floats[k * perImage])
                    (all.data + index * (perImage - 1)).update(from: floats.baseAddress! + k * perImage + 1, count: perImage - 1)
                }
            }
        }
        return all
    }

    /// Writes one PNG per image, `grid.png`, and optionally the raw values (`images.safetensors`).
    public static func write(_ images: Tensor, names: [String], to directory: String, raw: Bool, metadata: [(String, String)] = []) throws {
        try Files.createDirectory(directory)
        let pictures = ImageTensors.images(fromGenerated: images)
        for (picture, name) in zip(pictures, names) { try ImageCodec.write(picture, path: Files.join(directory, name + ".png")) }
        let columns = Int(Double(pictures.count).squareRoot().rounded(.up))
        if let grid = RGBImage.grid(pictures, columns: columns) { try ImageCodec.write(grid, path: Files.join(directory, "grid.png")) }
        if raw {
            var writer = SafeTensorsWriter()
            try writer.add(name: "images", shape: images.shape, floats: images.toArray())
            writer.metadata = [("names", names.joined(separator: ","))] + metadata
            try writer.write(to: Files.join(directory, "images.safetensors"))
        }
    }

    static func numbered(_ prefix: String, _ value: Int) -> String {
        let digits = String(value)
        return prefix + String(repeating: "0", count: Swift.max(0, 4 - digits.count)) + digits
    }
}
