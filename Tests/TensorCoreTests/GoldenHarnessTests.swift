// Tests of the golden harness itself: a case whose stored result the test never computes must
// fail, and a computed result outside its tolerance must fail too.
import Common
import SafeTensors
import Testing
import TensorCore
import TestSupport

@Suite struct GoldenHarnessTests {
    /// A case file with input.x and two stored outputs, y = 2x and z = x + 1.
    func makeCase() throws -> GoldenCase {
        let path = "/tmp/viscoin-golden-harness-\(UInt64.random(in: 0...UInt64.max)).safetensors"
        var writer = SafeTensorsWriter()
        try writer.add(name: "input.x", shape: [3], floats: [1, 2, 3])
        try writer.add(name: "output.y", shape: [3], floats: [2, 4, 6])
        try writer.add(name: "output.z", shape: [3], floats: [2, 3, 4])
        writer.metadata = [("config", #"{"tolerance": {"category": "elementwise", "forward": {"rtol": 1e-5, "atol_rel": 1e-6}}}"#)]
        try writer.write(to: path)
        defer { try? Files.remove(path) }
        return try GoldenCase(path: path, name: "harness")
    }

    @Test func aStoredOutputThatIsNeverComputedFails() throws {
        let failures = try runOpCase(try makeCase()) { _, t in ["output.y": try t.get("input.x") * 2] }
        #expect(failures == ["harness output.z: stored but never computed or compared"])
    }

    @Test func everyOutputComputedPasses() throws {
        let failures = try runOpCase(try makeCase()) { _, t in
            let x = try t.get("input.x")
            return ["output.y": x * 2, "output.z": x + 1]
        }
        #expect(failures.isEmpty, "\(failures)")
    }

    @Test func anExemptOutputPassesAndAWrongValueFails() throws {
        #expect(try runOpCase(try makeCase(), exempt: ["output.z"]) { _, t in ["output.y": try t.get("input.x") * 2] }.isEmpty)
        let failures = try runOpCase(try makeCase()) { _, t in
            let x = try t.get("input.x")
            return ["output.y": x * 2, "output.z": x + 1.001]
        }
        #expect(failures.count == 1 && failures[0].contains("output.z") && failures[0].contains("outside tolerance"), "\(failures)")
    }
}
