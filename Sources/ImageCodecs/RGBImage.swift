// Decoded images (interleaved 8-bit RGB) and the codec entry points: PNG (8/16-bit, grey, RGB,
// RGBA, palette), JPEG (grey, RGB, CMYK) and TIFF decoding; PNG and JPEG encoding. Every
// failure is an `ImageError` naming the file and the reason.
import CImageCodecs
import Common
#if canImport(Glibc)
import Glibc
#endif

/// An 8-bit RGB image, row-major, interleaved (`pixels[(y * width + x) * 3 + c]`).
public struct RGBImage: Equatable, Sendable {
    public var width: Int
    public var height: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(width >= 0 && height >= 0 && pixels.count == width * height * 3, "RGBImage: \(pixels.count) bytes for \(width)x\(height)")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    public init(width: Int, height: Int, fill: (Int, Int) -> (UInt8, UInt8, UInt8)) {
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<height {
            for x in 0..<width {
                let (r, g, b) = fill(x, y)
                let i = (y * width + x) * 3
                pixels[i] = r
                pixels[i + 1] = g
                pixels[i + 2] = b
            }
        }
        self.init(width: width, height: height, pixels: pixels)
    }
}

/// Image file formats, detected from the first bytes.
public enum ImageFormat: String, Sendable, CaseIterable {
    case png, jpeg, tiff

    public static func detect(_ bytes: UnsafeRawBufferPointer) -> ImageFormat? {
        let b = bytes.bindMemory(to: UInt8.self)
        if b.count >= 8 && b[0] == 0x89 && b[1] == 0x50 && b[2] == 0x4E && b[3] == 0x47 { return .png }
        if b.count >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF { return .jpeg }
        if b.count >= 4 && ((b[0] == 0x49 && b[1] == 0x49 && b[2] == 42 && b[3] == 0) || (b[0] == 0x4D && b[1] == 0x4D && b[2] == 0 && b[3] == 42)) {
            return .tiff
        }
        return nil
    }

    /// Format implied by a file extension (case-insensitive), or nil.
    public static func fromExtension(_ path: String) -> ImageFormat? {
        guard let dot = path.lastIndex(of: ".") else { return nil }
        switch path[path.index(after: dot)...].lowercased() {
        case "png": return .png
        case "jpg", "jpeg", "jpe": return .jpeg
        case "tif", "tiff": return .tiff
        default: return nil
        }
    }
}

/// A decoding or encoding failure, naming the file (or "<memory>") and the reason.
public struct ImageError: Error, CustomStringConvertible, Sendable {
    public let source: String
    public let reason: String
    public init(source: String, reason: String) {
        self.source = source
        self.reason = reason
    }
    public var description: String { "\(source): \(reason)" }
}

public enum ImageCodec {
    /// Decodes PNG, JPEG or TIFF bytes (format detected from the content) into RGB8.
    /// `strict`: a JPEG with corrupt or truncated entropy-coded data is an error (libjpeg would
    /// otherwise pad it with grey and only warn).
    public static func decode(_ bytes: UnsafeRawBufferPointer, source: String = "<memory>", strict: Bool = true) throws -> RGBImage {
        guard bytes.count > 0 else { throw ImageError(source: source, reason: "empty file") }
        guard let format = ImageFormat.detect(bytes) else {
            throw ImageError(source: source, reason: "not a PNG, JPEG or TIFF image (unrecognised signature)")
        }
        var image = vcodec_image()
        var message = [CChar](repeating: 0, count: Int(VCODEC_MESSAGE_CAPACITY))
        let data = bytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let status: Int32
        switch format {
        case .png: status = vcodec_decode_png(data, bytes.count, &image, &message)
        case .jpeg: status = vcodec_decode_jpeg(data, bytes.count, strict ? 1 : 0, &image, &message)
        case .tiff: status = vcodec_decode_tiff(data, bytes.count, &image, &message)
        }
        guard status == 0, let pixels = image.pixels else {
            throw ImageError(source: source, reason: String(nulTerminated: message))
        }
        defer { vcodec_free(pixels) }
        let count = Int(image.width) * Int(image.height) * 3
        return RGBImage(width: Int(image.width), height: Int(image.height),
                        pixels: Array(UnsafeBufferPointer(start: pixels, count: count)))
    }

    public static func decode(_ bytes: [UInt8], source: String = "<memory>", strict: Bool = true) throws -> RGBImage {
        try bytes.withUnsafeBytes { try decode($0, source: source, strict: strict) }
    }

    /// Reads and decodes an image file.
    public static func read(path: String, strict: Bool = true) throws -> RGBImage {
        let bytes: [UInt8]
        do {
            bytes = try Files.read(path)
        } catch let error as FileError {
            throw ImageError(source: path, reason: error.reason)
        }
        return try decode(bytes, source: path, strict: strict)
    }

    /// PNG bytes of an RGB image.
    public static func encodePNG(_ image: RGBImage) throws -> [UInt8] {
        try encode(image.pixels, width: image.width, height: image.height, channels: 3) { p, w, h, c, out, len, msg in
            vcodec_encode_png(p, w, h, c, out, len, msg)
        }
    }

    /// PNG bytes of a single-channel (grey) image.
    public static func encodeGreyPNG(_ pixels: [UInt8], width: Int, height: Int) throws -> [UInt8] {
        try encode(pixels, width: width, height: height, channels: 1) { p, w, h, c, out, len, msg in
            vcodec_encode_png(p, w, h, c, out, len, msg)
        }
    }

    /// JPEG bytes of an RGB image (`quality` 1...100).
    public static func encodeJPEG(_ image: RGBImage, quality: Int = 95) throws -> [UInt8] {
        try encode(image.pixels, width: image.width, height: image.height, channels: 3) { p, w, h, c, out, len, msg in
            vcodec_encode_jpeg(p, w, h, c, Int32(quality), out, len, msg)
        }
    }

    /// JPEG bytes of a single-channel (grey) image.
    public static func encodeGreyJPEG(_ pixels: [UInt8], width: Int, height: Int, quality: Int = 95) throws -> [UInt8] {
        try encode(pixels, width: width, height: height, channels: 1) { p, w, h, c, out, len, msg in
            vcodec_encode_jpeg(p, w, h, c, Int32(quality), out, len, msg)
        }
    }

    /// JPEG bytes of CMYK samples stored as given (4 bytes per pixel) with an Adobe marker, as
    /// Photoshop writes them (inverted: 255 means no ink). For tests of the CMYK decoder.
    public static func encodeCMYKJPEG(_ samples: [UInt8], width: Int, height: Int, quality: Int = 95) throws -> [UInt8] {
        try encode(samples, width: width, height: height, channels: 4) { p, w, h, c, out, len, msg in
            vcodec_encode_jpeg(p, w, h, c, Int32(quality), out, len, msg)
        }
    }

    private typealias Encoder = (UnsafePointer<UInt8>, Int32, Int32, Int32, UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>,
                                 UnsafeMutablePointer<Int>, UnsafeMutablePointer<CChar>) -> Int32

    private static func encode(_ pixels: [UInt8], width: Int, height: Int, channels: Int, _ encoder: Encoder) throws -> [UInt8] {
        guard pixels.count == width * height * channels else {
            throw ImageError(source: "<encoder>", reason: "\(pixels.count) bytes do not match \(width)x\(height)x\(channels)")
        }
        var out: UnsafeMutablePointer<UInt8>? = nil
        var length = 0
        var message = [CChar](repeating: 0, count: Int(VCODEC_MESSAGE_CAPACITY))
        let status = pixels.withUnsafeBufferPointer { p in
            encoder(p.baseAddress!, Int32(width), Int32(height), Int32(channels), &out, &length, &message)
        }
        guard status == 0, let data = out else { throw ImageError(source: "<encoder>", reason: String(nulTerminated: message)) }
        defer { vcodec_free(data) }
        return Array(UnsafeBufferPointer(start: data, count: length))
    }

    /// Writes an image as PNG (or JPEG for .jpg/.jpeg paths) crash-safely.
    public static func write(_ image: RGBImage, path: String, jpegQuality: Int = 95) throws {
        let bytes = ImageFormat.fromExtension(path) == .jpeg ? try encodeJPEG(image, quality: jpegQuality) : try encodePNG(image)
        try Files.writeAtomically(path, bytes: bytes)
    }

    public static var libraryVersions: String {
        "libpng \(String(cString: vcodec_png_version())), libjpeg API \(vcodec_jpeg_version()), " +
            (String(cString: vcodec_tiff_version()).split(separator: "\n").first.map(String.init) ?? "libtiff")
    }
}

/// Image files of a directory tree.
public enum ImageFolder {
    /// Paths (relative to `root`) of every PNG/JPEG/TIFF file under `root`, sorted by relative
    /// path (plain string order, as stylegan2-ada's dataset tool).
    public static func list(_ root: String) throws -> [String] {
        guard Files.isDirectory(root) else { throw ImageError(source: root, reason: "is not a directory") }
        var out: [String] = []
        let canonicalRoot = PathSafety.canonical(root)
        var visited: Set<String> = [canonicalRoot]
        func walk(_ relative: String) throws {
            let dir = relative.isEmpty ? root : "\(root)/\(relative)"
            for name in try Files.list(dir) where !name.hasPrefix(".") {
                let rel = relative.isEmpty ? name : "\(relative)/\(name)"
                let path = "\(root)/\(rel)"
                var st = stat()
                let isLink = lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFLNK
                if isLink {
                    // A link may point anywhere: it must stay inside the root.
                    let target = PathSafety.canonical(path)
                    guard PathSafety.isSameOrInside(target, canonicalRoot) else {
                        throw ImageError(source: path, reason: "is a symbolic link that leaves \(root) (to \(target)); copy the files into the tree or give the folder itself")
                    }
                }
                if Files.isDirectory(path) {
                    // Each folder is walked once: a link back to a folder already seen is a loop or a duplicate.
                    let folder = PathSafety.canonical(path)
                    guard visited.insert(folder).inserted else {
                        throw ImageError(source: path, reason: "\(isLink ? "is a symbolic link to" : "leads to") \(folder), which is already part of the tree (a link loop or a duplicate): its images would be counted twice")
                    }
                    try walk(rel)
                } else if ImageFormat.fromExtension(name) != nil {
                    out.append(rel)
                }
            }
        }
        try walk("")
        return out.sorted()
    }
}

extension RGBImage {
    /// A grid of equally sized images, `columns` wide (black background).
    public static func grid(_ images: [RGBImage], columns: Int) -> RGBImage? {
        guard let first = images.first else { return nil }
        let cols = max(1, min(columns, images.count)), rows = (images.count + cols - 1) / cols
        let w = first.width, h = first.height
        var pixels = [UInt8](repeating: 0, count: cols * w * rows * h * 3)
        for (i, image) in images.enumerated() where image.width == w && image.height == h {
            let ox = (i % cols) * w, oy = (i / cols) * h
            for y in 0..<h {
                let dst = ((oy + y) * cols * w + ox) * 3
                pixels.replaceSubrange(dst..<(dst + w * 3), with: image.pixels[(y * w * 3)..<((y + 1) * w * 3)])
            }
        }
        return RGBImage(width: cols * w, height: rows * h, pixels: pixels)
    }
}
