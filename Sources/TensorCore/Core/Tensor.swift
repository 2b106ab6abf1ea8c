// The tensor: contiguous, row-major float32 storage (NCHW for images) with a shape, and the
// autograd links (`gradNode`, `grad`). A tensor is a reference with identity: graph nodes,
// optimizer state and EMA copies refer to it. Reshapes share storage; every other view is a
// copy. Only optimizers and explicitly named in-place methods mutate values.

/// A shape or size mismatch, with the operation name and the offending shapes.
public struct ShapeError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Traps with a clear message (programming errors inside the tensor library: wrong shapes
/// passed by model code). Input validation that depends on files or flags throws instead.
@inline(never)
public func shapeFailure(_ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) -> Never {
    fatalError("shape error: \(message())", file: file, line: line)
}

public final class Tensor: CustomStringConvertible {
    /// Dimensions, outermost first. `[]` is a scalar.
    public let shape: [Int]
    /// Number of elements (product of `shape`).
    public let count: Int
    /// The storage (shared by reshapes of this tensor).
    public let storage: TensorStorage
    /// When true, operations on this tensor are recorded for differentiation.
    public var requiresGrad: Bool
    /// The operation that produced this tensor (nil for leaves and untracked results).
    public internal(set) var gradNode: GradNode?
    /// Accumulated gradient (leaves, filled by `backward`).
    public var grad: Tensor?

    /// Creates an uninitialised tensor.
    public init(uninitializedShape shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        self.shape = shape
        count = shape.reduce(1, *)
        storage = TensorStorage(count: count)
        requiresGrad = false
    }

    /// A tensor sharing `storage` (reshape).
    init(shape: [Int], sharing storage: TensorStorage) {
        self.shape = shape
        count = shape.reduce(1, *)
        precondition(count <= storage.count, "view of \(count) elements over \(storage.count)")
        self.storage = storage
        requiresGrad = false
    }

    /// A tensor holding `values` with `shape`.
    public convenience init(_ values: [Float], shape: [Int]) {
        let n = shape.reduce(1, *)
        guard values.count == n else { shapeFailure("\(values.count) values for shape \(shape)") }
        self.init(uninitializedShape: shape)
        if n > 0 { values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: n) } }
    }

    /// A 1-D tensor.
    public convenience init(_ values: [Float]) { self.init(values, shape: [values.count]) }

    /// A scalar (shape `[]`).
    public convenience init(scalar: Float) { self.init([scalar], shape: []) }

    /// Raw element pointer (valid while the tensor lives).
    @inline(__always) public var data: UnsafeMutablePointer<Float> { storage.pointer }

    public var rank: Int { shape.count }
    public var isLeaf: Bool { gradNode == nil }

    public static func zeros(_ shape: [Int]) -> Tensor { full(shape, 0) }
    public static func ones(_ shape: [Int]) -> Tensor { full(shape, 1) }

    public static func full(_ shape: [Int], _ value: Float) -> Tensor {
        let t = Tensor(uninitializedShape: shape)
        t.fill(value)
        return t
    }

    /// `[0, 1, ..., n-1]`.
    public static func arange(_ n: Int) -> Tensor {
        let t = Tensor(uninitializedShape: [n])
        for i in 0..<n { t.data[i] = Float(i) }
        return t
    }

    /// The values as an array.
    public func toArray() -> [Float] { Array(UnsafeBufferPointer(start: data, count: count)) }

    /// The value of a one-element tensor.
    public func item() -> Float {
        guard count == 1 else { shapeFailure("item() of a tensor with shape \(shape)") }
        return data[0]
    }

    public subscript(flat index: Int) -> Float {
        get { data[index] }
        set { data[index] = newValue }
    }

    /// A new leaf sharing storage, without gradient tracking.
    public func detach() -> Tensor { Tensor(shape: shape, sharing: storage) }

    /// A deep copy without gradient tracking.
    public func copy() -> Tensor {
        let t = Tensor(uninitializedShape: shape)
        if count > 0 { t.data.update(from: data, count: count) }
        return t
    }

    /// Marks this tensor as a leaf that requires gradients and returns it.
    @discardableResult
    public func requiringGrad(_ flag: Bool = true) -> Tensor {
        requiresGrad = flag
        return self
    }

    // MARK: In-place mutation (optimizers, initialisation, buffers). Never recorded.

    public func fill(_ value: Float) {
        if value == 0 {
            Parallel.forRange(count, grain: 1 << 18) { r in (data + r.lowerBound).update(repeating: 0, count: r.count) }
        } else {
            Parallel.forRange(count, grain: 1 << 18) { r in (data + r.lowerBound).update(repeating: value, count: r.count) }
        }
    }

    /// Copies values from a tensor of the same element count.
    public func assign(_ other: Tensor) {
        guard other.count == count else { shapeFailure("assign \(other.shape) into \(shape)") }
        if other.storage === storage { return }
        data.update(from: other.data, count: count)
    }

    public func assign(_ values: [Float]) {
        guard values.count == count else { shapeFailure("assign \(values.count) values into \(shape)") }
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: count) }
    }

    public var description: String {
        let preview = toArray().prefix(8).map { "\($0)" }.joined(separator: ", ")
        return "Tensor(shape: \(shape), [\(preview)\(count > 8 ? ", ..." : "")])"
    }
}

extension Array where Element == Int {
    /// Product of the dimensions.
    public var elementCount: Int { reduce(1, *) }
}

/// Row-major strides of a shape.
public func contiguousStrides(_ shape: [Int]) -> [Int] {
    var strides = [Int](repeating: 1, count: shape.count)
    var s = 1
    for i in stride(from: shape.count - 1, through: 0, by: -1) {
        strides[i] = s
        s *= shape[i]
    }
    return strides
}

/// Resolves a possibly negative dimension index.
@inline(__always)
public func normalizeDim(_ dim: Int, rank: Int) -> Int {
    let d = dim < 0 ? dim + rank : dim
    guard d >= 0 && d < max(rank, 1) else { shapeFailure("dimension \(dim) out of range for rank \(rank)") }
    return d
}

/// NumPy broadcasting of two shapes.
public func broadcastShapes(_ a: [Int], _ b: [Int]) -> [Int] {
    let n = max(a.count, b.count)
    var out = [Int](repeating: 1, count: n)
    for i in 0..<n {
        let da = i < n - a.count ? 1 : a[i - (n - a.count)]
        let db = i < n - b.count ? 1 : b[i - (n - b.count)]
        if da == db || db == 1 { out[i] = da } else if da == 1 { out[i] = db } else {
            shapeFailure("shapes \(a) and \(b) cannot be broadcast")
        }
    }
    return out
}
