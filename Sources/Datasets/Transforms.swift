// Image transforms, re-drawn every time an image is used (DECISIONS D27): RandomResizedCrop +
// horizontal flip (training), Resize(int(size / 0.875)) + CenterCrop (evaluation), or plain
// (GAN data, optional flip). Spatial transforms act on 8-bit pixels and round the result to 8
// bits as PIL does; then pixels become [-1, 1] as x / 127.5 - 1 (DECISIONS B11). The ImageNet
// normalisation is applied later, right before the classifier (`imagenetNormalized`).
import ImageCodecs
import TensorCore
#if canImport(Glibc)
import Glibc
#endif

public enum ImageTransform: Sendable, Equatable {
    /// The image as is (resized when its size differs), flipped with `flipProbability`.
    case plain(flipProbability: Double)
    /// torchvision RandomResizedCrop(size, scale, ratio) then RandomHorizontalFlip.
    case randomResizedCrop(scale: ClosedRange<Double>, ratio: ClosedRange<Double>, flipProbability: Double)
    /// torchvision Resize(int(size / ratio)) then CenterCrop(size).
    case resizeCenterCrop(ratio: Double)

    /// The classifier's training transform (spec/resnet.md Section 6).
    public static let classifierTrain = ImageTransform.randomResizedCrop(scale: 0.08...1, ratio: 0.75...(4.0 / 3.0), flipProbability: 0.5)
    /// The classifier's evaluation transform.
    public static let classifierTest = ImageTransform.resizeCenterCrop(ratio: 0.875)

    public var isRandom: Bool {
        switch self {
        case .plain(let p): return p > 0
        case .randomResizedCrop: return true
        case .resizeCenterCrop: return false
        }
    }

    /// Python's round() (half to even), as torchvision uses.
    @inline(__always) static func pyRound(_ x: Double) -> Int { Int(x.rounded(.toNearestOrEven)) }

    /// torchvision's RandomResizedCrop.get_params: (top, left, height, width).
    public static func randomResizedCropBox(width: Int, height: Int, scale: ClosedRange<Double>, ratio: ClosedRange<Double>,
                                            rng: RandomGenerator) -> CropBox {
        let area = Double(width * height)
        let logLow = log(ratio.lowerBound), logHigh = log(ratio.upperBound)
        for _ in 0..<10 {
            let target = area * (scale.lowerBound + (scale.upperBound - scale.lowerBound) * rng.nextDouble())
            let aspect = exp(logLow + (logHigh - logLow) * rng.nextDouble())
            let w = pyRound((target * aspect).squareRoot()), h = pyRound((target / aspect).squareRoot())
            if w > 0 && w <= width && h > 0 && h <= height {
                let top = rng.nextInt(height - h + 1), left = rng.nextInt(width - w + 1)
                return CropBox(x: left, y: top, width: w, height: h)
            }
        }
        // Fallback: central crop with the aspect ratio clamped to the range.
        let inRatio = Double(width) / Double(height)
        var w = width, h = height
        if inRatio < ratio.lowerBound {
            h = pyRound(Double(w) / ratio.lowerBound)
        } else if inRatio > ratio.upperBound {
            w = pyRound(Double(h) * ratio.upperBound)
        }
        return CropBox(x: (width - w) / 2, y: (height - h) / 2, width: w, height: h)
    }

    /// Writes the transformed image as planar [3, size, size] floats in [-1, 1]. Random
    /// choices come from `rng` (crop, then flip).
    public func apply(_ image: RGBImage, size: Int, rng: RandomGenerator, quantize: Bool = true, into out: UnsafeMutablePointer<Float>) {
        let count = size * size
        var flip = false
        switch self {
        case .plain(let p):
            flip = p > 0 && rng.nextDouble() < p
            if image.width == size && image.height == size {
                image.pixels.withUnsafeBufferPointer { px in
                    for y in 0..<size {
                        for x in 0..<size {
                            let src = (y * size + (flip ? size - 1 - x : x)) * 3
                            for c in 0..<3 { out[c * count + y * size + x] = Float(px[src + c]) / 127.5 - 1 }
                        }
                    }
                }
                return
            }
            ImageResize.resamplePlanar(image, crop: .whole(image), width: size, height: size, flip: flip, into: out)
        case .randomResizedCrop(let scale, let ratio, let p):
            let box = Self.randomResizedCropBox(width: image.width, height: image.height, scale: scale, ratio: ratio, rng: rng)
            flip = p > 0 && rng.nextDouble() < p
            ImageResize.resamplePlanar(image, crop: box, width: size, height: size, flip: flip, into: out)
        case .resizeCenterCrop(let ratio):
            let target = Int(Double(size) / ratio)
            let short = min(image.width, image.height), long = max(image.width, image.height)
            let scaledLong = Int(Double(target) * Double(long) / Double(short))
            let (rw, rh) = image.width <= image.height ? (target, scaledLong) : (scaledLong, target)
            var resized = [Float](repeating: 0, count: 3 * rw * rh)
            resized.withUnsafeMutableBufferPointer { ImageResize.resamplePlanar(image, crop: .whole(image), width: rw, height: rh, into: $0.baseAddress!) }
            if quantize {
                for i in resized.indices { resized[i] = Float(ImageResize.quantize(resized[i])) }
            }
            let top = Int((Double(rh - size) / 2).rounded(.toNearestOrEven)), left = Int((Double(rw - size) / 2).rounded(.toNearestOrEven))
            for c in 0..<3 {
                for y in 0..<size {
                    for x in 0..<size {
                        let sy = y + top, sx = x + left
                        let v: Float = (sy >= 0 && sy < rh && sx >= 0 && sx < rw) ? resized[(c * rh + sy) * rw + sx] : 0
                        out[c * count + y * size + x] = v / 127.5 - 1
                    }
                }
            }
            return
        }
        for i in 0..<(3 * count) {
            let v = quantize ? Float(ImageResize.quantize(out[i])) : out[i]
            out[i] = v / 127.5 - 1
        }
    }
}

// The ImageNet normalisation applied right before the classifier is `imagenetNormalized`
// (TensorCore), shared with the models that call the classifier.
