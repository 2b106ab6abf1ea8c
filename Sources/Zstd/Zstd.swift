// Zstandard compression of buffers and of streams (for files larger than memory allows).
// Frames are written with the content checksum on, so corruption is detected on decompression
// and reported as a `ZstdError` naming the source.
import CZstd
import Common
#if canImport(Glibc)
import Glibc
#endif

public struct ZstdError: Error, CustomStringConvertible, Sendable {
    public let source: String
    public let reason: String
    public init(source: String, reason: String) {
        self.source = source
        self.reason = reason
    }
    public var description: String { "\(source): \(reason)" }
}

public enum Zstd {
    /// Library version, e.g. "1.5.4".
    public static var version: String { String(cString: ZSTD_versionString()) }

    static func check(_ code: Int, _ source: String, _ what: String) throws -> Int {
        if ZSTD_isError(code) != 0 {
            throw ZstdError(source: source, reason: "\(what): \(String(cString: ZSTD_getErrorName(code)))")
        }
        return code
    }

    /// Compresses a buffer into one frame with a content checksum.
    public static func compress(_ input: UnsafeRawBufferPointer, level: Int32 = 3, threads: Int32 = 0) throws -> [UInt8] {
        guard let context = ZSTD_createCCtx() else { throw ZstdError(source: "<memory>", reason: "out of memory") }
        defer { ZSTD_freeCCtx(context) }
        _ = try check(ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, level), "<memory>", "set level")
        _ = try check(ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 1), "<memory>", "enable checksum")
        if threads > 0 { _ = ZSTD_CCtx_setParameter(context, ZSTD_c_nbWorkers, threads) }
        let bound = ZSTD_compressBound(input.count)
        var output = [UInt8](repeating: 0, count: bound)
        let written = try output.withUnsafeMutableBytes { out in
            try check(ZSTD_compress2(context, out.baseAddress, out.count, input.baseAddress, input.count), "<memory>", "compress")
        }
        output.removeLast(output.count - written)
        return output
    }

    public static func compress(_ input: [UInt8], level: Int32 = 3) throws -> [UInt8] {
        try input.withUnsafeBytes { try compress($0, level: level) }
    }

    /// Decompresses one or more concatenated frames. `maxOutput` bounds the result so a hostile
    /// frame cannot claim an absurd size.
    public static func decompress(_ input: UnsafeRawBufferPointer, source: String = "<memory>", maxOutput: Int = 1 << 36) throws -> [UInt8] {
        guard let stream = ZSTD_createDStream() else { throw ZstdError(source: source, reason: "out of memory") }
        defer { ZSTD_freeDStream(stream) }
        var output: [UInt8] = []
        let declared = input.count > 0 ? ZSTD_getFrameContentSize(input.baseAddress, input.count) : 0
        if declared != ZSTD_CONTENTSIZE_UNKNOWN && declared != ZSTD_CONTENTSIZE_ERROR && declared <= UInt64(maxOutput) {
            output.reserveCapacity(Int(declared))
        }
        var inBuffer = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
        let chunk = ZSTD_DStreamOutSize()
        var scratch = [UInt8](repeating: 0, count: chunk)
        var lastResult = 0
        while inBuffer.pos < inBuffer.size || lastResult > 0 {
            let before = inBuffer.pos
            let produced = try scratch.withUnsafeMutableBytes { raw -> Int in
                var outBuffer = ZSTD_outBuffer(dst: raw.baseAddress, size: raw.count, pos: 0)
                lastResult = try check(ZSTD_decompressStream(stream, &outBuffer, &inBuffer), source, "corrupt zstd data")
                return outBuffer.pos
            }
            output.append(contentsOf: scratch[0..<produced])
            if output.count > maxOutput { throw ZstdError(source: source, reason: "decompressed data exceeds \(maxOutput) bytes") }
            if produced == 0 && inBuffer.pos == before {
                if inBuffer.pos >= inBuffer.size { break }
                throw ZstdError(source: source, reason: "corrupt zstd data: decoder made no progress")
            }
        }
        if lastResult != 0 { throw ZstdError(source: source, reason: "truncated zstd data (frame incomplete)") }
        if input.count == 0 { throw ZstdError(source: source, reason: "empty input is not a zstd frame") }
        return output
    }

    public static func decompress(_ input: [UInt8], source: String = "<memory>") throws -> [UInt8] {
        try input.withUnsafeBytes { try decompress($0, source: source) }
    }
}

/// Streams data into a zstd-compressed file, written under a temporary name and renamed into
/// place by `finish()` (after fsync), so a crash never leaves a complete-looking file.
public final class ZstdFileWriter {
    public let path: String
    private let temporaryPath: String
    private let fd: Int32
    private let context: OpaquePointer
    private var scratch: [UInt8]
    private var finished = false
    /// Uncompressed bytes written so far.
    public private(set) var bytesIn = 0
    /// Compressed bytes written so far.
    public private(set) var bytesOut = 0

    public init(path: String, level: Int32 = 3) throws {
        self.path = path
        temporaryPath = "\(Files.parentDirectory(of: path))/.\(Files.lastComponent(of: path)).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporaryPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ZstdError(source: path, reason: "cannot create: \(String(cString: strerror(errno)))") }
        guard let context = ZSTD_createCCtx() else {
            close(fd)
            unlink(temporaryPath)
            throw ZstdError(source: path, reason: "out of memory")
        }
        self.fd = fd
        self.context = context
        scratch = [UInt8](repeating: 0, count: ZSTD_CStreamOutSize())
        _ = ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, level)
        _ = ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 1)
    }

    deinit {
        ZSTD_freeCCtx(context)
        if !finished {
            close(fd)
            unlink(temporaryPath)
        }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        precondition(!finished, "ZstdFileWriter: write after finish")
        var input = ZSTD_inBuffer(src: bytes.baseAddress, size: bytes.count, pos: 0)
        bytesIn += bytes.count
        while input.pos < input.size {
            _ = try pump(&input, mode: ZSTD_e_continue)
        }
    }

    public func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try write($0) } }

    private func pump(_ input: inout ZSTD_inBuffer, mode: ZSTD_EndDirective) throws -> Int {
        let remaining = try scratch.withUnsafeMutableBytes { raw -> Int in
            var output = ZSTD_outBuffer(dst: raw.baseAddress, size: raw.count, pos: 0)
            let r = try Zstd.check(ZSTD_compressStream2(context, &output, &input, mode), path, "compress")
            do {
                try Files.writeAll(fd: fd, bytes: UnsafeRawBufferPointer(start: raw.baseAddress, count: output.pos), path: temporaryPath)
            } catch let error as FileError {
                throw ZstdError(source: path, reason: error.reason)
            }
            bytesOut += output.pos
            return r
        }
        return remaining
    }

    /// Ends the frame, fsyncs and renames the file into place.
    public func finish() throws {
        precondition(!finished, "ZstdFileWriter: finish twice")
        var input = ZSTD_inBuffer(src: nil, size: 0, pos: 0)
        while try pump(&input, mode: ZSTD_e_end) != 0 {}
        guard fsync(fd) == 0 else { throw ZstdError(source: path, reason: "fsync failed: \(String(cString: strerror(errno)))") }
        guard close(fd) == 0 else { throw ZstdError(source: path, reason: "close failed") }
        finished = true
        guard rename(temporaryPath, path) == 0 else {
            unlink(temporaryPath)
            throw ZstdError(source: path, reason: "rename failed: \(String(cString: strerror(errno)))")
        }
        Files.syncDirectory(Files.parentDirectory(of: path))
    }
}

/// Streams decompressed data out of a zstd file in chunks; the frame checksum is verified by
/// the decoder when each frame ends.
public final class ZstdFileReader {
    public let path: String
    private let fd: Int32
    private let stream: OpaquePointer
    private var input: [UInt8]
    private var inputPosition = 0
    private var inputSize = 0
    private var endOfFile = false
    private var lastResult = 1
    private var sawData = false

    public init(path: String) throws {
        self.path = path
        let fd: Int32
        do { fd = try Files.openRegularFile(path).fd } catch let e as FileError { throw ZstdError(source: path, reason: "cannot open: \(e.reason)") }
        guard let stream = ZSTD_createDStream() else {
            close(fd)
            throw ZstdError(source: path, reason: "out of memory")
        }
        self.fd = fd
        self.stream = stream
        input = [UInt8](repeating: 0, count: ZSTD_DStreamInSize())
    }

    deinit {
        ZSTD_freeDStream(stream)
        close(fd)
    }

    /// Fills `buffer` with up to `buffer.count` decompressed bytes; returns 0 at the end.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var output = ZSTD_outBuffer(dst: buffer.baseAddress, size: buffer.count, pos: 0)
        while output.pos < output.size {
            if inputPosition == inputSize && !endOfFile {
                let n = input.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                if n < 0 { throw ZstdError(source: path, reason: "read failed: \(String(cString: strerror(errno)))") }
                if n == 0 { endOfFile = true } else { sawData = true }
                inputPosition = 0
                inputSize = max(0, n)
            }
            if inputPosition == inputSize && endOfFile {
                if !sawData { throw ZstdError(source: path, reason: "empty file is not a zstd frame") }
                if lastResult != 0 { throw ZstdError(source: path, reason: "truncated zstd data (frame incomplete)") }
                break
            }
            let before = inputPosition
            let beforeOut = output.pos
            try input.withUnsafeBytes { raw in
                var inBuffer = ZSTD_inBuffer(src: raw.baseAddress, size: inputSize, pos: inputPosition)
                lastResult = try Zstd.check(ZSTD_decompressStream(stream, &output, &inBuffer), path, "corrupt zstd data")
                inputPosition = inBuffer.pos
            }
            if inputPosition == before && output.pos == beforeOut && inputPosition < inputSize {
                throw ZstdError(source: path, reason: "corrupt zstd data: decoder made no progress")
            }
        }
        return output.pos
    }

    /// Reads exactly `count` bytes or throws (truncated data).
    public func readExactly(into buffer: UnsafeMutableRawBufferPointer) throws {
        var offset = 0
        while offset < buffer.count {
            let n = try read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[offset...]))
            if n == 0 { throw ZstdError(source: path, reason: "unexpected end of data: needed \(buffer.count) bytes, got \(offset)") }
            offset += n
        }
    }

    /// Reads everything that remains.
    public func readAll() throws -> [UInt8] {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = try chunk.withUnsafeMutableBytes { try read(into: $0) }
            if n == 0 { break }
            out.append(contentsOf: chunk[0..<n])
        }
        return out
    }
}
