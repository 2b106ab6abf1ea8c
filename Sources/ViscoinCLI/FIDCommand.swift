// `viscoin fid`: Frechet Inception Distance (and optionally KID) between a folder of real images
// (or saved statistics) and a folder of generated images or a generator, as stylegan2-ada
// computes it: Inception-v3 pool features, Float64 statistics accumulated across ranks, Frechet
// distance through LAPACK eigendecompositions.
import ArgumentParser
import Common
import Communication
import ImageCodecs
import Metrics
import Models
import SafeTensors
import TensorCore

struct FIDCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fid",
        abstract: "FID (and KID) between real images and generated images or a generator.")

    @Option(help: "Folder of real images.") var real: String?
    @Option(help: "Saved real statistics (from --save-real-stats) instead of --real.") var realStats: String?
    @Option(help: "Save the real statistics here for later runs.") var saveRealStats: String?
    @Option(help: "Folder of generated images.") var fake: String?
    @Option(help: "Generator weight file to sample from instead of --fake.") var fakeNetwork: String?
    @Option(help: "Images to sample from --fake-network.") var num = 50_000
    @Option(help: "Truncation psi when sampling.") var trunc: Float = 1
    @Option(help: "Inception weight file (viscoin convert --model inception).") var detector: String
    @Option(help: "Input convention: nvidia (stylegan2-ada: [0,255], TF resize) or pytorch-fid.") var preprocessing = "nvidia"
    @Option(help: "Images per detector batch.") var batch = 16
    @Option(help: "Use at most this many images per side.") var maxItems: Int?
    @Flag(help: "Also compute KID (keeps all features in memory).") var kid = false
    @Option(help: "Write the result as JSON here.") var out: String?
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        guard (real == nil) != (realStats == nil) else { throw ValidationError("give exactly one of --real or --real-stats") }
        guard (fake == nil) != (fakeNetwork == nil) else { throw ValidationError("give exactly one of --fake or --fake-network") }
        guard ["nvidia", "pytorch-fid"].contains(preprocessing) else { throw ValidationError("--preprocessing must be nvidia or pytorch-fid") }
        guard batch > 0, num > 0 else { throw ValidationError("--batch and --num must be positive") }
    }

    func run() throws {
        let o = self
        try Runtime.run(threads: runtime.threads) { comm, _ in
            let (module, _) = try ModelFile.load(o.detector, expecting: .inception)
            let inception = module as! InceptionV3
            func features(_ images: Tensor) -> Tensor {
                noGrad { o.preprocessing == "nvidia" ? inception.features(images) : inception.pytorchFIDFeatures(images / 255) }
            }
            func folderStatistics(_ dir: String) throws -> FeatureStatistics {
                var files = try ImageFolder.list(dir)
                if let m = o.maxItems { files = Array(files.prefix(m)) }
                guard !files.isEmpty else { throw ValidationError("\(dir): no PNG, JPEG or TIFF images found") }
                let stats = FeatureStatistics(dimension: 2048, keepFeatures: o.kid)
                var pending: [RGBImage] = []
                func flush() {
                    if !pending.isEmpty { stats.append(features(ImageTensors.tensor(pending))) }
                    pending = []
                }
                let start = Console.now()
                for (k, i) in stride(from: comm.rank, to: files.count, by: comm.size).enumerated() {
                    let image = try ImageCodec.read(path: "\(dir)/\(files[i])")
                    if let first = pending.first, first.width != image.width || first.height != image.height { flush() }
                    pending.append(image)
                    if pending.count == o.batch { flush() }
                    if comm.isRoot && k > 0 && k % (o.batch * 20) == 0 {
                        Console.print("  \(dir): \(k * comm.size)/\(files.count) images, \(Console.fixed(Double(k) / (Console.now() - start), 1)) img/s per rank")
                    }
                }
                flush()
                try stats.allReduce(comm)
                return stats
            }
            let realStatistics: FeatureStatistics
            if let dir = o.real {
                realStatistics = try folderStatistics(dir)
            } else {
                realStatistics = try loadStatistics(o.realStats!)
            }
            if let path = o.saveRealStats, comm.isRoot { try saveStatistics(realStatistics, to: path) }
            let fakeStatistics: FeatureStatistics
            if let dir = o.fake {
                fakeStatistics = try folderStatistics(dir)
            } else {
                let (gModule, _) = try ModelFile.load(o.fakeNetwork!, expecting: .generator)
                let g = gModule as! Generator
                g.eval()
                fakeStatistics = FeatureStatistics(dimension: 2048, keepFeatures: o.kid)
                let mine = Array(stride(from: comm.rank, to: o.num, by: comm.size))
                let zGen = RandomGenerator(seed: 123, stream: UInt64(comm.rank))
                let noise = RandomGenerator(seed: 321, stream: UInt64(comm.rank))
                var done = 0
                while done < mine.count {
                    let n = min(o.batch, mine.count - done)
                    let images = noGrad { g(zGen.normal([n, g.config.zDim]), truncationPsi: o.trunc, noise: .random(noise)).image }
                    // uint8(clamp(img * 127.5 + 128, 0, 255)) as the reference metric code.
                    let pixels = ImageTensors.tensor(ImageTensors.images(fromGenerated: images))
                    fakeStatistics.append(features(pixels))
                    done += n
                }
                try fakeStatistics.allReduce(comm)
            }
            if comm.isRoot {
                let result = try FrechetDistance.compute(generated: fakeStatistics, real: realStatistics)
                var members: [(String, JSONValue)] = [("fid", .double(result.fid)), ("real_items", JSONValue(realStatistics.count)),
                                                      ("fake_items", JSONValue(fakeStatistics.count)), ("preprocessing", .string(o.preprocessing))]
                if o.kid {
                    let value = KernelInceptionDistance.compute(generated: fakeStatistics.features, real: realStatistics.features, dimension: 2048)
                    members.append(("kid", .double(value)))
                }
                let json = JSONValue.object(members).serialized()
                Console.print(json)
                if let out = o.out { try Files.writeAtomically(out, text: json + "\n") }
            }
            try comm.sleepingBarrier()
        }
    }
}

/// Feature statistics files: F64 tensors "sum" [D], "sum_of_products" [D, D], I64 "count".
func saveStatistics(_ s: FeatureStatistics, to path: String) throws {
    var writer = SafeTensorsWriter()
    let d = s.dimension
    func bytes(_ values: [Double]) -> [UInt8] { values.withUnsafeBytes { Array($0) } }
    try writer.add(name: "sum", dtype: .F64, shape: [d], bytes: bytes(s.sum))
    try writer.add(name: "sum_of_products", dtype: .F64, shape: [d, d], bytes: bytes(s.sumOfProducts))
    try writer.add(name: "count", shape: [1], int64s: [Int64(s.count)])
    writer.metadata = [("viscoin.format", "feature-statistics-v1")]
    try writer.write(to: path)
}

func loadStatistics(_ path: String) throws -> FeatureStatistics {
    let file = try SafeTensorsFile(path: path)
    guard file.metadata["viscoin.format"] == "feature-statistics-v1" else {
        throw ValidationError("\(path): not a feature-statistics file (write one with --save-real-stats)")
    }
    let sum = try file.doubles("sum"), products = try file.doubles("sum_of_products")
    let count = Int(try file.int64s("count").first ?? 0)
    guard products.count == sum.count * sum.count, count > 0 else { throw ValidationError("\(path): inconsistent statistics") }
    return FeatureStatistics(dimension: sum.count, sum: sum, sumOfProducts: products, count: count)
}
