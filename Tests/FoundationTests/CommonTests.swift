import Common
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite struct JSONTests {
    @Test func parsesAndSerializesNestedValues() throws {
        let text = #"{"a": [1, -2, 3.5e2, true, false, null], "b": {"c": "d\n\u00e9\ud83d\ude00"}, "e": 12345678901234}"#
        let value = try JSONValue.parse(text)
        #expect(value["a"]?.arrayValue?.count == 6)
        #expect(value["a"]?.arrayValue?[2] == .double(350))
        #expect(value["b"]?["c"]?.stringValue == "d\né😀")
        #expect(value["e"]?.intValue == 12_345_678_901_234)
        let again = try JSONValue.parse(value.serialized())
        #expect(again == value)
    }

    @Test(arguments: [
        "", "{", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "tru", "\"unterminated", "01", "1.", "-", "{\"a\":1}x",
        "{\"a\":1,\"a\":2}", "\"\\ud800\"", "\"\\x\"", "[\"\u{01}\"]", "1e", "{1:2}",
    ])
    func rejectsMalformedInput(_ text: String) {
        #expect(throws: JSONError.self) { try JSONValue.parse(text) }
    }

    @Test func limitsNestingDepth() {
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        #expect(throws: JSONError.self) { try JSONValue.parse(deep, maxDepth: 64) }
    }
}

@Suite struct ChecksumTests {
    @Test func xxh64MatchesReferenceVectors() {
        #expect(XXH64.hash(Array("".utf8)) == 0xEF46_DB37_51D8_E999)
        #expect(XXH64.hash(Array("a".utf8)) == 0xD24E_C4F1_A98C_6E5B)
        #expect(XXH64.hash(Array("abc".utf8)) == 0x44BC_2CF5_AD77_0999)
        #expect(XXH64.hash(Array("Nobody inspects the spammish repetition".utf8)) == 0xFBCE_A83C_8A37_8BF1)
    }

    @Test func streamingEqualsOneShot() {
        let data = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        var h = XXH64(seed: 42)
        var offset = 0
        for step in [1, 3, 31, 32, 33, 100, 5000] where offset < data.count {
            let end = min(data.count, offset + step)
            h.update(Array(data[offset..<end]))
            offset = end
        }
        h.update(Array(data[offset...]))
        #expect(h.finalize() == XXH64.hash(data, seed: 42))
    }
}

@Suite struct FilesTests {
    @Test func atomicWriteReplacesWholeFile() throws {
        let dir = try temporaryDirectory()
        let path = "\(dir)/file.bin"
        try Files.writeAtomically(path, bytes: [1, 2, 3])
        try Files.writeAtomically(path, bytes: [4, 5])
        #expect(try Files.read(path) == [4, 5])
        #expect(try Files.list(dir) == ["file.bin"])  // no temporary left behind
        try Files.remove(dir)
    }

    @Test func missingFileErrorNamesThePath() throws {
        do {
            _ = try Files.read("/nonexistent/dir/x.bin")
            Issue.record("expected an error")
        } catch let error as FileError {
            #expect(error.description.contains("/nonexistent/dir/x.bin"))
        }
    }

    @Test func readsProcFiles() throws {
        #expect(try Files.readText("/proc/self/status").contains("Name:"))
    }
}

/// A fresh temporary directory.
func temporaryDirectory() throws -> String {
    let path = "/tmp/viscoin-test-\(UInt64.random(in: 0...UInt64.max))"
    try Files.createDirectory(path)
    return path
}

@Suite struct PathSafetyTests {
    @Test func canonicalFormsAgree() throws {
        let d = "/tmp/viscoin-ps-\(UInt64.random(in: 0...UInt64.max))"
        try Files.createDirectory(d + "/src/a")
        defer { try? Files.remove(d) }
        #expect(symlink(d + "/src", d + "/link") == 0)
        let src = PathSafety.canonical(d + "/src")
        for spelling in [d + "/src/", d + "/src/.", d + "/src//", d + "/src/a/..", d + "/link", d + "/link/", d + "/./src"] {
            #expect(PathSafety.canonical(spelling) == src, "\(spelling)")
        }
        #expect(PathSafety.canonical(d + "/src/new/child/") == src + "/new/child", "the part that does not exist yet is appended")
        #expect(PathSafety.canonical("/") == "/")
        #expect(PathSafety.canonical("relative").hasPrefix("/"))
        #expect(throws: PathSafetyError.self) { try PathSafety.checkOutput(d + "/link/", flag: "--out", inputs: [("--root", d + "/src")]) }
        #expect(throws: PathSafetyError.self) { try PathSafety.checkOutput(d, flag: "--out", inputs: [("--root", d + "/src/a")]) }
        #expect(throws: PathSafetyError.self) { try PathSafety.checkOutput(d + "/src/a/out", flag: "--out", inputs: [("--root", d + "/link")]) }
        try PathSafety.checkOutput(d + "/srcx", flag: "--out", inputs: [("--root", d + "/src"), ("--test-root", nil)])
        #expect(PathSafety.isSameOrInside(src + "/a", src) && !PathSafety.isSameOrInside(src + "x", src))
    }

    @Test func fifosAndFoldersAreRefusedWithoutBlocking() throws {
        let d = "/tmp/viscoin-fifo-\(UInt64.random(in: 0...UInt64.max))"
        try Files.createDirectory(d)
        defer { try? Files.remove(d) }
        #expect(mkfifo(d + "/pipe", 0o600) == 0)
        #expect { _ = try Files.read(d + "/pipe") } throws: { "\($0)".contains("FIFO") }
        #expect { _ = try MappedFile(path: d + "/pipe") } throws: { "\($0)".contains("FIFO") }
        #expect { _ = try Files.read(d) } throws: { "\($0)".contains("is a directory") }
        #expect { _ = try Files.read("/dev/null") } throws: { "\($0)".contains("device") }
        try Files.writeAtomically(d + "/f", text: "ok")
        #expect(try Files.readText(d + "/f") == "ok")
    }
}
