// Counter-based random numbers (Philox4x32-10, Salmon et al. 2011). A value is a pure function
// of (seed, stream, index), so results do not depend on thread count or call order, and a
// generator's state is just (seed, stream, offset) — easy to checkpoint and to give every
// rank its own stream.

/// Philox4x32 with 10 rounds.
@inline(__always)
public func philox4x32(counter: (UInt32, UInt32, UInt32, UInt32), key: (UInt32, UInt32)) -> (UInt32, UInt32, UInt32, UInt32) {
    var (c0, c1, c2, c3) = counter
    var (k0, k1) = key
    for _ in 0..<10 {
        let p0 = UInt64(0xD251_1F53) &* UInt64(c0)
        let p1 = UInt64(0xCD9E_8D57) &* UInt64(c2)
        let hi0 = UInt32(truncatingIfNeeded: p0 >> 32), lo0 = UInt32(truncatingIfNeeded: p0)
        let hi1 = UInt32(truncatingIfNeeded: p1 >> 32), lo1 = UInt32(truncatingIfNeeded: p1)
        (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)
        k0 &+= 0x9E37_79B9
        k1 &+= 0xBB67_AE85
    }
    return (c0, c1, c2, c3)
}

/// A seeded random stream. Each draw of `n` values consumes counters `offset ..< offset + n`
/// (rounded up to a multiple of 4) and advances `offset`.
public final class RandomGenerator {
    public let seed: UInt64
    /// Independent sub-stream (e.g. the rank, or a purpose such as "noise").
    public let stream: UInt64
    /// Values consumed so far (the state to checkpoint).
    public var offset: UInt64

    public init(seed: UInt64, stream: UInt64 = 0, offset: UInt64 = 0) {
        self.seed = seed
        self.stream = stream
        self.offset = offset
    }

    /// The 32-bit random word number `index` of this stream.
    @inline(__always)
    func words(block: UInt64) -> (UInt32, UInt32, UInt32, UInt32) {
        philox4x32(
            counter: (UInt32(truncatingIfNeeded: block), UInt32(truncatingIfNeeded: block >> 32),
                      UInt32(truncatingIfNeeded: stream), UInt32(truncatingIfNeeded: stream >> 32)),
            key: (UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32)))
    }

    /// Reserves `n` values and returns the first block index.
    private func reserve(_ n: Int) -> UInt64 {
        let start = offset / 4
        offset += UInt64((n + 3) / 4 * 4)
        return start
    }

    @inline(__always) static func unit(_ w: UInt32) -> Float {
        // 24 random bits -> [0, 1)
        Float(w >> 8) * (1.0 / 16_777_216.0)
    }

    /// Fills `count` floats uniform in [low, high).
    public func fillUniform(_ out: UnsafeMutablePointer<Float>, count: Int, low: Float = 0, high: Float = 1) {
        let start = reserve(count)
        let blocks = (count + 3) / 4
        let scale = high - low
        Parallel.forRange(blocks, grain: 8192) { r in
            for b in r {
                let (w0, w1, w2, w3) = self.words(block: start + UInt64(b))
                let i = b * 4
                if i + 3 < count {
                    out[i] = low + scale * RandomGenerator.unit(w0)
                    out[i + 1] = low + scale * RandomGenerator.unit(w1)
                    out[i + 2] = low + scale * RandomGenerator.unit(w2)
                    out[i + 3] = low + scale * RandomGenerator.unit(w3)
                } else {
                    if i < count { out[i] = low + scale * RandomGenerator.unit(w0) }
                    if i + 1 < count { out[i + 1] = low + scale * RandomGenerator.unit(w1) }
                    if i + 2 < count { out[i + 2] = low + scale * RandomGenerator.unit(w2) }
                }
            }
        }
    }

    /// Fills `count` standard normal floats (Box-Muller on pairs, computed in Double).
    public func fillNormal(_ out: UnsafeMutablePointer<Float>, count: Int, mean: Float = 0, std: Float = 1) {
        let start = reserve(count)
        let blocks = (count + 3) / 4
        Parallel.forRange(blocks, grain: 4096) { r in
            for b in r {
                let (w0, w1, w2, w3) = self.words(block: start + UInt64(b))
                for p in 0..<2 {
                    let a = p == 0 ? w0 : w2, c = p == 0 ? w1 : w3
                    // u1 in (0, 1], u2 in [0, 1)
                    let u1 = (Double(a) + 1) / 4_294_967_296.0
                    let u2 = Double(c) / 4_294_967_296.0
                    let radius = (-2 * log(u1)).squareRoot()
                    let angle = 2 * Double.pi * u2
                    let i0 = b * 4 + p * 2
                    if i0 < count { out[i0] = mean + std * Float(radius * cos(angle)) }
                    if i0 + 1 < count { out[i0 + 1] = mean + std * Float(radius * sin(angle)) }
                }
            }
        }
    }

    public func uniform(_ shape: [Int], low: Float = 0, high: Float = 1) -> Tensor {
        let t = Tensor(uninitializedShape: shape)
        fillUniform(t.data, count: t.count, low: low, high: high)
        return t
    }

    public func normal(_ shape: [Int], mean: Float = 0, std: Float = 1) -> Tensor {
        let t = Tensor(uninitializedShape: shape)
        fillNormal(t.data, count: t.count, mean: mean, std: std)
        return t
    }

    /// 1 with probability `p`, else 0.
    public func bernoulli(_ shape: [Int], p: Float) -> Tensor {
        let t = uniform(shape)
        for i in 0..<t.count { t.data[i] = t.data[i] < p ? 1 : 0 }
        return t
    }

    /// A uniform integer in `0..<n`.
    public func nextInt(_ n: Int) -> Int {
        precondition(n > 0)
        let start = reserve(2)
        let (w0, w1, _, _) = words(block: start)
        let value = (UInt64(w0) << 32) | UInt64(w1)
        return Int(value % UInt64(n))
    }

    /// A uniform double in [0, 1).
    public func nextDouble() -> Double {
        let start = reserve(2)
        let (w0, w1, _, _) = words(block: start)
        let bits = ((UInt64(w0) << 32) | UInt64(w1)) >> 11  // 53 random bits
        return Double(bits) / 9_007_199_254_740_992.0
    }

    /// A permutation of `0..<n` (Fisher-Yates).
    public func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<n)
        if n < 2 { return p }
        for i in stride(from: n - 1, to: 0, by: -1) {
            let j = nextInt(i + 1)
            p.swapAt(i, j)
        }
        return p
    }
}

#if canImport(Glibc)
import Glibc
#endif
