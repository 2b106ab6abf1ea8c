// Dropout with a seeded mask: y = x * mask / (1 - p) in training, identity otherwise.

extension Tensor {
    /// Dropout drawing its mask from `generator`.
    public func dropout(_ p: Float, training: Bool, generator: RandomGenerator) -> Tensor {
        guard training && p > 0 else { return self }
        guard p < 1 else { return self * 0 }
        let keep = generator.bernoulli(shape, p: 1 - p)
        return dropout(mask: keep, p: p)
    }

    /// Dropout with an explicit 0/1 keep-mask (as stored by reference runs).
    public func dropout(mask: Tensor, p: Float) -> Tensor {
        guard mask.count == count else { shapeFailure("dropout mask \(mask.shape) for \(shape)") }
        return self * (mask.reshaped(shape) * (1 / (1 - p)))
    }
}
