import Common
import Testing
import Zstd

@Suite struct ZstdTests {
    let payload: [UInt8] = (0..<300_000).map { UInt8(truncatingIfNeeded: ($0 * 7) ^ ($0 >> 5)) }

    @Test func bufferRoundTrip() throws {
        let compressed = try Zstd.compress(payload)
        #expect(compressed.count < payload.count)
        #expect(try Zstd.decompress(compressed) == payload)
    }

    @Test func streamRoundTripLargerThanChunks() throws {
        let dir = try temporaryDirectory()
        let path = "\(dir)/stream.zst"
        let writer = try ZstdFileWriter(path: path)
        for _ in 0..<8 { try writer.write(payload) }  // 2.4 MB through the stream
        #expect(!Files.exists(path))  // not visible before finish
        try writer.finish()
        let reader = try ZstdFileReader(path: path)
        let all = try reader.readAll()
        #expect(all.count == payload.count * 8)
        #expect(Array(all[(payload.count * 3)..<(payload.count * 4)]) == payload)
        try Files.remove(dir)
    }

    @Test func corruptFrameIsDetected() throws {
        let compressed = try Zstd.compress(payload)
        var flipped = compressed
        flipped[compressed.count / 2] ^= 0x55
        #expect(throws: ZstdError.self) { try Zstd.decompress(flipped, source: "x.zst") }
        // A flip in the trailing checksum itself.
        var badChecksum = compressed
        badChecksum[compressed.count - 1] ^= 0x01
        #expect(throws: ZstdError.self) { try Zstd.decompress(badChecksum, source: "x.zst") }
        #expect(throws: ZstdError.self) { try Zstd.decompress(Array(compressed[0..<(compressed.count - 10)]), source: "x.zst") }
        #expect(throws: ZstdError.self) { try Zstd.decompress([1, 2, 3, 4, 5], source: "x.zst") }
        #expect(throws: ZstdError.self) { try Zstd.decompress([], source: "x.zst") }
    }

    @Test func truncatedStreamFileIsAnError() throws {
        let dir = try temporaryDirectory()
        let path = "\(dir)/cut.zst"
        let compressed = try Zstd.compress(payload)
        try Files.writeAtomically(path, bytes: Array(compressed[0..<(compressed.count / 2)]))
        let reader = try ZstdFileReader(path: path)
        #expect(throws: ZstdError.self) { _ = try reader.readAll() }
        try Files.remove(dir)
    }
}
