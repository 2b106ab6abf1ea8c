// Reverse-mode automatic differentiation with higher-order gradients.
//
// Every differentiable operation attaches a `GradNode` to its output: the inputs and a
// backward rule written with differentiable tensor operations. `grad(of:wrt:)` walks the graph
// in reverse topological order. With `createGraph: true` the backward rules run with recording
// on, so the gradients are themselves differentiable (R1 and path-length regularisation need
// the gradient of a gradient); otherwise they run untracked and the graph is released as it is
// consumed, freeing saved activations early.

#if canImport(Glibc)
import Glibc
#endif

/// One recorded operation.
public final class GradNode {
    /// Operation name (for error messages and graph dumps).
    public let name: String
    /// Inputs of the operation, in the order the backward rule returns their gradients.
    public private(set) var inputs: [Tensor]
    /// Index of the input that is a weight, for `noWeightGradients`.
    public let weightInput: Int?
    private var rule: ((Tensor, [Bool]) -> [Tensor?])?

    init(name: String, inputs: [Tensor], weightInput: Int?, rule: @escaping (Tensor, [Bool]) -> [Tensor?]) {
        self.name = name
        self.inputs = inputs
        self.weightInput = weightInput
        self.rule = rule
    }

    /// Gradients of the inputs given the output gradient; `needs[i]` says whether input `i`'s
    /// gradient is wanted (rules may skip the others and return nil).
    func apply(_ gradOutput: Tensor, needs: [Bool]) -> [Tensor?] {
        guard let rule else {
            fatalError("autograd: the graph of '\(name)' was already released by a previous backward pass; pass retainGraph: true to differentiate it twice")
        }
        return rule(gradOutput, needs)
    }

    /// Drops the saved tensors and the rule.
    func release() {
        rule = nil
        inputs = []
    }
}

/// Recording state, per thread (tests and data-loading threads may run autograd concurrently;
/// kernel worker threads never record).
final class GradState {
    var enabled = true
    var weightGradients = true
}

public enum GradMode {
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { pointer in
            if let pointer { Unmanaged<GradState>.fromOpaque(pointer).release() }
        }
        return key
    }()

    @inline(__always) static var state: GradState {
        if let p = pthread_getspecific(key) { return Unmanaged<GradState>.fromOpaque(p).takeUnretainedValue() }
        let s = GradState()
        pthread_setspecific(key, Unmanaged.passRetained(s).toOpaque())
        return s
    }

    /// Whether operations are recorded on this thread.
    public internal(set) static var isEnabled: Bool {
        get { state.enabled }
        set { state.enabled = newValue }
    }

    /// Whether backward passes compute weight gradients (see `noWeightGradients`).
    public internal(set) static var weightGradientsEnabled: Bool {
        get { state.weightGradients }
        set { state.weightGradients = newValue }
    }
}

/// Runs `body` without recording operations.
@discardableResult
public func noGrad<R>(_ body: () throws -> R) rethrows -> R {
    try withGradMode(false, body)
}

/// Runs `body` with recording on or off.
@discardableResult
public func withGradMode<R>(_ enabled: Bool, _ body: () throws -> R) rethrows -> R {
    let saved = GradMode.isEnabled
    GradMode.isEnabled = enabled
    defer { GradMode.isEnabled = saved }
    return try body()
}

/// Inside `body`, backward passes skip the gradients of operation weights (convolution and
/// linear weights) even where the graph would reach them: stylegan2-ada's
/// `no_weight_gradients()` around the inner gradient of R1 and path length. The outer
/// backward still reaches the weights through the recorded gradient graph.
@discardableResult
public func noWeightGradients<R>(_ body: () throws -> R) rethrows -> R {
    let saved = GradMode.weightGradientsEnabled
    GradMode.weightGradientsEnabled = false
    defer { GradMode.weightGradientsEnabled = saved }
    return try body()
}

extension Tensor {
    /// Attaches a backward rule to `self` (an op's fresh output) when recording is on and some
    /// input requires gradients. Returns `self`.
    @inline(__always) @discardableResult
    func recorded(_ name: String, _ inputs: [Tensor], weightInput: Int? = nil,
                  _ rule: @escaping (_ gradOutput: Tensor, _ needs: [Bool]) -> [Tensor?]) -> Tensor {
        if GradMode.isEnabled && inputs.contains(where: { $0.requiresGrad }) {
            requiresGrad = true
            gradNode = GradNode(name: name, inputs: inputs, weightInput: weightInput, rule: rule)
        }
        return self
    }
}

public enum Autograd {
    /// Gradients of `outputs` (weighted by `gradOutputs`, ones by default) with respect to
    /// `inputs`. An input the outputs do not depend on gets nil.
    public static func grad(of outputs: [Tensor], wrt inputs: [Tensor], gradOutputs: [Tensor]? = nil,
                            createGraph: Bool = false, retainGraph: Bool? = nil) -> [Tensor?] {
        let targets = Set(inputs.map { ObjectIdentifier($0) })
        let result = run(outputs: outputs, gradOutputs: gradOutputs, targets: targets, accumulateLeaves: false,
                         createGraph: createGraph, retainGraph: retainGraph ?? createGraph)
        return inputs.map { result[ObjectIdentifier($0)] }
    }

    /// Accumulates d outputs / d leaf into every leaf's `.grad`.
    public static func backward(_ outputs: [Tensor], gradOutputs: [Tensor]? = nil, createGraph: Bool = false, retainGraph: Bool? = nil) {
        _ = run(outputs: outputs, gradOutputs: gradOutputs, targets: nil, accumulateLeaves: true,
                createGraph: createGraph, retainGraph: retainGraph ?? createGraph)
    }

    private static func run(outputs: [Tensor], gradOutputs: [Tensor]?, targets: Set<ObjectIdentifier>?,
                            accumulateLeaves: Bool, createGraph: Bool, retainGraph: Bool) -> [ObjectIdentifier: Tensor] {
        // 1. Topological order (inputs before outputs) by iterative depth-first search.
        var order: [Tensor] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(Tensor, Int)] = []
        for root in outputs where root.requiresGrad {
            if visited.insert(ObjectIdentifier(root)).inserted { stack.append((root, 0)) }
            while let (tensor, next) = stack.last {
                let inputs = tensor.gradNode?.inputs ?? []
                if next < inputs.count {
                    stack[stack.count - 1].1 = next + 1
                    let child = inputs[next]
                    if child.requiresGrad && visited.insert(ObjectIdentifier(child)).inserted { stack.append((child, 0)) }
                } else {
                    order.append(tensor)
                    stack.removeLast()
                }
            }
        }

        // 2. Which tensors lead to something we want a gradient for.
        var needed = Set<ObjectIdentifier>()
        for t in order {
            let id = ObjectIdentifier(t)
            let wanted: Bool
            if let targets { wanted = targets.contains(id) } else { wanted = t.gradNode == nil && t.requiresGrad }
            if wanted || (t.gradNode?.inputs.contains { needed.contains(ObjectIdentifier($0)) } ?? false) {
                needed.insert(id)
            }
        }

        // 3. Seed the output gradients.
        var grads: [ObjectIdentifier: Tensor] = [:]
        var owned = Set<ObjectIdentifier>()  // accumulation buffers this pass created (safe to add into)
        for (i, out) in outputs.enumerated() where out.requiresGrad {
            let seed = gradOutputs.map { $0[i] } ?? Tensor.ones(out.shape)
            guard seed.shape.elementCount == out.count else { shapeFailure("gradOutput \(seed.shape) for output \(out.shape)") }
            accumulate(&grads, &owned, out, seed, createGraph: createGraph)
        }

        // 4. Reverse sweep.
        let result: [ObjectIdentifier: Tensor] = withGradMode(createGraph) {
            var result: [ObjectIdentifier: Tensor] = [:]
            for t in order.reversed() {
                let id = ObjectIdentifier(t)
                guard let g = grads[id] else { continue }
                if let targets, targets.contains(id) { result[id] = g }
                if let node = t.gradNode {
                    var needs = node.inputs.map { $0.requiresGrad && needed.contains(ObjectIdentifier($0)) }
                    if !GradMode.weightGradientsEnabled, let w = node.weightInput { needs[w] = false }
                    if needs.contains(true) {
                        let inputGrads = node.apply(g, needs: needs)
                        for (i, input) in node.inputs.enumerated() where needs[i] {
                            if let ig = inputGrads[i] { accumulate(&grads, &owned, input, ig, createGraph: createGraph) }
                        }
                    }
                    if !retainGraph { node.release() }
                } else if accumulateLeaves {
                    accumulateLeafGrad(t, g, createGraph: createGraph)
                }
                if targets?.contains(id) != true { grads[id] = nil }
            }
            return result
        }
        return result
    }

    private static func accumulate(_ grads: inout [ObjectIdentifier: Tensor], _ owned: inout Set<ObjectIdentifier>,
                                   _ tensor: Tensor, _ g: Tensor, createGraph: Bool) {
        let id = ObjectIdentifier(tensor)
        let g = g.shape == tensor.shape ? g : g.reshaped(tensor.shape)
        guard let existing = grads[id] else {
            grads[id] = g
            return
        }
        if createGraph {
            grads[id] = existing + g
        } else if owned.contains(id) {
            existing.addInPlace(g)
        } else {
            let sum = noGrad { existing + g }
            grads[id] = sum
            owned.insert(id)
        }
    }

    private static func accumulateLeafGrad(_ leaf: Tensor, _ g: Tensor, createGraph: Bool) {
        if let existing = leaf.grad {
            if createGraph { leaf.grad = existing + g } else { existing.addInPlace(g) }
        } else {
            leaf.grad = createGraph ? g.reshaped(leaf.shape) : g.copy().reshaped(leaf.shape)
        }
    }
}

extension Tensor {
    /// Accumulates gradients of this tensor (ones by default) into the leaves' `.grad`.
    public func backward(_ gradOutput: Tensor? = nil, createGraph: Bool = false, retainGraph: Bool? = nil) {
        Autograd.backward([self], gradOutputs: gradOutput.map { [$0] }, createGraph: createGraph, retainGraph: retainGraph)
    }

    /// Clears `.grad`.
    public func zeroGrad() { grad = nil }
}

/// Gradients of `output` with respect to `inputs` (see `Autograd.grad`).
public func grad(of output: Tensor, wrt inputs: [Tensor], gradOutput: Tensor? = nil,
                 createGraph: Bool = false, retainGraph: Bool? = nil) -> [Tensor?] {
    Autograd.grad(of: [output], wrt: inputs, gradOutputs: gradOutput.map { [$0] }, createGraph: createGraph, retainGraph: retainGraph)
}
