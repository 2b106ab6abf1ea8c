// Conversions between RGB8 images and NCHW float tensors: decoded images to [0, 255] batches,
// and generator output (about [-1, 1]) to 8-bit pictures as the reference metric code does.
import ImageCodecs
import TensorCore

public enum ImageTensors {
    /// [N, 3, H, W] with values in [0, 255].
    public static func tensor(_ images: [RGBImage]) -> Tensor {
        let h = images[0].height, w = images[0].width
        let t = Tensor(uninitializedShape: [images.count, 3, h, w])
        for (n, image) in images.enumerated() {
            precondition(image.width == w && image.height == h, "images of different sizes in one batch")
            for c in 0..<3 {
                let plane = t.data + (n * 3 + c) * h * w
                for i in 0..<(h * w) { plane[i] = Float(image.pixels[i * 3 + c]) }
            }
        }
        return t
    }

    /// StyleGAN2 output in about [-1, 1] -> 8-bit images: uint8(clamp(x * 127.5 + 128, 0, 255)).
    /// A NaN (a diverged network) becomes 0 rather than trapping.
    public static func images(fromGenerated t: Tensor) -> [RGBImage] {
        let n = t.shape[0], h = t.shape[2], w = t.shape[3]
        return (0..<n).map { i in
            var pixels = [UInt8](repeating: 0, count: h * w * 3)
            for c in 0..<3 {
                let plane = t.data + (i * 3 + c) * h * w
                for p in 0..<(h * w) { pixels[p * 3 + c] = byte(plane[p] * 127.5 + 128) }
            }
            return RGBImage(width: w, height: h, pixels: pixels)
        }
    }

    /// uint8(clamp(v, 0, 255)) with truncation as PyTorch's cast; NaN -> 0.
    @inline(__always) public static func byte(_ v: Float) -> UInt8 {
        v.isNaN ? 0 : UInt8(Swift.min(Swift.max(v, 0), 255))
    }

    /// Generator output [N, 3, H, W] -> the [0, 255] values a detector sees (after the uint8 cast).
    public static func quantized(fromGenerated t: Tensor) -> Tensor { tensor(images(fromGenerated: t)) }
}
