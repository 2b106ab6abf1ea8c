// Standard layers with PyTorch semantics, names and default initialisation:
// Linear, Conv2d, BatchNorm2d, Dropout, and the Sequential / ModuleList containers.
import TensorCore

/// PyTorch's default initialisation bound for weights and biases: 1 / sqrt(fan_in)
/// (kaiming_uniform with a = sqrt(5) gives the same bound for the weight).
func defaultBound(fanIn: Int) -> Float { fanIn > 0 ? 1 / Float(fanIn).squareRoot() : 0 }

public final class Linear: Module {
    public let weight: Tensor
    public let bias: Tensor?

    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, generator: RandomGenerator) {
        let bound = defaultBound(fanIn: inFeatures)
        weight = generator.uniform([outFeatures, inFeatures], low: -bound, high: bound)
        self.bias = bias ? generator.uniform([outFeatures], low: -bound, high: bound) : nil
        super.init()
        parameter("weight", weight)
        if let b = self.bias { parameter("bias", b) }
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { linear(x, weight: weight, bias: bias) }
}

public final class Conv2d: Module {
    public let weight: Tensor
    public let bias: Tensor?
    public let stride: (Int, Int)
    public let padding: (Int, Int)
    public let groups: Int

    public init(_ inChannels: Int, _ outChannels: Int, kernel: (Int, Int), stride: (Int, Int) = (1, 1),
                padding: (Int, Int) = (0, 0), groups: Int = 1, bias: Bool = true, generator: RandomGenerator) {
        let bound = defaultBound(fanIn: inChannels / groups * kernel.0 * kernel.1)
        weight = generator.uniform([outChannels, inChannels / groups, kernel.0, kernel.1], low: -bound, high: bound)
        self.bias = bias ? generator.uniform([outChannels], low: -bound, high: bound) : nil
        self.stride = stride
        self.padding = padding
        self.groups = groups
        super.init()
        parameter("weight", weight)
        if let b = self.bias { parameter("bias", b) }
    }

    public convenience init(_ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0,
                            groups: Int = 1, bias: Bool = true, generator: RandomGenerator) {
        self.init(inChannels, outChannels, kernel: (kernel, kernel), stride: (stride, stride), padding: (padding, padding),
                  groups: groups, bias: bias, generator: generator)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        conv2d(x, weight, bias: bias, stride: stride, padding: padding, groups: groups)
    }
}

public final class BatchNorm2d: Module {
    public let weight: Tensor
    public let bias: Tensor
    public let runningMean: Tensor
    public let runningVar: Tensor
    public let numBatchesTracked: Tensor
    public let eps: Float
    public let momentum: Float
    /// Set for synchronised batch normalisation across data-parallel processes.
    public var reducer: StatisticsReducer?

    public init(_ channels: Int, eps: Float = 1e-5, momentum: Float = 0.1) {
        weight = Tensor.ones([channels])
        bias = Tensor.zeros([channels])
        runningMean = Tensor.zeros([channels])
        runningVar = Tensor.ones([channels])
        numBatchesTracked = Tensor.zeros([])
        self.eps = eps
        self.momentum = momentum
        super.init()
        parameter("weight", weight)
        parameter("bias", bias)
        buffer("running_mean", runningMean)
        buffer("running_var", runningVar)
        buffer("num_batches_tracked", numBatchesTracked, integer: true)
    }

    /// Batch statistics in training mode (updating the running ones), running statistics in
    /// evaluation mode.
    /// `relu`: fuse the ReLU that follows (same result as `.relu()` on the output).
    public func callAsFunction(_ x: Tensor, relu: Bool = false) -> Tensor {
        if isTraining { numBatchesTracked.data[0] += 1 }
        return batchNorm(x, weight: weight, bias: bias, runningMean: runningMean, runningVar: runningVar,
                         training: isTraining, momentum: momentum, eps: eps, relu: relu, reducer: reducer)
    }
}

public final class Dropout: Module {
    public let p: Float
    public init(_ p: Float) {
        self.p = p
        super.init()
    }

    public func callAsFunction(_ x: Tensor, generator: RandomGenerator) -> Tensor {
        x.dropout(p, training: isTraining, generator: generator)
    }
}

/// A list of child modules named "0", "1", ... (PyTorch ModuleList / Sequential naming).
public final class ModuleList<Element: Module>: Module {
    public private(set) var items: [Element] = []

    public init(_ items: [Element] = []) {
        super.init()
        for m in items { append(m) }
    }

    public func append(_ m: Element) {
        child(String(items.count), m)
        items.append(m)
    }

    public subscript(i: Int) -> Element { items[i] }
    public var count: Int { items.count }
}
