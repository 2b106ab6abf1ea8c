// XXH64 (xxHash, 64-bit): the checksum of checkpoint shards and parameter-consistency hashes.
// Same algorithm as the frame checksum of zstd; test vectors in FoundationTests.

public struct XXH64: Sendable {
    private static let p1: UInt64 = 0x9E37_79B1_85EB_CA87
    private static let p2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    private static let p3: UInt64 = 0x1656_67B1_9E37_79F9
    private static let p4: UInt64 = 0x85EB_CA77_C2B2_AE63
    private static let p5: UInt64 = 0x27D4_EB2F_1656_67C5

    private var v1, v2, v3, v4: UInt64
    private let seed: UInt64
    private var totalLength: UInt64 = 0
    private var buffer = [UInt8](repeating: 0, count: 32)
    private var bufferCount = 0

    public init(seed: UInt64 = 0) {
        self.seed = seed
        v1 = seed &+ XXH64.p1 &+ XXH64.p2
        v2 = seed &+ XXH64.p2
        v3 = seed
        v4 = seed &- XXH64.p1
    }

    @inline(__always) private static func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 - r)) }
    @inline(__always) private static func round(_ acc: UInt64, _ input: UInt64) -> UInt64 {
        rotl(acc &+ input &* p2, 31) &* p1
    }
    @inline(__always) private static func merge(_ acc: UInt64, _ val: UInt64) -> UInt64 {
        (acc ^ round(0, val)) &* p1 &+ p4
    }
    @inline(__always) private static func load64(_ p: UnsafeRawPointer) -> UInt64 {
        UInt64(littleEndian: p.loadUnaligned(as: UInt64.self))
    }
    @inline(__always) private static func load32(_ p: UnsafeRawPointer) -> UInt32 {
        UInt32(littleEndian: p.loadUnaligned(as: UInt32.self))
    }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard var p = bytes.baseAddress, bytes.count > 0 else { return }
        var remaining = bytes.count
        totalLength &+= UInt64(remaining)
        if bufferCount > 0 {
            let take = min(32 - bufferCount, remaining)
            buffer.withUnsafeMutableBytes { $0.baseAddress!.advanced(by: bufferCount).copyMemory(from: p, byteCount: take) }
            bufferCount += take
            p += take
            remaining -= take
            if bufferCount < 32 { return }
            buffer.withUnsafeBytes { consumeStripe($0.baseAddress!) }
            bufferCount = 0
        }
        while remaining >= 32 {
            consumeStripe(p)
            p += 32
            remaining -= 32
        }
        if remaining > 0 {
            buffer.withUnsafeMutableBytes { $0.baseAddress!.copyMemory(from: p, byteCount: remaining) }
            bufferCount = remaining
        }
    }

    public mutating func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }

    @inline(__always) private mutating func consumeStripe(_ p: UnsafeRawPointer) {
        v1 = XXH64.round(v1, XXH64.load64(p))
        v2 = XXH64.round(v2, XXH64.load64(p + 8))
        v3 = XXH64.round(v3, XXH64.load64(p + 16))
        v4 = XXH64.round(v4, XXH64.load64(p + 24))
    }

    public func finalize() -> UInt64 {
        var h: UInt64
        if totalLength >= 32 {
            h = XXH64.rotl(v1, 1) &+ XXH64.rotl(v2, 7) &+ XXH64.rotl(v3, 12) &+ XXH64.rotl(v4, 18)
            h = XXH64.merge(h, v1)
            h = XXH64.merge(h, v2)
            h = XXH64.merge(h, v3)
            h = XXH64.merge(h, v4)
        } else {
            h = seed &+ XXH64.p5
        }
        h &+= totalLength
        buffer.withUnsafeBytes { raw in
            var p = raw.baseAddress!
            var remaining = bufferCount
            while remaining >= 8 {
                h ^= XXH64.round(0, XXH64.load64(p))
                h = XXH64.rotl(h, 27) &* XXH64.p1 &+ XXH64.p4
                p += 8
                remaining -= 8
            }
            if remaining >= 4 {
                h ^= UInt64(XXH64.load32(p)) &* XXH64.p1
                h = XXH64.rotl(h, 23) &* XXH64.p2 &+ XXH64.p3
                p += 4
                remaining -= 4
            }
            while remaining > 0 {
                h ^= UInt64(p.load(as: UInt8.self)) &* XXH64.p5
                h = XXH64.rotl(h, 11) &* XXH64.p1
                p += 1
                remaining -= 1
            }
        }
        h ^= h >> 33
        h &*= XXH64.p2
        h ^= h >> 29
        h &*= XXH64.p3
        h ^= h >> 32
        return h
    }

    /// One-shot hash.
    public static func hash(_ bytes: UnsafeRawBufferPointer, seed: UInt64 = 0) -> UInt64 {
        var h = XXH64(seed: seed)
        h.update(bytes)
        return h.finalize()
    }

    public static func hash(_ bytes: [UInt8], seed: UInt64 = 0) -> UInt64 {
        bytes.withUnsafeBytes { hash($0, seed: seed) }
    }

    /// 16 lowercase hex digits.
    public static func hex(_ value: UInt64) -> String {
        let s = String(value, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }
}
