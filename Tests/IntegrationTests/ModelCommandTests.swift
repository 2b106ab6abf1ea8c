// The model commands on real files: convert (from a golden state dict), inspect, generate
// (seeds and latents), fid (folders, with a randomly initialised detector written by the test).
import Common
import Foundation
import Testing

@Suite(.serialized) struct ModelCommandTests {
    let dir = "/tmp/viscoin-it-models-\(UInt64.random(in: 0...UInt64.max))"

    @Test func convertInspectGenerateAndFID() throws {
        try requireReleaseBinary()
        try Files.createDirectory(dir)
        defer { try? Files.remove(dir) }
        let golden = "Tests/Fixtures/golden/stylegan2/G_tiny_eval_noiseconst.safetensors"
        var r = runShell(".build/release/viscoin convert --input \(golden) --prefix param. --model generator --cfg tiny --output \(dir)/G.safetensors")
        #expect(r.status == 0, "\(r.output)")
        #expect(r.output.contains("converted 75 tensors"))
        r = runShell(".build/release/viscoin inspect \(dir)/G.safetensors")
        #expect(r.status == 0 && r.output.contains("model: generator") && r.output.contains("\"img_resolution\": 32"), "\(r.output)")
        // Wrong architecture: a clear error listing the mismatches, non-zero exit, no output file.
        r = runShell(".build/release/viscoin convert --input \(golden) --prefix param. --model generator --cfg auto --output \(dir)/bad.safetensors")
        #expect(r.status != 0 && r.output.contains("wrong shape") && !Files.exists("\(dir)/bad.safetensors"))
        r = runShell("launch/run -n 2 -- generate --network \(dir)/G.safetensors --seeds 0-5 --trunc 0.7 --outdir \(dir)/gen --raw")
        #expect(r.status == 0, "\(r.output)")
        #expect(try Files.list("\(dir)/gen").filter { $0.hasPrefix("seed") }.count == 6)
        #expect(Files.exists("\(dir)/gen/grid.png") && Files.exists("\(dir)/gen/images.safetensors"))
        // One rank gives the same images as two.
        r = runShell(".build/release/viscoin generate --network \(dir)/G.safetensors --seeds 0-5 --trunc 0.7 --outdir \(dir)/gen1")
        #expect(r.status == 0)
        #expect(try Files.read("\(dir)/gen/seed0003.png") == Files.read("\(dir)/gen1/seed0003.png"))
        r = runShell(".build/release/viscoin generate --network \(dir)/missing.safetensors --outdir \(dir)/x")
        #expect(r.status != 0 && r.output.contains("missing.safetensors"))
        r = runShell(".build/release/viscoin selftest write-inception --output \(dir)/inception.safetensors")
        #expect(r.status == 0, "\(r.output)")
        r = runShell("launch/run -n 2 -- fid --real \(dir)/gen --fake \(dir)/gen1 --detector \(dir)/inception.safetensors --out \(dir)/fid.json", timeout: 600)
        #expect(r.status == 0, "\(r.output)")
        let json = try JSONValue.parse(try Files.readText("\(dir)/fid.json"))
        // Identical image sets: FID 0 up to the square-root rounding.
        #expect(abs(json["fid"]?.doubleValue ?? 1) < 1e-3, "\(json.serialized())")
        #expect(json["real_items"]?.intValue == 7)  // 6 seeds + the grid
    }
}
