// Test support: golden reference cases (safetensors files produced by the PyTorch reference
// implementations, copied from ../shared/golden into Tests/Fixtures/golden), the tolerance rule
// of their README, a comparison that reports the worst element, and the `pgen` parameter
// recipe. Used only by the test targets.
import Common
import SafeTensors
import TensorCore

/// Directory of the golden fixtures inside the repository.
public let goldenDirectory: String = {
    var path = #filePath
    for _ in 0..<3 { path = Files.parentDirectory(of: path) }
    return path + "/Tests/Fixtures/golden"
}()

/// One golden case file.
public final class GoldenCase {
    public let name: String
    public let file: SafeTensorsFile
    public let config: JSONValue
    /// Keys compared so far by `check` (see `uncheckedKeys`).
    public private(set) var checkedKeys = Set<String>()

    /// Loads `group/case` (e.g. "ops/relu").
    public convenience init(_ relativePath: String) throws {
        try self.init(path: "\(goldenDirectory)/\(relativePath).safetensors", name: relativePath)
    }

    /// Loads a case file from anywhere (tests of the harness itself).
    public init(path: String, name: String) throws {
        self.name = name
        file = try SafeTensorsFile(path: path)
        config = try JSONValue.parse(file.metadata["config"] ?? "{}")
    }

    /// The stored results (`output.*`, `grad.*`, `state_after.*`) that no `check` compared,
    /// except `exempt` ones, as failure messages: a golden value the test never computed must
    /// fail the test rather than pass silently.
    public func uncheckedKeys(exempt: Set<String> = []) -> [String] {
        let results = file.names.filter { ["output.", "grad.", "state_after."].contains(where: $0.hasPrefix) }
        return results.filter { !checkedKeys.contains($0) && !exempt.contains($0) }.sorted().map { "\(name) \($0): stored but never computed or compared" }
    }

    public func has(_ key: String) -> Bool { file.contains(key) }

    /// A stored tensor as a float32 Tensor (labels and other integer tensors are converted).
    public func tensor(_ key: String) throws -> Tensor {
        let info = try file.info(key)
        return Tensor(try file.floats(key), shape: info.shape)
    }

    public func ints(_ key: String) throws -> [Int] { try file.int64s(key).map { Int($0) } }

    /// Keys with a given prefix (e.g. "grad.param.").
    public func keys(withPrefix prefix: String) -> [String] { file.names.filter { $0.hasPrefix(prefix) }.sorted() }

    /// (rtol, atol_rel) for a stored tensor: per-key override, else the category default for
    /// forward values (`output.*`, `state_after.*`) or gradients (`grad.*`, `gradnorm.*`).
    public func tolerance(for key: String) -> (rtol: Float, atolRel: Float) {
        let tol = config["tolerance"]
        if let o = tol?["overrides"]?[key] ?? tol?["overrides"]?[groupKey(key)] {
            return (Float(o["rtol"]?.doubleValue ?? 1e-4), Float(o["atol_rel"]?.doubleValue ?? 1e-5))
        }
        let category = key.hasPrefix("grad") ? tol?["grad"] : tol?["forward"]
        return (Float(category?["rtol"]?.doubleValue ?? 1e-4), Float(category?["atol_rel"]?.doubleValue ?? 1e-5))
    }

    private func groupKey(_ key: String) -> String {
        for prefix in ["grad.param.", "state_after.", "gradnorm.param."] where key.hasPrefix(prefix) { return prefix + "*" }
        return key
    }

    /// Compares `actual` with the stored tensor `key` under its tolerance.
    public func check(_ key: String, _ actual: Tensor?, outliers: Int = 0) -> String? {
        checkedKeys.insert(key)
        guard let actual else { return "\(name) \(key): no value computed" }
        do {
            let expected = try tensor(key)
            let (rtol, atol) = tolerance(for: key)
            return compareTensors(actual, expected, rtol: rtol, atolRel: atol, allowedOutliers: outliers).map { "\(name) \(key): \($0)" }
        } catch {
            return "\(name) \(key): \(error)"
        }
    }
}

/// nil when `|a - g| <= rtol |g| + atolRel max|g|` holds for all but `allowedOutliers` elements;
/// otherwise a description of the worst element.
public func compareTensors(_ actual: Tensor, _ expected: Tensor, rtol: Float, atolRel: Float, allowedOutliers: Int = 0) -> String? {
    guard actual.count == expected.count else { return "shape \(actual.shape) differs from expected \(expected.shape)" }
    if actual.count == 0 { return nil }
    let a = actual.toArray(), g = expected.toArray()
    let scale = g.map { abs($0) }.max() ?? 0
    var failures = 0
    var worst = (index: 0, excess: -Float.infinity)
    for i in 0..<a.count {
        let limit = rtol * abs(g[i]) + atolRel * scale
        let diff = abs(a[i] - g[i])
        if !(diff <= limit) {
            failures += 1
        }
        let excess = diff.isNaN ? .infinity : diff - limit
        if excess > worst.excess { worst = (i, excess) }
    }
    if failures <= allowedOutliers { return nil }
    let i = worst.index
    return "\(failures) of \(a.count) elements outside tolerance (rtol \(rtol), atol_rel \(atolRel), max|expected| \(scale)); worst at \(i): got \(a[i]), expected \(g[i])"
}

/// pgen: the golden files' procedurally generated parameters (README "pgen").
public func pgen(seed: UInt32, exp: Int, offset: Double, count: Int) -> [Float] {
    func lowbias32(_ v: UInt32) -> UInt32 {
        var x = v
        x ^= x >> 16
        x &*= 0x7FEB_352D
        x ^= x >> 15
        x &*= 0x846C_A68B
        x ^= x >> 16
        return x
    }
    let s = lowbias32(seed)
    let scale = Double(sign: .plus, exponent: exp - 23, significand: 1)
    return (0..<count).map { i in
        let k = lowbias32(UInt32(truncatingIfNeeded: UInt64(i) &+ UInt64(s))) >> 8
        return Float(Double(Int(k) - (1 << 23)) * scale + offset)
    }
}

extension GoldenCase {
    /// A parameter: stored `param.<key>`, or generated by pgen from `config.pgen[key]`.
    public func parameter(_ key: String) throws -> Tensor {
        if has("param.\(key)") { return try tensor("param.\(key)") }
        guard let spec = config["pgen"]?[key], let seed = spec["seed"]?.intValue, let exp = spec["exp"]?.intValue,
              let shape = spec["shape"]?.arrayValue?.compactMap({ $0.intValue }).map({ Int($0) }) else {
            throw GoldenError(message: "\(name): no stored or pgen value for parameter \(key)")
        }
        let offset = spec["offset"]?.doubleValue ?? 0
        return Tensor(pgen(seed: UInt32(truncatingIfNeeded: seed), exp: Int(exp), offset: offset, count: shape.elementCount), shape: shape)
    }

    /// Every parameter key of the case (stored or generated).
    public var parameterKeys: [String] {
        let stored = keys(withPrefix: "param.").map { String($0.dropFirst(6)) }
        let generated = config["pgen"]?.objectValue?.map(\.0) ?? []
        return Array(Set(stored + generated)).sorted()
    }
}

public struct GoldenError: Error, CustomStringConvertible {
    public let message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}

extension GoldenCase {
    /// Values for the given state-dict keys (stored `param.<prefix><key>` or pgen), keyed without
    /// the prefix. Integer buffers (num_batches_tracked) are skipped.
    public func stateDict(keys: [String], prefix: String = "") throws -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for key in keys where !key.hasSuffix("num_batches_tracked") {
            out[key] = try parameter(prefix + key)
        }
        return out
    }

    /// Checks `pgen_sample.<key>` (first 8 generated values) against our pgen for every key.
    public func checkPgenSamples() -> [String] {
        var failures: [String] = []
        for key in keys(withPrefix: "pgen_sample.") {
            let name = String(key.dropFirst("pgen_sample.".count))
            do {
                let sample = try tensor(key).toArray()
                let ours = Array(try parameter(name).toArray().prefix(sample.count))
                if ours != sample { failures.append("\(self.name): pgen of \(name) differs from its stored sample") }
            } catch {
                failures.append("\(self.name): \(error)")
            }
        }
        return failures
    }
}

/// A state-dict manifest (golden/manifests/*.json): ordered (key, shape, dtype, kind).
public struct Manifest {
    public struct Entry: Equatable, CustomStringConvertible {
        public let key: String
        public let shape: [Int]
        public let dtype: String
        public let kind: String
        public init(key: String, shape: [Int], dtype: String, kind: String) {
            self.key = key
            self.shape = shape
            self.dtype = dtype
            self.kind = kind
        }
        public var description: String { "\(key) \(shape) \(dtype) \(kind)" }
    }
    public let entries: [Entry]

    public init(_ name: String) throws {
        let json = try JSONValue.parse(try Files.read("\(goldenDirectory)/manifests/\(name).json"))
        entries = (json["state_dict"]?.arrayValue ?? []).map { e in
            Entry(key: e["key"]?.stringValue ?? "", shape: (e["shape"]?.arrayValue ?? []).compactMap { $0.intValue.map(Int.init) },
                  dtype: e["dtype"]?.stringValue ?? "", kind: e["kind"]?.stringValue ?? "")
        }
    }

    /// Differences between the manifest and our entries (empty when equal, order included).
    public func differences(from ours: [Entry]) -> [String] {
        var out: [String] = []
        if ours.count != entries.count { out.append("entry count: ours \(ours.count), manifest \(entries.count)") }
        for (i, (a, b)) in zip(ours, entries).enumerated() where a != b {
            out.append("entry \(i): ours \(a), manifest \(b)")
            if out.count > 10 { break }
        }
        return out
    }
}

extension Dictionary where Key == String, Value == Tensor {
    /// The tensor under `key`, or an error naming it.
    public func get(_ key: String) throws -> Tensor {
        guard let t = self[key] else { throw GoldenError(message: "missing tensor \(key)") }
        return t
    }
}
