// Modules: parameters and buffers registered under their PyTorch state-dict names, child
// modules, train/eval mode, freezing, and strict state-dict loading that reports every
// missing, unexpected and wrong-shape key in one error. Swift properties stay camelCase; the
// registered names are PyTorch's (`running_mean`, `noise_const`, `s0.0.weight`, ...).
import SafeTensors
import TensorCore

/// One state-dict entry.
public struct StateEntry {
    public enum Kind: String, Sendable { case parameter, buffer }
    public let key: String
    public let tensor: Tensor
    public let kind: Kind
    /// True for integer buffers (BatchNorm `num_batches_tracked`), exported as int64.
    public let isInteger: Bool
}

/// Errors of state-dict loading (all problems of one load are listed together).
public struct StateDictError: Error, CustomStringConvertible, Sendable {
    public var source: String
    public init(source: String, nonFinite: [(key: String, count: Int, first: Int)] = []) {
        self.source = source
        self.nonFinite = nonFinite
    }
    public var missing: [String] = []
    public var unexpected: [String] = []
    public var wrongShape: [(key: String, expected: [Int], found: [Int])] = []
    /// Tensors holding NaN or infinite values: how many, and the first index.
    public var nonFinite: [(key: String, count: Int, first: Int)] = []

    public var isEmpty: Bool { missing.isEmpty && unexpected.isEmpty && wrongShape.isEmpty }

    public var description: String {
        if isEmpty && !nonFinite.isEmpty {
            let list = nonFinite.prefix(5).map { "\($0.key) holds \($0.count) NaN or infinite value(s) (the first at index \($0.first))" }
            let more = nonFinite.count > 5 ? " and \(nonFinite.count - 5) more tensor(s)" : ""
            return "\(source): \(list.joined(separator: "; "))\(more): the weights are damaged or come from a run that diverged"
        }
        var lines = ["\(source): the weights do not match the model"]
        if !missing.isEmpty { lines.append("  missing keys (\(missing.count)): " + missing.joined(separator: ", ")) }
        if !unexpected.isEmpty { lines.append("  unexpected keys (\(unexpected.count)): " + unexpected.joined(separator: ", ")) }
        for w in wrongShape { lines.append("  wrong shape: \(w.key) expected \(w.expected), found \(w.found)") }
        return lines.joined(separator: "\n")
    }
}

/// What a non-strict load skipped.
public struct LoadReport: Sendable {
    public var loaded: [String] = []
    public var missing: [String] = []
    public var unexpected: [String] = []
    public var wrongShape: [String] = []
    public var skipped: [String] { missing + unexpected + wrongShape }
}

open class Module {
    private var parameterList: [(String, Tensor)] = []
    private var bufferList: [(String, Tensor, Bool)] = []
    private var childList: [(String, Module)] = []
    public private(set) var isTraining = true

    public init() {}

    /// Registers a trainable parameter (requires gradients).
    @discardableResult
    public func parameter(_ name: String, _ tensor: Tensor) -> Tensor {
        precondition(!name.contains("."), "parameter names cannot contain '.': \(name)")
        tensor.requiresGrad = true
        parameterList.append((name, tensor))
        return tensor
    }

    /// Registers a buffer (saved in the state dict, never trained).
    @discardableResult
    public func buffer(_ name: String, _ tensor: Tensor, integer: Bool = false) -> Tensor {
        bufferList.append((name, tensor, integer))
        return tensor
    }

    /// Registers a child module.
    @discardableResult
    public func child<M: Module>(_ name: String, _ module: M) -> M {
        childList.append((name, module))
        return module
    }

    /// Replaces a registered child (e.g. sharing a pretrained synthesis network).
    public func replaceChild(_ name: String, with module: Module) {
        guard let i = childList.firstIndex(where: { $0.0 == name }) else { preconditionFailure("no child named \(name)") }
        childList[i].1 = module
    }

    public var children: [(String, Module)] { childList }

    /// This module and all its descendants, depth first.
    public var allModules: [Module] { [self] + childList.flatMap { $0.1.allModules } }

    /// State-dict entries in PyTorch order: own parameters, own buffers, then children.
    public func stateDict(prefix: String = "") -> [StateEntry] {
        var out: [StateEntry] = []
        for (n, t) in parameterList { out.append(StateEntry(key: prefix + n, tensor: t, kind: .parameter, isInteger: false)) }
        for (n, t, i) in bufferList { out.append(StateEntry(key: prefix + n, tensor: t, kind: .buffer, isInteger: i)) }
        for (n, c) in childList { out.append(contentsOf: c.stateDict(prefix: prefix + n + ".")) }
        return out
    }

    public func namedParameters(prefix: String = "") -> [(String, Tensor)] {
        stateDict(prefix: prefix).filter { $0.kind == .parameter }.map { ($0.key, $0.tensor) }
    }

    public var parameters: [Tensor] { namedParameters().map(\.1) }

    /// Parameters that currently require gradients (not frozen).
    public var trainableParameters: [Tensor] { parameters.filter(\.requiresGrad) }

    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.count } }

    /// Sets training (true) or evaluation (false) mode recursively.
    public func train(_ on: Bool = true) {
        isTraining = on
        for (_, c) in childList { c.train(on) }
    }

    public func eval() { train(false) }

    /// Stops (or restores) gradient tracking of every parameter.
    public func freeze(_ frozen: Bool = true) {
        for p in parameters { p.requiresGrad = !frozen }
    }

    /// Copies values from `source` (keys relative to this module) into the registered tensors.
    /// Strict: every missing, unexpected or wrong-shape key is reported in one error and nothing
    /// is changed. Non-strict: loads what matches and reports the rest.
    @discardableResult
    public func load(_ source: [String: Tensor], strict: Bool = true, sourceName: String = "weights") throws -> LoadReport {
        let entries = stateDict()
        var report = LoadReport()
        var error = StateDictError(source: sourceName)
        let known = Set(entries.map(\.key))
        for e in entries {
            guard let value = source[e.key] else {
                // PyTorch checkpoints may omit num_batches_tracked (it is refilled on load).
                if e.isInteger { continue }
                error.missing.append(e.key)
                continue
            }
            if value.count != e.tensor.count || (value.shape != e.tensor.shape && !(value.count == 1 && e.tensor.count == 1)) {
                error.wrongShape.append((e.key, e.tensor.shape, value.shape))
            }
        }
        error.unexpected = source.keys.filter { !known.contains($0) }.sorted()
        if strict && !error.isEmpty { throw error }
        let bad = Set(error.wrongShape.map(\.key))
        // NaN or infinite weights are refused in every mode: training or sampling with them only
        // produces NaN later, far from the cause.
        for e in entries where !bad.contains(e.key) {
            guard let value = source[e.key] else { continue }
            var count = 0, first = -1
            for i in 0..<value.count where !value.data[i].isFinite {
                if first < 0 { first = i }
                count += 1
            }
            if count > 0 { error.nonFinite.append((e.key, count, first)) }
        }
        if !error.nonFinite.isEmpty { throw StateDictError(source: sourceName, nonFinite: error.nonFinite) }
        for e in entries where !bad.contains(e.key) {
            guard let value = source[e.key] else { continue }
            e.tensor.assign(value)
            report.loaded.append(e.key)
        }
        report.missing = error.missing
        report.unexpected = error.unexpected
        report.wrongShape = error.wrongShape.map { "\($0.key) expected \($0.expected) found \($0.found)" }
        return report
    }

    /// Loads from a safetensors file (names as in the model's state dict, after `keyMap`).
    @discardableResult
    public func load(file: SafeTensorsFile, strict: Bool = true, prefix: String = "",
                     keyMap: (String) -> String? = { $0 }) throws -> LoadReport {
        var dict: [String: Tensor] = [:]
        for info in file.tensors {
            guard info.name.hasPrefix(prefix), let key = keyMap(String(info.name.dropFirst(prefix.count))) else { continue }
            dict[key] = Tensor(try file.floats(info.name), shape: info.shape)
        }
        return try load(dict, strict: strict, sourceName: file.source)
    }

    /// The state dict as a safetensors writer (float32 tensors, int64 integer buffers).
    public func safetensors(keyMap: (String) -> String? = { $0 }) throws -> SafeTensorsWriter {
        var writer = SafeTensorsWriter()
        for e in stateDict() {
            guard let key = keyMap(e.key) else { continue }
            if e.isInteger {
                try writer.add(name: key, shape: e.tensor.shape, int64s: e.tensor.toArray().map { Int64($0) })
            } else {
                try writer.add(name: key, shape: e.tensor.shape, floats: e.tensor.toArray())
            }
        }
        return writer
    }
}
