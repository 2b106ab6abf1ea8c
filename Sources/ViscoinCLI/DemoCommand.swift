// `viscoin demo`: the built-in end-to-end check of the foundation: every rank draws a few
// images, round-trips them through PNG and JPEG, the ranks all-reduce statistics, and rank 0
// writes a zstd-compressed safetensors file and reads it back. Prints what it did.
import ArgumentParser
import Common
import Communication
import ImageCodecs
import SafeTensors
#if canImport(Glibc)
import Glibc
#endif

struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Foundation check on generated data: image codecs, all-reduce, zstd safetensors round trip (launch/run -n 2).")

    @Option(help: "Output directory.") var out = "demo-output"
    @Option(help: "Images per rank.") var images = 4
    @Option(help: "Image side in pixels.") var size = 64
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        guard images > 0 && images <= 1000 else { throw ValidationError("--images must be in 1...1000") }
        guard size >= 8 && size <= 4096 else { throw ValidationError("--size must be in 8...4096") }
    }

    func run() throws {
        let out = out, count = images, side = size
        try Runtime.run(runtime) { comm, threads in
            let start = Console.now()
            if comm.isRoot {
                Console.print("demo: \(comm.size) rank(s) [\(comm.implementation)], \(threads) thread(s) per rank, \(count) images of \(side)x\(side) per rank")
                try Files.createDirectory(out)
            }
            var sums = [Double](repeating: 0, count: 4)  // R, G, B sums and pixel count
            var worstJPEG = Double.infinity
            var firstImage: RGBImage?
            for i in 0..<count {
                let seed = comm.rank * 1000 + i
                let image = demoImage(side: side, seed: seed)
                if i == 0 { firstImage = image }
                let png = try ImageCodec.decode(try ImageCodec.encodePNG(image))
                guard png == image else { throw ImageError(source: "demo image \(seed)", reason: "PNG round trip changed pixels") }
                let jpeg = try ImageCodec.decode(try ImageCodec.encodeJPEG(image, quality: 90))
                worstJPEG = min(worstJPEG, psnr(image, jpeg))
                for p in 0..<(side * side) {
                    for c in 0..<3 { sums[c] += Double(image.pixels[p * 3 + c]) }
                }
                sums[3] += Double(side * side)
            }
            try comm.allReduceSum(&sums)
            let worst = -(try comm.allReduceMax(-worstJPEG))
            let gathered = try comm.allGather(variable: firstImage!.pixels)
            if comm.isRoot {
                Console.print("  encoded and decoded \(count * comm.size) images: PNG lossless, JPEG q90 PSNR >= \(Console.fixed(worst, 1)) dB")
                let means = (0..<3).map { sums[$0] / sums[3] }
                Console.print("  all-reduced channel means over \(Int(sums[3])) pixels: R \(Console.fixed(means[0], 2)) G \(Console.fixed(means[1], 2)) B \(Console.fixed(means[2], 2))")
                var writer = SafeTensorsWriter()
                writer.metadata = [("producer", "viscoin demo"), ("ranks", "\(comm.size)")]
                for (rank, pixels) in gathered.enumerated() {
                    try writer.add(name: "images.rank\(rank)", dtype: .U8, shape: [side, side, 3], bytes: pixels)
                }
                try writer.add(name: "channel_means", shape: [3], floats: means.map(Float.init))
                let path = "\(out)/demo.safetensors.zst"
                try writer.write(to: path, compressionLevel: 3)
                let file = try SafeTensorsFile(path: path)
                for (rank, pixels) in gathered.enumerated() {
                    let back = try file.withRawBytes("images.rank\(rank)") { Array($0) }
                    guard back == pixels else { throw SafeTensorsError(source: path, reason: "images.rank\(rank) differs after reading back") }
                }
                let plain = writer.serialize().count
                Console.print("  wrote \(path) (\(file.tensors.count) tensors, \(Console.bytes(try Files.fileSize(path))) compressed from \(Console.bytes(plain))) and read it back: identical")
                try ImageCodec.write(firstImage!, path: "\(out)/rank0-image0.png")
                Console.print("  sample image: \(out)/rank0-image0.png")
                Console.print("demo finished in \(Console.fixed(Console.now() - start, 2)) s")
            }
            try comm.sleepingBarrier()
        }
    }
}

/// A procedurally drawn test image (smooth colour gradients plus rings), reproducible per seed.
func demoImage(side: Int, seed: Int) -> RGBImage {
    let fx = Double(seed % 7 + 1), fy = Double(seed % 5 + 2)
    return RGBImage(width: side, height: side) { x, y in
        let u = Double(x) / Double(side), v = Double(y) / Double(side)
        let d = ((u - 0.5) * (u - 0.5) + (v - 0.5) * (v - 0.5)).squareRoot()
        let r = 127.5 + 127.5 * sin(fx * u * 3.14159 + Double(seed))
        let g = 127.5 + 127.5 * cos(fy * v * 3.14159)
        let b = 127.5 + 127.5 * sin(d * 40)
        return (UInt8(r), UInt8(g), UInt8(b))
    }
}

/// Peak signal-to-noise ratio in dB between two images of the same size.
func psnr(_ a: RGBImage, _ b: RGBImage) -> Double {
    var se = 0.0
    for i in 0..<a.pixels.count {
        let d = Double(a.pixels[i]) - Double(b.pixels[i])
        se += d * d
    }
    let mse = se / Double(a.pixels.count)
    return mse == 0 ? 99 : 10 * log10(255 * 255 / mse)
}
