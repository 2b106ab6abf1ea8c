// Mutations for fuzz loops over structured inputs (JSON indexes and manifests, safetensors
// headers): byte-level damage (flips, truncation, insertion) and structure-level damage (a
// value replaced by an extreme number, another type, or removed), from a seeded generator so
// that a failure reproduces.
import Common

public struct Mutator {
    var state: UInt64
    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    public mutating func below(_ n: Int) -> Int { n <= 1 ? 0 : Int(next() % UInt64(n)) }

    /// Values that break naive code: negatives, zero, huge, fractional, non-numbers.
    public static let hostile: [JSONValue] = [
        .int(-1), .int(0), .int(Int64.max), .int(Int64.min), .int(1 << 40), .double(1e308), .double(-1e308),
        .double(0.5), .double(-0.0), .string(""), .string("../../etc/passwd"), .null, .bool(true), .array([]), .object([]),
        .array([.int(-5)]), .string(String(repeating: "x", count: 5000)),
    ]

    /// One byte-level mutation of `bytes`.
    public mutating func damage(_ bytes: [UInt8]) -> [UInt8] {
        var out = bytes
        guard !out.isEmpty else { return [UInt8(truncatingIfNeeded: next())] }
        switch below(4) {
        case 0: for _ in 0...below(4) { out[below(out.count)] ^= UInt8(truncatingIfNeeded: next() | 1) }
        case 1: out = Array(out.prefix(below(out.count)))
        case 2: out.insert(contentsOf: Array("-9999999999999999999".utf8.prefix(1 + below(20))), at: below(out.count))
        default: out.remove(at: below(out.count))
        }
        return out
    }

    /// `value` with one randomly chosen member or element replaced by a hostile value, or removed.
    public mutating func mutate(_ value: JSONValue) -> JSONValue {
        let paths = Self.paths(value)
        guard !paths.isEmpty else { return Self.hostile[below(Self.hostile.count)] }
        let path = paths[below(paths.count)]
        let remove = below(5) == 0
        let replacement = Self.hostile[below(Self.hostile.count)]
        return Self.replacing(value, at: path[...], with: remove ? nil : replacement)
    }

    /// Every path (member names and element indexes) to a value inside `value`.
    static func paths(_ value: JSONValue) -> [[String]] {
        switch value {
        case .object(let members): return members.flatMap { key, child in [[key]] + paths(child).map { [key] + $0 } }
        case .array(let elements): return elements.indices.flatMap { i in [["\(i)"]] + paths(elements[i]).map { ["\(i)"] + $0 } }
        default: return []
        }
    }

    static func replacing(_ value: JSONValue, at path: ArraySlice<String>, with new: JSONValue?) -> JSONValue {
        guard let head = path.first else { return new ?? .null }
        switch value {
        case .object(var members):
            guard let i = members.firstIndex(where: { $0.0 == head }) else { return value }
            if path.count == 1 && new == nil { members.remove(at: i) } else { members[i].1 = replacing(members[i].1, at: path.dropFirst(), with: new) }
            return .object(members)
        case .array(var elements):
            guard let i = Int(head), elements.indices.contains(i) else { return value }
            if path.count == 1 && new == nil { elements.remove(at: i) } else { elements[i] = replacing(elements[i], at: path.dropFirst(), with: new) }
            return .array(elements)
        default: return value
        }
    }
}
