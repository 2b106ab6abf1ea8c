import Common
import SafeTensors
import Testing

@Suite struct SafeTensorsTests {
    func sampleFile() throws -> [UInt8] {
        var w = SafeTensorsWriter()
        w.metadata = [("format", "pt"), ("config", "{\"a\": 1}")]
        try w.add(name: "weight", shape: [2, 3], floats: [1, 2, 3, 4, 5, -6.5])
        try w.add(name: "half", shape: [3], floats: [0.5, -2, 65504], dtype: .F16)
        try w.add(name: "brain", shape: [2], floats: [1.5, -3.25], dtype: .BF16)
        try w.add(name: "double", shape: [1], floats: [0.1], dtype: .F64)
        try w.add(name: "labels", shape: [4], int64s: [0, 5, -1, 1 << 40])
        try w.add(name: "small", shape: [2], int32s: [7, -8])
        try w.add(name: "bytes", dtype: .U8, shape: [2, 2], bytes: [1, 2, 3, 255])
        try w.add(name: "empty", shape: [0, 4], floats: [])
        return w.serialize()
    }

    @Test func roundTripEveryDType() throws {
        let file = try SafeTensorsFile(bytes: try sampleFile(), source: "sample")
        #expect(file.metadata["format"] == "pt")
        #expect(file.metadata["config"] == "{\"a\": 1}")
        #expect(try file.floats("weight") == [1, 2, 3, 4, 5, -6.5])
        #expect(try file.info("weight").shape == [2, 3])
        #expect(try file.floats("half") == [0.5, -2, 65504])
        #expect(try file.floats("brain") == [1.5, -3.25])
        #expect(try file.doubles("double") == [Double(Float(0.1))])
        #expect(try file.int64s("labels") == [0, 5, -1, 1 << 40])
        #expect(try file.int64s("small") == [7, -8])
        #expect(try file.int64s("bytes") == [1, 2, 3, 255])
        #expect(try file.floats("empty") == [])
        #expect(throws: SafeTensorsError.self) { try file.floats("missing") }
    }

    @Test func halfPrecisionConversions() {
        for v: Float in [0, -0.0, 1, -1, 0.333251953125, 6.1035156e-05, 5.9604645e-08, 65504, 1e-8] {
            let back = SafeTensorsFile.halfToFloat(SafeTensorsFile.floatToHalf(v))
            if v == 1e-8 { #expect(back == 0) } else { #expect(back == v) }
        }
        #expect(SafeTensorsFile.halfToFloat(SafeTensorsFile.floatToHalf(70000)).isInfinite)
        #expect(SafeTensorsFile.floatToHalf(1.00048828125) == 0x3C00)  // tie rounds to even
    }

    @Test func zstdCompressedFileAndMemoryMap() throws {
        let dir = try temporaryDirectory()
        var w = SafeTensorsWriter()
        let big = (0..<100_000).map { Float($0 % 1000) * 0.5 }
        try w.add(name: "big", shape: [100, 1000], floats: big)
        try w.write(to: "\(dir)/plain.safetensors")
        try w.write(to: "\(dir)/packed.safetensors.zst", compressionLevel: 3)
        #expect(try SafeTensorsFile(path: "\(dir)/plain.safetensors").floats("big") == big)
        #expect(try SafeTensorsFile(path: "\(dir)/packed.safetensors.zst").floats("big") == big)
        #expect(try Files.fileSize("\(dir)/packed.safetensors.zst") < Files.fileSize("\(dir)/plain.safetensors"))
        try Files.remove(dir)
    }

    func header(_ json: String, data: [UInt8]) -> [UInt8] {
        var bytes: [UInt8] = []
        withUnsafeBytes(of: UInt64(json.utf8.count).littleEndian) { bytes.append(contentsOf: $0) }
        return bytes + Array(json.utf8) + data
    }

    @Test(arguments: [
        (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, 12, "overlaps"),
        (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}}"#, 16, "hole"),
        (#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, 8, "needs 12 bytes"),
        (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, 4, "truncated"),
        (#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, 8, "cover only"),
        (#"{"a":{"dtype":"Q4","shape":[1],"data_offsets":[0,4]}}"#, 4, "unsupported dtype"),
        (#"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, 4, "not a valid dimension"),
        (#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}"#, 4, "invalid"),
        (#"{"a":{"dtype":"F32","shape":[1]}}"#, 0, "missing data_offsets"),
        (#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}"#, 4, "unexpected field"),
        (#"{"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,4]}}"#, 4, "too many elements"),
        (#"{"__metadata__":{"k":1}}"#, 0, "is not a string"),
        (#"[1,2]"#, 0, "does not start with"),
        (#"{"a":1}"#, 0, "entry is not an object"),
        (#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, 8, "duplicate key"),
    ])
    func invalidHeadersAreExplained(_ testCase: (String, Int, String)) {
        let (json, dataBytes, expected) = testCase
        let bytes = header(json, data: [UInt8](repeating: 0, count: dataBytes))
        do {
            _ = try SafeTensorsFile(bytes: bytes, source: "bad.safetensors")
            Issue.record("expected an error containing '\(expected)'")
        } catch let error as SafeTensorsError {
            #expect(error.description.hasPrefix("bad.safetensors: "))
            #expect(error.description.contains(expected), "\(error)")
        } catch {
            Issue.record("unexpected error type \(error)")
        }
    }

    @Test func absurdHeaderLengths() {
        for length: UInt64 in [0, 1, 7, 100_000_001, UInt64.max, 1 << 40] {
            var bytes: [UInt8] = []
            withUnsafeBytes(of: length.littleEndian) { bytes.append(contentsOf: $0) }
            bytes += Array("{}".utf8)
            #expect(throws: SafeTensorsError.self) { try SafeTensorsFile(bytes: bytes, source: "len") }
        }
        #expect(throws: SafeTensorsError.self) { try SafeTensorsFile(bytes: [1, 2, 3], source: "tiny") }
    }

    /// Generated malformed files: every truncation, and random byte flips in the header and in
    /// the length field. None may crash; every truncation must be an error; a flipped file either
    /// parses into a consistent file or is an error.
    @Test func thousandsOfMalformedFilesNeverCrash() throws {
        let good = try sampleFile()
        var cases = 0, errors = 0
        for length in 0..<good.count {
            cases += 1
            do {
                _ = try SafeTensorsFile(bytes: Array(good[0..<length]), source: "cut")
            } catch is SafeTensorsError {
                errors += 1
            }
        }
        #expect(errors == good.count, "every truncation must be rejected")
        let headerEnd = 8 + Int(good.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        var generator = SplitMix(seed: 99)
        for _ in 0..<2000 {
            cases += 1
            var copy = good
            for _ in 0..<(1 + Int(generator.next() % 3)) {
                let i = Int(generator.next() % UInt64(headerEnd))
                copy[i] ^= UInt8(truncatingIfNeeded: 1 + generator.next() % 255)
            }
            do {
                let file = try SafeTensorsFile(bytes: copy, source: "flipped")
                for t in file.tensors {
                    #expect(t.offsets.count == t.elementCount * t.dtype.byteSize)
                    _ = try file.withRawBytes(t.name) { $0.count }
                }
            } catch is SafeTensorsError {
                errors += 1
            }
        }
        #expect(cases >= 1000)
        #expect(errors > cases / 2)
    }
}
