// Crop + antialiased bilinear resampling of 8-bit RGB images, with the per-axis weight tables of
// the tensor core's `interpolate` (PyTorch bilinear, align_corners=False, antialias=True), so a
// transform here equals `interpolate` on the same pixels. Horizontal pass first, then vertical,
// each tap accumulated in the same order as `interpolate`.
import ImageCodecs
import TensorCore

/// A rectangle of source pixels.
public struct CropBox: Equatable, Sendable, CustomStringConvertible {
    public var x, y, width, height: Int
    public init(x: Int, y: Int, width: Int, height: Int) {
        self.x = x
        self.y = y
        self.width = width
        self.height = height
    }
    public static func whole(_ image: RGBImage) -> CropBox { CropBox(x: 0, y: 0, width: image.width, height: image.height) }
    /// The central largest square (offsets rounded down).
    public static func centerSquare(width: Int, height: Int) -> CropBox {
        let side = min(width, height)
        return CropBox(x: (width - side) / 2, y: (height - side) / 2, width: side, height: side)
    }
    public var description: String { "\(width)x\(height)+\(x)+\(y)" }
}

public enum ImageResize {
    /// Tables for `inputSize -> outputSize` (antialiased when shrinking; plain bilinear
    /// otherwise, which is what the antialiased filter reduces to when enlarging).
    static func table(_ inputSize: Int, _ outputSize: Int, antialias: Bool) -> ResampleTable {
        antialias ? ResampleTable.bilinearAntialiased(inputSize, outputSize) : ResampleTable.bilinear(inputSize, outputSize)
    }

    /// Resamples `crop` of interleaved float pixels (`channels` per pixel, row stride
    /// `rowStride` floats) to `width` x `height`, writing planar output `out[c][y][x]`
    /// (mirrored horizontally when `flip`). The core every resize here goes through.
    public static func resamplePlanar(_ source: UnsafePointer<Float>, channels: Int, rowStride: Int, crop: CropBox,
                                      width: Int, height: Int, antialias: Bool = true, flip: Bool = false,
                                      into out: UnsafeMutablePointer<Float>) {
        resample(channels: channels, crop: crop, width: width, height: height, antialias: antialias, flip: flip, into: out) { y, x, c in
            source[y * rowStride + x * channels + c]
        }
    }

    /// The same for an 8-bit RGB image (planar float output in [0, 255], not rounded).
    public static func resamplePlanar(_ image: RGBImage, crop: CropBox, width: Int, height: Int, antialias: Bool = true,
                                      flip: Bool = false, into out: UnsafeMutablePointer<Float>) {
        precondition(crop.x >= 0 && crop.y >= 0 && crop.width > 0 && crop.height > 0 && crop.x + crop.width <= image.width
                     && crop.y + crop.height <= image.height, "crop \(crop) outside a \(image.width)x\(image.height) image")
        image.pixels.withUnsafeBufferPointer { px in
            let p = px.baseAddress!, stride = image.width * 3
            resample(channels: 3, crop: crop, width: width, height: height, antialias: antialias, flip: flip, into: out) { y, x, c in
                Float(p[y * stride + x * 3 + c])
            }
        }
    }

    @inline(__always)
    static func resample(channels: Int, crop: CropBox, width: Int, height: Int, antialias: Bool, flip: Bool,
                         into out: UnsafeMutablePointer<Float>, _ pixel: (Int, Int, Int) -> Float) {
        let tx = table(crop.width, width, antialias: antialias), ty = table(crop.height, height, antialias: antialias)
        // Horizontal pass over the crop's rows: tmp[y][c][x].
        var tmp = [Float](repeating: 0, count: crop.height * channels * width)
        tmp.withUnsafeMutableBufferPointer { t in
            tx.offsets.withUnsafeBufferPointer { offsets in
                tx.indices.withUnsafeBufferPointer { indices in
                    tx.weights.withUnsafeBufferPointer { weights in
                        for iy in 0..<crop.height {
                            let sy = crop.y + iy
                            for c in 0..<channels {
                                let row = t.baseAddress! + (iy * channels + c) * width
                                for ox in 0..<width {
                                    var acc: Float = 0
                                    for e in offsets[ox]..<offsets[ox + 1] { acc += weights[e] * pixel(sy, crop.x + Int(indices[e]), c) }
                                    row[flip ? width - 1 - ox : ox] = acc
                                }
                            }
                        }
                    }
                }
            }
            // Vertical pass.
            for c in 0..<channels {
                for oy in 0..<height {
                    let row = out + (c * height + oy) * width
                    row.update(repeating: 0, count: width)
                    for e in ty.offsets[oy]..<ty.offsets[oy + 1] {
                        let wgt = ty.weights[e], src = t.baseAddress! + (Int(ty.indices[e]) * channels + c) * width
                        for ox in 0..<width { row[ox] += wgt * src[ox] }
                    }
                }
            }
        }
    }

    /// Crops and resizes to an 8-bit image (rounded to nearest, clamped), as a prepared image.
    public static func resized(_ image: RGBImage, crop: CropBox, width: Int, height: Int, antialias: Bool = true) -> RGBImage {
        var planar = [Float](repeating: 0, count: 3 * width * height)
        planar.withUnsafeMutableBufferPointer { resamplePlanar(image, crop: crop, width: width, height: height, antialias: antialias, into: $0.baseAddress!) }
        var pixels = [UInt8](repeating: 0, count: 3 * width * height)
        for c in 0..<3 {
            for i in 0..<(width * height) { pixels[i * 3 + c] = quantize(planar[c * width * height + i]) }
        }
        return RGBImage(width: width, height: height, pixels: pixels)
    }

    /// Rounds to the nearest 8-bit value (as PIL stores a resized image).
    @inline(__always) public static func quantize(_ v: Float) -> UInt8 {
        UInt8(min(255, max(0, (v + 0.5).rounded(.down))))
    }
}
