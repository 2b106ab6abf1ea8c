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

/// Where the gradient of one input of an operation goes: the operation that produced the
/// input (a non-leaf tensor), or the input itself when it is a leaf. Edges hold graph nodes,
/// not tensors, so an intermediate tensor lives only as long as a backward rule saves it.
enum GradEdge {
    case node(GradNode)
    case leaf(Tensor)
    case none

    var identity: ObjectIdentifier? {
        switch self {
        case .node(let n): return ObjectIdentifier(n)
        case .leaf(let t): return ObjectIdentifier(t)
        case .none: return nil
        }
    }
}

/// One recorded operation (it produced exactly one tensor).
public final class GradNode {
    /// Operation name (for error messages and graph dumps).
    public let name: String
    /// Shape of the tensor this operation produced.
    public let shape: [Int]
    /// One edge per input, in the order the backward rule returns gradients.
    private(set) var edges: [GradEdge]
    /// Index of the input that is a weight, for `noWeightGradients`.
    public let weightInput: Int?
    /// The output's storage, kept only for rules that need the output (exp, sigmoid, ...).
    private var savedOutput: TensorStorage?
    private var rule: ((Tensor, [Bool], GradNode) -> [Tensor?])?

    init(name: String, shape: [Int], edges: [GradEdge], weightInput: Int?, savedOutput: TensorStorage?,
         rule: @escaping (Tensor, [Bool], GradNode) -> [Tensor?]) {
        self.name = name
        self.shape = shape
        self.edges = edges
        self.weightInput = weightInput
        self.savedOutput = savedOutput
        self.rule = rule
    }

    /// The saved output as a tensor whose producing node is this one, so that a gradient written
    /// with it stays differentiable (second order) without a reference cycle.
    func output() -> Tensor {
        guard let savedOutput else { fatalError("autograd: '\(name)' did not save its output") }
        let t = Tensor(shape: shape, sharing: savedOutput)
        t.requiresGrad = true
        t.gradNode = self
        return t
    }

    /// Gradients of the inputs given the output gradient; `needs[i]` says whether input `i`'s
    /// gradient is wanted (rules may skip the others and return nil).
    func apply(_ gradOutput: Tensor, needs: [Bool]) -> [Tensor?] {
        guard let rule else {
            fatalError("autograd: the graph of '\(name)' was already released by a previous backward pass; pass retainGraph: true to differentiate it twice")
        }
        return rule(gradOutput, needs, self)
    }

    /// Drops the saved tensors and the rule.
    func release() {
        rule = nil
        savedOutput = nil
        edges = []
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

/// Inside `body`, backward passes skip the gradients of operation weights that are parameters
/// (convolution and linear weights, graph leaves) even where the graph would reach them:
/// stylegan2-ada's `no_weight_gradients()` around the inner gradient of R1 and path length.
/// The outer backward still reaches the weights through the recorded gradient graph.
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
        attach(name, inputs, weightInput: weightInput, savesOutput: false) { g, needs, _ in rule(g, needs) }
    }

    /// Like `recorded`, for rules that need the operation's output: the rule receives it as a
    /// graph-connected tensor (its storage is kept by the node, without a reference cycle).
    @inline(__always) @discardableResult
    func recordedWithOutput(_ name: String, _ inputs: [Tensor],
                            _ rule: @escaping (_ gradOutput: Tensor, _ needs: [Bool], _ output: Tensor) -> [Tensor?]) -> Tensor {
        attach(name, inputs, weightInput: nil, savesOutput: true) { g, needs, node in rule(g, needs, node.output()) }
    }

    /// Saves the output only when `condition` holds (the rule then receives it, else nil).
    @inline(__always) @discardableResult
    func recordedSavingOutput(if condition: Bool, _ name: String, _ inputs: [Tensor],
                              _ rule: @escaping (_ gradOutput: Tensor, _ needs: [Bool], _ output: Tensor?) -> [Tensor?]) -> Tensor {
        attach(name, inputs, weightInput: nil, savesOutput: condition) { g, needs, node in rule(g, needs, condition ? node.output() : nil) }
    }

    @inline(__always) @discardableResult
    private func attach(_ name: String, _ inputs: [Tensor], weightInput: Int?, savesOutput: Bool,
                        _ rule: @escaping (Tensor, [Bool], GradNode) -> [Tensor?]) -> Tensor {
        if GradMode.isEnabled && inputs.contains(where: { $0.requiresGrad }) {
            requiresGrad = true
            let edges: [GradEdge] = inputs.map { input in
                guard input.requiresGrad else { return .none }
                if let node = input.gradNode { return .node(node) }
                return .leaf(input)
            }
            gradNode = GradNode(name: name, shape: shape, edges: edges, weightInput: weightInput,
                                savedOutput: savesOutput ? storage : nil, rule: rule)
        }
        return self
    }

    /// The graph vertex of this tensor: its producing node, or itself as a leaf.
    var gradEdge: GradEdge {
        guard requiresGrad else { return .none }
        if let node = gradNode { return .node(node) }
        return .leaf(self)
    }
}

public enum Autograd {
    /// Gradients of `outputs` (weighted by `gradOutputs`, ones by default) with respect to
    /// `inputs`. An input the outputs do not depend on gets nil.
    public static func grad(of outputs: [Tensor], wrt inputs: [Tensor], gradOutputs: [Tensor]? = nil,
                            createGraph: Bool = false, retainGraph: Bool? = nil) -> [Tensor?] {
        let targets = Set(inputs.compactMap { $0.gradEdge.identity })
        let result = run(outputs: outputs, gradOutputs: gradOutputs, targets: targets, accumulateLeaves: false,
                         createGraph: createGraph, retainGraph: retainGraph ?? createGraph)
        return inputs.map { input in input.gradEdge.identity.flatMap { result[$0] }.map { $0.shape == input.shape ? $0 : $0.reshaped(input.shape) } }
    }

    /// Accumulates d outputs / d leaf into every leaf's `.grad`. `onLeafGradient` is called for
    /// each leaf as soon as its gradient of this pass is complete (every consumer has
    /// contributed), while the rest of the backward pass still runs: data parallelism starts
    /// the all-reduce of finished gradients there.
    public static func backward(_ outputs: [Tensor], gradOutputs: [Tensor]? = nil, createGraph: Bool = false, retainGraph: Bool? = nil,
                                onLeafGradient: ((Tensor) -> Void)? = nil) {
        _ = run(outputs: outputs, gradOutputs: gradOutputs, targets: nil, accumulateLeaves: true,
                createGraph: createGraph, retainGraph: retainGraph ?? createGraph, onLeafGradient: onLeafGradient)
    }

    /// The one backward engine behind `grad` and `backward`, in four phases:
    /// 1. a topological order of every vertex reachable from the outputs (iterative depth-first
    ///    search, so deep graphs cannot overflow the stack);
    /// 2. the set of vertices that lead to a target (`grad`) or to any leaf (`backward`), so
    ///    rules whose results nobody needs are never evaluated;
    /// 3. the output seeds (ones, or the given cotangents);
    /// 4. one sweep in reverse order: a vertex's gradient is complete when reached (all its
    ///    consumers come later in the order), so its rule runs once, its inputs' gradients are
    ///    summed, and the gradient is dropped unless it is a target.
    /// Summation and the `owned` set: a gradient handed over by a rule may be a tensor the rule
    /// also returned elsewhere (or an output seed the caller keeps), so the first sum into it
    /// allocates a fresh buffer; only buffers this pass allocated (`owned`) are then added
    /// into in place. With `createGraph` every sum is a recorded op instead, so the gradient
    /// can itself be differentiated (R1, path length).
    private static func run(outputs: [Tensor], gradOutputs: [Tensor]?, targets: Set<ObjectIdentifier>?,
                            accumulateLeaves: Bool, createGraph: Bool, retainGraph: Bool,
                            onLeafGradient: ((Tensor) -> Void)? = nil) -> [ObjectIdentifier: Tensor] {
        // 1. Topological order of the graph vertices (inputs before outputs), iterative DFS.
        var order: [GradEdge] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(GradEdge, Int)] = []
        for root in outputs {
            let edge = root.gradEdge
            guard let id = edge.identity, visited.insert(id).inserted else { continue }
            stack.append((edge, 0))
            while let (vertex, next) = stack.last {
                var edges: [GradEdge] = []
                if case .node(let n) = vertex { edges = n.edges }
                if next < edges.count {
                    stack[stack.count - 1].1 = next + 1
                    let child = edges[next]
                    if let cid = child.identity, visited.insert(cid).inserted { stack.append((child, 0)) }
                } else {
                    order.append(vertex)
                    stack.removeLast()
                }
            }
        }

        // 2. Which vertices lead to something we want a gradient for.
        var needed = Set<ObjectIdentifier>()
        for v in order {
            let id = v.identity!
            var wanted: Bool
            switch v {
            case .leaf: wanted = targets?.contains(id) ?? true
            case .node(let n):
                wanted = targets?.contains(id) ?? false
                if !wanted { wanted = n.edges.contains { e in e.identity.map { needed.contains($0) } ?? false } }
            case .none: wanted = false
            }
            if wanted { needed.insert(id) }
        }

        // 3. Seed the output gradients.
        var grads: [ObjectIdentifier: Tensor] = [:]
        var owned = Set<ObjectIdentifier>()  // accumulation buffers this pass created (safe to add into)
        for (i, out) in outputs.enumerated() {
            guard let id = out.gradEdge.identity else { continue }
            let seed = gradOutputs.map { $0[i] } ?? Tensor.ones(out.shape)
            guard seed.count == out.count else { shapeFailure("gradOutput \(seed.shape) for output \(out.shape)") }
            accumulate(&grads, &owned, id, seed.shape == out.shape ? seed : seed.reshaped(out.shape), createGraph: createGraph)
        }

        // 4. Reverse sweep.
        return withGradMode(createGraph) {
            var result: [ObjectIdentifier: Tensor] = [:]
            for v in order.reversed() {
                let id = v.identity!
                guard let g = grads[id] else { continue }
                if let targets, targets.contains(id) { result[id] = g }
                switch v {
                case .node(let node):
                    var needs = node.edges.map { e in e.identity.map { needed.contains($0) } ?? false }
                    // noWeightGradients skips parameter (leaf) weights only: a computed weight, such
                    // as the per-sample weights of a fused modulated convolution, still depends
                    // on what we differentiate.
                    if !GradMode.weightGradientsEnabled, let w = node.weightInput, case .leaf = node.edges[w] { needs[w] = false }
                    if needs.contains(true) {
                        let inputGrads = node.apply(g, needs: needs)
                        for (i, edge) in node.edges.enumerated() where needs[i] {
                            guard let ig = inputGrads[i], let eid = edge.identity else { continue }
                            let shape: [Int]
                            switch edge {
                            case .node(let n): shape = n.shape
                            case .leaf(let t): shape = t.shape
                            case .none: continue
                            }
                            accumulate(&grads, &owned, eid, ig.shape == shape ? ig : ig.reshaped(shape), createGraph: createGraph)
                        }
                    }
                    if !retainGraph { node.release() }
                case .leaf(let leaf):
                    if accumulateLeaves {
                        accumulateLeafGrad(leaf, g, createGraph: createGraph)
                        onLeafGradient?(leaf)
                    }
                case .none:
                    break
                }
                if targets?.contains(id) != true { grads[id] = nil }
            }
            return result
        }
    }

    private static func accumulate(_ grads: inout [ObjectIdentifier: Tensor], _ owned: inout Set<ObjectIdentifier>,
                                   _ id: ObjectIdentifier, _ g: Tensor, createGraph: Bool) {
        guard let existing = grads[id] else {
            grads[id] = g
            return
        }
        if createGraph {
            grads[id] = existing + g
        } else if owned.contains(id) {
            existing.addInPlace(g)
        } else {
            grads[id] = noGrad { existing + g }
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
    public func backward(_ gradOutput: Tensor? = nil, createGraph: Bool = false, retainGraph: Bool? = nil,
                         onLeafGradient: ((Tensor) -> Void)? = nil) {
        Autograd.backward([self], gradOutputs: gradOutput.map { [$0] }, createGraph: createGraph, retainGraph: retainGraph,
                          onLeafGradient: onLeafGradient)
    }

    /// Clears `.grad`.
    public func zeroGrad() { grad = nil }
}

/// Gradients of `output` with respect to `inputs` (see `Autograd.grad`).
public func grad(of output: Tensor, wrt inputs: [Tensor], gradOutput: Tensor? = nil,
                 createGraph: Bool = false, retainGraph: Bool? = nil) -> [Tensor?] {
    Autograd.grad(of: [output], wrt: inputs, gradOutputs: gradOutput.map { [$0] }, createGraph: createGraph, retainGraph: retainGraph)
}
