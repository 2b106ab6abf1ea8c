import Common
import ImageCodecs
import Testing

@Suite struct ImageCodecTests {
    let gradient = RGBImage(width: 13, height: 7) { x, y in (UInt8(x * 19), UInt8(y * 36), UInt8((x * y * 7) % 256)) }

    @Test func pngRoundTripIsLossless() throws {
        let bytes = try ImageCodec.encodePNG(gradient)
        #expect(ImageFormat.detect(bytes.withUnsafeBytes { UnsafeRawBufferPointer($0) }) == .png)
        #expect(try ImageCodec.decode(bytes) == gradient)
    }

    @Test func greyPNGBecomesRGB() throws {
        let grey = (0..<(5 * 4)).map { UInt8($0 * 12) }
        let image = try ImageCodec.decode(try ImageCodec.encodeGreyPNG(grey, width: 5, height: 4))
        #expect(image.pixels == grey.flatMap { [$0, $0, $0] })
    }

    @Test func sixteenBitRGBPNG() throws {
        // Two pixels: (0x1234, 0xFFFF, 0x0000) and (0x8080, 0x0101, 0x7F7F); 8-bit = value / 257 rounded.
        let row: [UInt8] = [0x12, 0x34, 0xFF, 0xFF, 0x00, 0x00, 0x80, 0x80, 0x01, 0x01, 0x7F, 0x7F]
        let image = try ImageCodec.decode(TestImages.png(width: 2, height: 1, bitDepth: 16, colorType: 2, rows: [row]))
        #expect(image.pixels == [18, 255, 0, 128, 1, 127])
    }

    @Test func sixteenBitGreyPNG() throws {
        let image = try ImageCodec.decode(TestImages.png(width: 2, height: 1, bitDepth: 16, colorType: 0, rows: [[0xFF, 0xFF, 0x40, 0x40]]))
        #expect(image.pixels == [255, 255, 255, 64, 64, 64])
    }

    @Test func paletteAndAlphaPNGs() throws {
        let palette: [UInt8] = [255, 0, 0, 0, 255, 0, 0, 0, 255]
        let indexed = try ImageCodec.decode(TestImages.png(width: 3, height: 1, bitDepth: 8, colorType: 3, rows: [[2, 0, 1]], palette: palette))
        #expect(indexed.pixels == [0, 0, 255, 255, 0, 0, 0, 255, 0])
        // RGBA: alpha is dropped, not composited (as PIL's convert('RGB')).
        let rgba = try ImageCodec.decode(TestImages.png(width: 2, height: 1, bitDepth: 8, colorType: 6, rows: [[10, 20, 30, 0, 40, 50, 60, 128]]))
        #expect(rgba.pixels == [10, 20, 30, 40, 50, 60])
        let greyAlpha = try ImageCodec.decode(TestImages.png(width: 1, height: 1, bitDepth: 8, colorType: 4, rows: [[77, 255]]))
        #expect(greyAlpha.pixels == [77, 77, 77])
        let fourBitPalette = try ImageCodec.decode(TestImages.png(width: 2, height: 1, bitDepth: 4, colorType: 3, rows: [[0x21]], palette: palette))
        #expect(fourBitPalette.pixels == [0, 0, 255, 0, 255, 0])
    }

    @Test func jpegRGBGreyAndCMYK() throws {
        let smooth = RGBImage(width: 32, height: 16) { x, y in (UInt8(100 + x), UInt8(50 + y * 2), 200) }
        let rgb = try ImageCodec.decode(try ImageCodec.encodeJPEG(smooth, quality: 95))
        #expect(rgb.width == 32 && rgb.height == 16)
        #expect(zip(rgb.pixels, smooth.pixels).allSatisfy { abs(Int($0) - Int($1)) <= 6 })

        let grey = try ImageCodec.decode(try ImageCodec.encodeGreyJPEG([UInt8](repeating: 90, count: 64), width: 8, height: 8))
        #expect(grey.pixels.allSatisfy { abs(Int($0) - 90) <= 2 })

        // Adobe (inverted) CMYK: stored (C', M', Y', K') = (255, 128, 0, 255) means RGB (255, 128, 0).
        let cmyk = [UInt8]((0..<64).flatMap { _ in [255, 128, 0, 255] as [UInt8] })
        let decoded = try ImageCodec.decode(try ImageCodec.encodeCMYKJPEG(cmyk, width: 8, height: 8, quality: 100))
        #expect(decoded.pixels.count == 64 * 3)
        for p in 0..<64 {
            #expect(abs(Int(decoded.pixels[p * 3]) - 255) <= 3)
            #expect(abs(Int(decoded.pixels[p * 3 + 1]) - 128) <= 3)
            #expect(abs(Int(decoded.pixels[p * 3 + 2]) - 0) <= 3)
        }
    }

    @Test func tiffRGBAndGrey() throws {
        let rgb = try ImageCodec.decode(TestImages.tiff(width: gradient.width, height: gradient.height, samples: 3, pixels: gradient.pixels))
        #expect(rgb == gradient)
        let greyPixels = (0..<12).map { UInt8($0 * 20) }
        let grey = try ImageCodec.decode(TestImages.tiff(width: 4, height: 3, samples: 1, pixels: greyPixels))
        #expect(grey.pixels == greyPixels.flatMap { [$0, $0, $0] })
    }

    @Test func truncatedJPEGIsAnErrorInStrictModeOnly() throws {
        let big = RGBImage(width: 64, height: 64) { x, y in (UInt8((x * 13) % 256), UInt8((y * 7) % 256), UInt8((x ^ y) % 256)) }
        let bytes = try ImageCodec.encodeJPEG(big, quality: 90)
        let truncated = Array(bytes[0..<(bytes.count * 2 / 3)])
        #expect(throws: ImageError.self) { try ImageCodec.decode(truncated, source: "cut.jpg", strict: true) }
        let lenient = try ImageCodec.decode(truncated, source: "cut.jpg", strict: false)
        #expect(lenient.width == 64)
    }

    @Test func errorsNameTheFile() throws {
        do {
            _ = try ImageCodec.decode(Array("hello, not an image".utf8), source: "notes.png")
            Issue.record("expected an error")
        } catch let error as ImageError {
            #expect(error.description.hasPrefix("notes.png: "))
            #expect(error.description.contains("not a PNG, JPEG or TIFF"))
        }
        #expect(throws: ImageError.self) { try ImageCodec.read(path: "/nonexistent/image.png") }
        #expect(throws: ImageError.self) { try ImageCodec.decode([], source: "empty.png") }
    }

    /// Every truncation of a small file of each format is an error; random byte flips never crash
    /// (they may still decode if they hit non-critical bytes).
    @Test(arguments: ImageFormat.allCases)
    func malformedInputsNeverCrash(_ format: ImageFormat) throws {
        let bytes: [UInt8]
        switch format {
        case .png: bytes = try ImageCodec.encodePNG(gradient)
        case .jpeg: bytes = try ImageCodec.encodeJPEG(gradient)
        case .tiff: bytes = TestImages.tiff(width: gradient.width, height: gradient.height, samples: 3, pixels: gradient.pixels)
        }
        var errors = 0
        for length in 0..<bytes.count {
            do {
                _ = try ImageCodec.decode(Array(bytes[0..<length]), source: "cut", strict: true)
            } catch is ImageError {
                errors += 1
            }
        }
        #expect(errors == bytes.count, "every truncation of a \(format) file must be reported")
        var generator = SplitMix(seed: 7)
        for _ in 0..<600 {
            var copy = bytes
            for _ in 0..<(1 + Int(generator.next() % 4)) {
                let i = Int(generator.next() % UInt64(copy.count))
                copy[i] ^= UInt8(truncatingIfNeeded: 1 + generator.next() % 255)
            }
            if let image = try? ImageCodec.decode(copy, source: "flipped", strict: true) {
                #expect(image.pixels.count == image.width * image.height * 3)
            }
        }
    }
}

/// A tiny deterministic generator for fuzz-style tests.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
