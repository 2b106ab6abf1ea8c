// `viscoin prepare` as users run it: two ranks write the same dataset as one; bad flags and
// missing folders end with a clear message and a non-zero exit.
import Common
import Testing

@Suite(.serialized) struct PrepareCommandTests {
    let dir = "/tmp/viscoin-it-prepare-\(UInt64.random(in: 0...UInt64.max))"

    @Test func twoRanksWriteTheSameDatasetAsOne() throws {
        try requireReleaseBinary()
        try Files.createDirectory(dir)
        defer { try? Files.remove(dir) }
        var r = runShell("launch/run -n 2 -- prepare demo --out \(dir)/two --count 45 --size 32 --seed 4")
        #expect(r.status == 0, "\(r.output)")
        #expect(r.output.contains("45 images 32x32, 9 classes"), "\(r.output)")
        r = runShell(".build/release/viscoin prepare demo --out \(dir)/one --count 45 --size 32 --seed 4")
        #expect(r.status == 0, "\(r.output)")
        #expect(try Files.read("\(dir)/one/dataset.json") == Files.read("\(dir)/two/dataset.json"))
        for i in 0..<45 {
            let name = "00000/img" + String(repeating: "0", count: 8 - String(i).count) + String(i) + ".png"
            #expect(try Files.read("\(dir)/one/\(name)") == Files.read("\(dir)/two/\(name)"))
        }
        // Existing output: refused without --force.
        r = runShell(".build/release/viscoin prepare demo --out \(dir)/one --count 45")
        #expect(r.status != 0 && r.output.contains("already exists (use --force"), "\(r.output)")
    }

    @Test func badFlagsAndMissingFolders() throws {
        try requireReleaseBinary()
        var r = runShell(".build/release/viscoin prepare demo --out /tmp/x --size 30")
        #expect(r.status != 0 && r.output.contains("--size must be a power of two"), "\(r.output)")
        r = runShell(".build/release/viscoin prepare folder --root /nonexistent/nct --out /tmp/x")
        #expect(r.status != 0 && r.output.contains("/nonexistent/nct: no such dataset folder"), "\(r.output)")
        r = runShell(".build/release/viscoin prepare cub --root /nonexistent/CUB_200_2011 --out /tmp/x")
        #expect(r.status != 0 && r.output.contains("/nonexistent/CUB_200_2011"), "\(r.output)")
    }
}
