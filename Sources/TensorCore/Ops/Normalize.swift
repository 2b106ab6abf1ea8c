// Norms and normalisation: the L2 norm (gradient 0 at the zero vector, as PyTorch), F.normalize
// (x / max(||x||, eps)), and StyleGAN2's normalize_2nd_moment.

extension Tensor {
    /// sqrt(sum x^2) over `dims`.
    public func l2Norm(dims: [Int], keepDims: Bool = false) -> Tensor {
        let reduced = Set(dims.map { normalizeDim($0, rank: rank) })
        let keptShape = shape.enumerated().map { reduced.contains($0.offset) ? 1 : $0.element }
        let outShape = keepDims ? keptShape : shape.enumerated().filter { !reduced.contains($0.offset) }.map(\.element)
        let squares = noGrad { (self * self).sum(dims: Array(reduced), keepDims: true) }
        let out = Elementwise.map(squares, Fn.Sqrt()).reshapedUntracked(outShape)
        return out.recordedWithOutput("l2_norm", [self]) { g, _, out in
            // d||x||/dx = x / ||x||, defined as 0 where the norm is 0 (PyTorch norm_backward).
            let norm = out.reshaped(keptShape)
            let nonzero = Elementwise.map(norm, Fn.NonZero())
            let safe = norm + (1 - nonzero)
            return [self * ((g.reshaped(keptShape) / safe) * nonzero)]
        }
    }

    /// F.normalize(p=2): x / max(||x||, eps) along `dim`.
    public func normalized(dim: Int, eps: Float = 1e-12) -> Tensor {
        self / l2Norm(dims: [dim], keepDims: true).clamp(min: eps)
    }
}

/// x * rsqrt(mean(x^2, dim) + eps) (StyleGAN2 normalize_2nd_moment).
public func normalize2ndMoment(_ x: Tensor, dim: Int = 1, eps: Float = 1e-8) -> Tensor {
    x * ((x * x).mean(dims: [dim], keepDims: true) + eps).rsqrt()
}

/// ImageNet mean and standard deviation (torchvision).
public let imagenetMean: [Float] = [0.485, 0.456, 0.406]
public let imagenetStd: [Float] = [0.229, 0.224, 0.225]

/// Maps images in [-1, 1] ([N, 3, H, W]) to [0, 1] and normalises them with the ImageNet
/// statistics, as `((x + 1) / 2 - mean) / std` per channel, in this float32 order: the step right
/// before every call of the classifier (DECISIONS B11). Differentiable.
public func imagenetNormalized(_ x: Tensor) -> Tensor {
    guard x.rank == 4 && x.shape[1] == 3 else { shapeFailure("imagenetNormalized expects [N, 3, H, W], got \(x.shape)") }
    let mean = Tensor(imagenetMean, shape: [1, 3, 1, 1])
    let std = Tensor(imagenetStd, shape: [1, 3, 1, 1])
    return ((x + 1) / 2 - mean) / std
}
