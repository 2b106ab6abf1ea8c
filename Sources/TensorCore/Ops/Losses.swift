// Regression losses with mean reduction (PyTorch F.l1_loss and F.mse_loss).

/// mean |a - b|; the gradient at a == b is 0.
public func l1Loss(_ a: Tensor, _ b: Tensor) -> Tensor { (a - b).abs().mean() }

/// mean (a - b)^2.
public func mseLoss(_ a: Tensor, _ b: Tensor) -> Tensor { (a - b).square().mean() }
