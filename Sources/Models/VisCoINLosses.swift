// The VisCoIN loss terms (spec viscoin.md section 6, DECISIONS B10/B11).

public enum VisCoINLoss {
    /// "Cross cross-entropy" mean_n(-sum_c softmax(target) * log softmax(prediction)). The
    /// reference takes log(softmax(p)); log_softmax is identical unless a probability underflows.
    public static func crossCrossEntropy(_ prediction: Tensor, _ target: Tensor) -> Tensor {
        let n = Float(prediction.shape[0])
        return -(target.softmax(dim: 1) * prediction.logSoftmax(dim: 1)).sum() / n
    }

    /// alpha-free output fidelity: CCE(Theta logits, stopgrad(f logits)).
    public static func outputFidelity(original: Tensor, explainer: Tensor) -> Tensor {
        crossCrossEntropy(explainer, original.detach())
    }

    /// R(Phi) = mean |normalize(max over 3x3 of Phi)| + mean |Phi|.
    public static func conceptRegularization(_ phi: Tensor) -> Tensor {
        let a = phi.adaptiveMaxPool2d(1).flattened(from: 1)
        return a.normalized(dim: 1).abs().mean() + phi.abs().mean()
    }

    /// O(W) = (sum(|W_hat| |W_hat|^T) - K) / K^2 with rows of conv5.weight L2-normalised.
    public static func conceptOrthogonality(_ conv5Weight: Tensor) -> Tensor {
        let k = conv5Weight.shape[0]
        let w = conv5Weight.reshaped([k, -1]).normalized(dim: 1).abs()
        return (matmul(w, w, transposeB: true).sum() - Float(k)) / Float(k * k)
    }

    /// L1 + MSE + gamma * CCE(rec logits, stopgrad(original logits)) (+ beta * LPIPS, added by the caller).
    public static func reconstruction(reconstructed: Tensor, original: Tensor, reconstructedLogits: Tensor,
                                      originalLogits: Tensor, gamma: Float = 0.1) -> Tensor {
        l1Loss(reconstructed, original) + mseLoss(reconstructed, original)
            + crossCrossEntropy(reconstructedLogits, originalLogits.detach()) * gamma
    }

    /// mean((ws - stopgrad(fixed_w_avg))^2).
    public static func ganRegularization(ws: Tensor, fixedWAvg: Tensor) -> Tensor {
        (ws - fixedWAvg.detach()).square().mean()
    }
}

import TensorCore
