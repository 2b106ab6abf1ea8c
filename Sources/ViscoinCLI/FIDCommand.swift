// `viscoin fid`: Frechet Inception Distance (and optionally KID) between a folder of real images
// (or saved statistics) and a folder of generated images or a generator, as stylegan2-ada
// computes it. The pipeline is `FIDPipeline` (Evaluation); this command parses and prints.
import ArgumentParser
import Common
import Evaluation
import FeatureMetrics
import Models

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
    @Option(help: "Inception weight file (viscoin convert --model inception), or classifier:FILE for a domain FID in a classifier's feature space.")
    var detector: String
    @Option(help: "Inception input convention: nvidia (stylegan2-ada: [0,255], its resize) or pytorch-fid.")
    var preprocessing = InceptionDetector.Preprocessing.nvidia
    @Option(help: "Images per detector batch.") var batch = 16
    @Option(help: "Use at most this many images per side.") var maxItems: Int?
    @Flag(help: "Also compute KID (keeps all features in memory; needs image folders or a generator on both sides).") var kid = false
    @Option(help: "Write the result as JSON here.") var out: String?
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        guard (real == nil) != (realStats == nil) else { throw ValidationError("give exactly one of --real or --real-stats") }
        guard (fake == nil) != (fakeNetwork == nil) else { throw ValidationError("give exactly one of --fake or --fake-network") }
        guard batch > 0, num > 1 else { throw ValidationError("--batch must be positive and --num at least 2") }
        if let maxItems, maxItems < 2 { throw ValidationError("--max-items must be at least 2 (a covariance needs two images)") }
        guard trunc.isFinite else { throw ValidationError("--trunc must be a finite number") }
        if kid && realStats != nil { throw ValidationError("--kid needs the real features: give --real instead of --real-stats") }
    }

    func run() throws {
        if let out { try requireWritable(out, "--out") }
        let o = self
        try Runtime.run(runtime) { comm, _ in
            let detector = try FeatureDetectors.load(o.detector, preprocessing: o.preprocessing)
            func folder(_ dir: String) throws -> FeatureStatistics {
                try FIDPipeline.folderStatistics(dir, detector: detector, batch: o.batch, maxItems: o.maxItems, keepFeatures: o.kid,
                                                 communicator: comm) { done, total in
                    if comm.isRoot && done % (o.batch * comm.size * 20) == 0 { Console.print("  \(dir): \(done)/\(total) images") }
                }
            }
            let realStatistics = try o.real != nil ? folder(o.real!) : StatisticsFile.load(o.realStats!, detector: detector.label)
            if let path = o.saveRealStats, comm.isRoot { try StatisticsFile.save(realStatistics, detector: detector.label, to: path) }
            let fakeStatistics: FeatureStatistics
            if let dir = o.fake {
                fakeStatistics = try folder(dir)
            } else {
                let (module, _) = try ModelFile.load(o.fakeNetwork!, expecting: .generator)
                fakeStatistics = try FIDPipeline.generatorStatistics(module as! Generator, count: o.num, detector: detector, truncation: o.trunc,
                                                                     batch: o.batch, keepFeatures: o.kid, communicator: comm)
            }
            guard realStatistics.count >= 2, fakeStatistics.count >= 2 else {
                throw ValidationError("FID needs at least 2 images on each side (real \(realStatistics.count), fake \(fakeStatistics.count))")
            }
            if comm.isRoot {
                let result = try FIDPipeline.compare(generated: fakeStatistics, real: realStatistics, detector: detector.label)
                let json = result.json.serialized()
                Console.print(json)
                if let out = o.out { try Files.writeAtomically(out, text: json + "\n") }
            }
            try comm.sleepingBarrier()
        }
    }
}

extension InceptionDetector.Preprocessing: ExpressibleByArgument {}
