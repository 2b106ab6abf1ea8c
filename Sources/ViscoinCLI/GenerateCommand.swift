// `viscoin generate`: images from a StyleGAN2 generator (seeds or latents read from a file),
// written as individual PNGs, a grid, and optionally the raw float output (safetensors), like
// stylegan2-ada's generate.py. The pipeline is `GeneratorSampling` (Evaluation).
import ArgumentParser
import Common
import Evaluation
import Models

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate images with a StyleGAN2 generator.",
        discussion: """
            z for seed s is drawn from this project's counter-based generator (seed s), not NumPy's \
            RandomState: to compare with another implementation, pass --latents FILE with a tensor \
            "z" [N, z_dim] (or "ws" [N, num_ws, w_dim]).
            """)

    @Option(help: "Generator weight file (viscoin convert / train-gan).") var network: String
    @Option(help: "Seeds, e.g. 0-15 or 1,5,9.") var seeds = "0-7"
    @Option(help: "Safetensors file with \"z\" [N, z_dim] or \"ws\" [N, num_ws, w_dim] (overrides --seeds).") var latents: String?
    @Option(help: "Truncation psi.") var trunc: Float = 1
    @Option(help: "Truncation cutoff (number of ws truncated; default all).") var truncCutoff: Int?
    @Option(help: "Noise mode.") var noiseMode = GeneratorSampling.NoiseChoice.const
    @Option(help: "Output directory.") var outdir: String
    @Option(help: "Images per forward pass.") var batch = 4
    @Flag(help: "Also write the raw float images to images.safetensors.") var raw = false
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        do { _ = try GeneratorSampling.parseSeeds(seeds) } catch { throw ValidationError("\(error)") }
        guard trunc.isFinite else { throw ValidationError("--trunc must be a finite number, got \(trunc)") }
        if let truncCutoff, truncCutoff < 0 { throw ValidationError("--trunc-cutoff must be 0 or positive") }
        guard batch > 0 else { throw ValidationError("--batch must be positive") }
    }

    func run() throws {
        try requireWritable(outdir, "--outdir")
        let o = self
        try Runtime.run(runtime) { comm, _ in
            let (module, _) = try ModelFile.load(o.network, expecting: .generator)
            let g = module as! Generator
            let latents = try o.latents.map { try GeneratorSampling.latents(file: $0, for: g) } ?? .seeds(try GeneratorSampling.parseSeeds(o.seeds))
            let images = try GeneratorSampling.generate(g, latents: latents, truncation: o.trunc, truncationCutoff: o.truncCutoff,
                                                        noise: o.noiseMode, batch: o.batch, communicator: comm)
            if let images {
                try GeneratorSampling.write(images, names: latents.names, to: o.outdir, raw: o.raw,
                                            metadata: [("truncation_psi", "\(o.trunc)"), ("noise_mode", o.noiseMode.rawValue)])
                let r = g.config.resolution
                Console.print("generated \(latents.count) images of \(r)x\(r) in \(o.outdir) (grid.png\(o.raw ? ", images.safetensors" : ""))")
            }
            try comm.sleepingBarrier()
        }
    }
}

extension GeneratorSampling.NoiseChoice: ExpressibleByArgument {}
