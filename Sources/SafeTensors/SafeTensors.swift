// safetensors reading and writing: the interchange format with PyTorch.
//
// Layout: an 8-byte little-endian header length N, N bytes of JSON
// `{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}`,
// then the tensor bytes (offsets relative to the end of the header).
//
// Every file is untrusted: the header length, the JSON, each dtype, shape and offset pair are
// validated (sizes match the shape, no overlap, no hole, nothing out of range, as the reference
// Rust implementation requires) before any tensor byte is touched. Large files are memory-
// mapped. A file that starts with a zstd frame is decompressed first (`.safetensors.zst`).
import Common
import Zstd

/// Element types of the format that this project reads and writes.
public enum SafeTensorsDType: String, CaseIterable, Sendable {
    case F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL

    public var byteSize: Int {
        switch self {
        case .F64, .I64: return 8
        case .F32, .I32: return 4
        case .F16, .BF16, .I16: return 2
        case .I8, .U8, .BOOL: return 1
        }
    }

    public var isFloatingPoint: Bool { self == .F64 || self == .F32 || self == .F16 || self == .BF16 }
}

/// A validation or access error, naming the file and (where relevant) the tensor.
public struct SafeTensorsError: Error, CustomStringConvertible, Sendable {
    public let source: String
    public let reason: String
    public init(source: String, reason: String) {
        self.source = source
        self.reason = reason
    }
    public var description: String { "\(source): \(reason)" }
}

/// One tensor entry of the header.
public struct SafeTensorInfo: Sendable, Equatable {
    public let name: String
    public let dtype: SafeTensorsDType
    public let shape: [Int]
    /// Byte range inside the data section.
    public let offsets: Range<Int>

    public var elementCount: Int { shape.reduce(1, *) }
}

/// A parsed, validated safetensors file (memory-mapped or in memory).
public final class SafeTensorsFile: @unchecked Sendable {
    /// Path or description used in error messages.
    public let source: String
    /// Tensor entries in the order of their data offsets.
    public let tensors: [SafeTensorInfo]
    /// `__metadata__` (string to string).
    public let metadata: [String: String]
    private let index: [String: Int]
    private let mapped: MappedFile?
    private let owned: [UInt8]?
    private let dataStart: Int

    /// Largest header accepted (the reference implementation uses the same limit).
    public static let maxHeaderBytes = 100_000_000

    /// Opens and validates a file. Uncompressed files are memory-mapped.
    public convenience init(path: String) throws {
        let mapped: MappedFile
        do {
            mapped = try MappedFile(path: path)
        } catch let error as FileError {
            throw SafeTensorsError(source: path, reason: error.reason)
        }
        if SafeTensorsFile.isZstd(mapped.bytes) {
            let bytes: [UInt8]
            do {
                bytes = try Zstd.decompress(mapped.bytes, source: path)
            } catch let error as ZstdError {
                throw SafeTensorsError(source: path, reason: error.reason)
            }
            try self.init(owned: bytes, mapped: nil, source: path)
        } else {
            try self.init(owned: nil, mapped: mapped, source: path)
        }
    }

    /// Parses and validates bytes held in memory (zstd-compressed or not).
    public convenience init(bytes: [UInt8], source: String = "<memory>") throws {
        if bytes.withUnsafeBytes({ SafeTensorsFile.isZstd($0) }) {
            let plain: [UInt8]
            do {
                plain = try Zstd.decompress(bytes, source: source)
            } catch let error as ZstdError {
                throw SafeTensorsError(source: source, reason: error.reason)
            }
            try self.init(owned: plain, mapped: nil, source: source)
        } else {
            try self.init(owned: bytes, mapped: nil, source: source)
        }
    }

    static func isZstd(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count >= 4 && bytes[0] == 0x28 && bytes[1] == 0xB5 && bytes[2] == 0x2F && bytes[3] == 0xFD
    }

    private init(owned: [UInt8]?, mapped: MappedFile?, source: String) throws {
        self.owned = owned
        self.mapped = mapped
        self.source = source
        let parsed: (tensors: [SafeTensorInfo], metadata: [String: String], dataStart: Int)
        if let owned {
            parsed = try owned.withUnsafeBytes { try SafeTensorsFile.parseHeader($0, source: source) }
        } else {
            parsed = try SafeTensorsFile.parseHeader(mapped!.bytes, source: source)
        }
        tensors = parsed.tensors
        metadata = parsed.metadata
        dataStart = parsed.dataStart
        var index: [String: Int] = [:]
        for (i, t) in tensors.enumerated() { index[t.name] = i }
        self.index = index
    }

    /// Validates the header and returns the entries sorted by offset.
    static func parseHeader(_ bytes: UnsafeRawBufferPointer, source: String) throws -> ([SafeTensorInfo], [String: String], Int) {
        func fail(_ reason: String) -> SafeTensorsError { SafeTensorsError(source: source, reason: reason) }
        guard bytes.count >= 8 else {
            throw fail("file too small (\(bytes.count) bytes) to hold the 8-byte header length")
        }
        let declared = UInt64(littleEndian: bytes.loadUnaligned(as: UInt64.self))
        guard declared <= UInt64(maxHeaderBytes) else {
            throw fail("header length \(declared) exceeds the limit of \(maxHeaderBytes) bytes")
        }
        let headerLength = Int(declared)
        guard headerLength >= 2 else { throw fail("header length \(headerLength) is too small for a JSON object") }
        guard 8 + headerLength <= bytes.count else {
            throw fail("header length \(headerLength) runs past the end of the file (\(bytes.count) bytes): file truncated?")
        }
        let headerBytes = UnsafeRawBufferPointer(rebasing: bytes[8..<(8 + headerLength)])
        guard headerBytes[0] == UInt8(ascii: "{") else { throw fail("header does not start with '{'") }
        let json: JSONValue
        do {
            json = try JSONValue.parse(headerBytes, maxDepth: 8)
        } catch let error as JSONError {
            throw fail("header is not valid JSON (\(error))")
        }
        guard let members = json.objectValue else { throw fail("header is not a JSON object") }
        let dataLength = bytes.count - 8 - headerLength
        var metadata: [String: String] = [:]
        var tensors: [SafeTensorInfo] = []
        for (name, value) in members {
            if name == "__metadata__" {
                guard let entries = value.objectValue else { throw fail("__metadata__ is not an object") }
                for (key, item) in entries {
                    guard let text = item.stringValue else { throw fail("__metadata__[\"\(key)\"] is not a string") }
                    metadata[key] = text
                }
                continue
            }
            tensors.append(try parseEntry(name: name, value: value, source: source))
        }
        // Offsets must tile the data section exactly: sorted, contiguous, ending at its end.
        tensors.sort { ($0.offsets.lowerBound, $0.offsets.upperBound, $0.name) < ($1.offsets.lowerBound, $1.offsets.upperBound, $1.name) }
        var expected = 0
        for t in tensors {
            if t.offsets.lowerBound < expected {
                throw fail("tensor '\(t.name)' data [\(t.offsets.lowerBound), \(t.offsets.upperBound)) overlaps the previous tensor (which ends at \(expected))")
            }
            if t.offsets.lowerBound > expected {
                throw fail("tensor '\(t.name)' data starts at \(t.offsets.lowerBound), leaving a hole after byte \(expected)")
            }
            expected = t.offsets.upperBound
        }
        if expected > dataLength {
            throw fail("tensor data ends at byte \(expected) but the data section holds only \(dataLength) bytes: file truncated?")
        }
        if expected < dataLength {
            throw fail("data section holds \(dataLength) bytes but the tensors cover only \(expected)")
        }
        return (tensors, metadata, 8 + headerLength)
    }

    static func parseEntry(name: String, value: JSONValue, source: String) throws -> SafeTensorInfo {
        func fail(_ reason: String) -> SafeTensorsError { SafeTensorsError(source: source, reason: "tensor '\(name)': \(reason)") }
        guard let fields = value.objectValue else { throw fail("entry is not an object") }
        var dtype: SafeTensorsDType?
        var shape: [Int]?
        var offsets: (Int, Int)?
        for (key, item) in fields {
            switch key {
            case "dtype":
                guard let text = item.stringValue else { throw fail("dtype is not a string") }
                guard let d = SafeTensorsDType(rawValue: text) else { throw fail("unsupported dtype '\(text)'") }
                dtype = d
            case "shape":
                guard let dims = item.arrayValue else { throw fail("shape is not an array") }
                guard dims.count <= 16 else { throw fail("shape has \(dims.count) dimensions (at most 16 supported)") }
                shape = try dims.map { d in
                    guard case .int(let v) = d, v >= 0, v < (1 << 40) else { throw fail("shape entry \(d.serialized()) is not a valid dimension") }
                    return Int(v)
                }
            case "data_offsets":
                guard let pair = item.arrayValue, pair.count == 2,
                      case .int(let begin) = pair[0], case .int(let end) = pair[1] else {
                    throw fail("data_offsets is not a pair of integers")
                }
                guard begin >= 0, end >= begin, end < (1 << 50) else { throw fail("data_offsets [\(begin), \(end)] are invalid") }
                offsets = (Int(begin), Int(end))
            default:
                throw fail("unexpected field '\(key)'")
            }
        }
        guard let dtype else { throw fail("missing dtype") }
        guard let shape else { throw fail("missing shape") }
        guard let offsets else { throw fail("missing data_offsets") }
        var count = 1
        for d in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow, product < (1 << 48) else { throw fail("shape \(shape) has too many elements") }
            count = product
        }
        let (bytes, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow, bytes == offsets.1 - offsets.0 else {
            throw fail("shape \(shape) of \(dtype.rawValue) needs \(count * dtype.byteSize) bytes but data_offsets [\(offsets.0), \(offsets.1)] span \(offsets.1 - offsets.0)")
        }
        return SafeTensorInfo(name: name, dtype: dtype, shape: shape, offsets: offsets.0..<offsets.1)
    }

    // MARK: Access

    public var names: [String] { tensors.map(\.name) }

    public func contains(_ name: String) -> Bool { index[name] != nil }

    public func info(_ name: String) throws -> SafeTensorInfo {
        guard let i = index[name] else { throw SafeTensorsError(source: source, reason: "no tensor named '\(name)'") }
        return tensors[i]
    }

    /// Runs `body` on the raw little-endian bytes of a tensor (valid only inside `body`).
    public func withRawBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let t = try info(name)
        let range = (dataStart + t.offsets.lowerBound)..<(dataStart + t.offsets.upperBound)
        if let owned {
            return try owned.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[range])) }
        }
        return try body(UnsafeRawBufferPointer(rebasing: mapped!.bytes[range]))
    }

    /// The tensor's values converted to Float (from any floating-point or integer dtype).
    public func floats(_ name: String) throws -> [Float] {
        let t = try info(name)
        return try withRawBytes(name) { raw in
            var out = [Float](repeating: 0, count: t.elementCount)
            out.withUnsafeMutableBufferPointer { dst in
                SafeTensorsFile.convert(raw, dtype: t.dtype, into: dst)
            }
            return out
        }
    }

    /// The tensor's values converted to Double.
    public func doubles(_ name: String) throws -> [Double] {
        let t = try info(name)
        if t.dtype == .F64 {
            return try withRawBytes(name) { raw in (0..<t.elementCount).map { Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self))) } }
        }
        return try floats(name).map(Double.init)
    }

    /// Integer values (I64/I32/I16/I8/U8/BOOL tensors).
    public func int64s(_ name: String) throws -> [Int64] {
        let t = try info(name)
        return try withRawBytes(name) { raw in
            (0..<t.elementCount).map { i -> Int64 in
                switch t.dtype {
                case .I64: return Int64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: Int64.self))
                case .I32: return Int64(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: Int32.self)))
                case .I16: return Int64(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: i * 2, as: Int16.self)))
                case .I8: return Int64(raw.load(fromByteOffset: i, as: Int8.self))
                case .U8, .BOOL: return Int64(raw[i])
                case .F64: return Int64(Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self))))
                case .F32, .F16, .BF16:
                    var f: Float = 0
                    withUnsafeMutablePointer(to: &f) { p in
                        SafeTensorsFile.convert(UnsafeRawBufferPointer(rebasing: raw[(i * t.dtype.byteSize)..<((i + 1) * t.dtype.byteSize)]),
                                                dtype: t.dtype, into: UnsafeMutableBufferPointer(start: p, count: 1))
                    }
                    return Int64(f)
                }
            }
        }
    }

    /// Converts little-endian values of `dtype` into floats.
    public static func convert(_ raw: UnsafeRawBufferPointer, dtype: SafeTensorsDType, into dst: UnsafeMutableBufferPointer<Float>) {
        let n = dst.count
        switch dtype {
        case .F32:
            if let base = raw.baseAddress, n > 0 { dst.baseAddress!.withMemoryRebound(to: UInt8.self, capacity: n * 4) { $0.update(from: base.assumingMemoryBound(to: UInt8.self), count: n * 4) } }
        case .F64:
            for i in 0..<n { dst[i] = Float(Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)))) }
        case .F16:
            for i in 0..<n { dst[i] = halfToFloat(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))) }
        case .BF16:
            for i in 0..<n { dst[i] = Float(bitPattern: UInt32(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))) << 16) }
        case .I64:
            for i in 0..<n { dst[i] = Float(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: Int64.self))) }
        case .I32:
            for i in 0..<n { dst[i] = Float(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: Int32.self))) }
        case .I16:
            for i in 0..<n { dst[i] = Float(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: i * 2, as: Int16.self))) }
        case .I8:
            for i in 0..<n { dst[i] = Float(raw.load(fromByteOffset: i, as: Int8.self)) }
        case .U8, .BOOL:
            for i in 0..<n { dst[i] = Float(raw[i]) }
        }
    }

    /// IEEE binary16 to binary32 (exact).
    public static func halfToFloat(_ h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exponent = Int((h >> 10) & 0x1F)
        let mantissa = UInt32(h & 0x3FF)
        if exponent == 0 {
            if mantissa == 0 { return Float(bitPattern: sign) }
            let value = Float(mantissa) * Float(sign: .plus, exponent: -24, significand: 1)
            return sign != 0 ? -value : value
        }
        if exponent == 31 { return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13)) }
        return Float(bitPattern: sign | UInt32(exponent + 112) << 23 | (mantissa << 13))
    }

    /// binary32 to binary16, round to nearest even.
    public static func floatToHalf(_ f: Float) -> UInt16 {
        let bits = f.bitPattern
        let sign = UInt16((bits >> 16) & 0x8000)
        let exponent = Int((bits >> 23) & 0xFF)
        var mantissa = bits & 0x7F_FFFF
        if exponent == 0xFF { return sign | 0x7C00 | (mantissa != 0 ? 0x200 : 0) }
        var e = exponent - 127 + 15
        if e >= 31 { return sign | 0x7C00 }
        if e <= 0 {
            if e < -10 { return sign }
            mantissa |= 0x80_0000
            let shift = UInt32(14 - e)
            var half = mantissa >> shift
            let remainder = mantissa & ((1 << shift) - 1)
            let halfway: UInt32 = 1 << (shift - 1)
            if remainder > halfway || (remainder == halfway && (half & 1) == 1) { half += 1 }
            return sign | UInt16(half)
        }
        var half = UInt32(e) << 10 | (mantissa >> 13)
        let remainder = mantissa & 0x1FFF
        if remainder > 0x1000 || (remainder == 0x1000 && (half & 1) == 1) { half += 1 }
        if half >= 0x7C00 { e = 31; return sign | 0x7C00 }
        return sign | UInt16(half)
    }

    /// bfloat16 from binary32, round to nearest even.
    public static func floatToBFloat16(_ f: Float) -> UInt16 {
        let bits = f.bitPattern
        if f.isNaN { return UInt16(bits >> 16) | 0x40 }
        let rounding = 0x7FFF + ((bits >> 16) & 1)
        return UInt16((bits &+ rounding) >> 16)
    }
}

/// Builds a safetensors file in memory and writes it crash-safely (optionally zstd-compressed).
public struct SafeTensorsWriter {
    private struct Entry {
        let name: String
        let dtype: SafeTensorsDType
        let shape: [Int]
        let bytes: [UInt8]
    }
    private var entries: [Entry] = []
    private var names = Set<String>()
    public var metadata: [(String, String)] = []

    public init() {}

    /// Adds raw little-endian bytes of a tensor.
    public mutating func add(name: String, dtype: SafeTensorsDType, shape: [Int], bytes: [UInt8]) throws {
        guard !name.isEmpty, name != "__metadata__" else {
            throw SafeTensorsError(source: "<writer>", reason: "invalid tensor name '\(name)'")
        }
        guard names.insert(name).inserted else { throw SafeTensorsError(source: "<writer>", reason: "duplicate tensor name '\(name)'") }
        let count = shape.reduce(1, *)
        guard shape.allSatisfy({ $0 >= 0 }), count * dtype.byteSize == bytes.count else {
            throw SafeTensorsError(source: "<writer>", reason: "tensor '\(name)': \(bytes.count) bytes do not match shape \(shape) of \(dtype.rawValue)")
        }
        entries.append(Entry(name: name, dtype: dtype, shape: shape, bytes: bytes))
    }

    /// Adds float values stored as `dtype` (F32 by default; F16/BF16/F64 convert).
    public mutating func add(name: String, shape: [Int], floats: UnsafeBufferPointer<Float>, dtype: SafeTensorsDType = .F32) throws {
        var bytes = [UInt8](repeating: 0, count: floats.count * dtype.byteSize)
        bytes.withUnsafeMutableBytes { raw in
            switch dtype {
            case .F32:
                if floats.count > 0 { raw.copyMemory(from: UnsafeRawBufferPointer(floats)) }
            case .F64:
                for (i, v) in floats.enumerated() { raw.storeBytes(of: Double(v).bitPattern.littleEndian, toByteOffset: i * 8, as: UInt64.self) }
            case .F16:
                for (i, v) in floats.enumerated() { raw.storeBytes(of: SafeTensorsFile.floatToHalf(v).littleEndian, toByteOffset: i * 2, as: UInt16.self) }
            case .BF16:
                for (i, v) in floats.enumerated() { raw.storeBytes(of: SafeTensorsFile.floatToBFloat16(v).littleEndian, toByteOffset: i * 2, as: UInt16.self) }
            default:
                break
            }
        }
        guard dtype.isFloatingPoint else {
            throw SafeTensorsError(source: "<writer>", reason: "tensor '\(name)': floats cannot be stored as \(dtype.rawValue)")
        }
        try add(name: name, dtype: dtype, shape: shape, bytes: bytes)
    }

    public mutating func add(name: String, shape: [Int], floats: [Float], dtype: SafeTensorsDType = .F32) throws {
        try floats.withUnsafeBufferPointer { try add(name: name, shape: shape, floats: $0, dtype: dtype) }
    }

    public mutating func add(name: String, shape: [Int], int64s: [Int64]) throws {
        var bytes = [UInt8](repeating: 0, count: int64s.count * 8)
        bytes.withUnsafeMutableBytes { raw in
            for (i, v) in int64s.enumerated() { raw.storeBytes(of: v.littleEndian, toByteOffset: i * 8, as: Int64.self) }
        }
        try add(name: name, dtype: .I64, shape: shape, bytes: bytes)
    }

    public mutating func add(name: String, shape: [Int], int32s: [Int32]) throws {
        var bytes = [UInt8](repeating: 0, count: int32s.count * 4)
        bytes.withUnsafeMutableBytes { raw in
            for (i, v) in int32s.enumerated() { raw.storeBytes(of: v.littleEndian, toByteOffset: i * 4, as: Int32.self) }
        }
        try add(name: name, dtype: .I32, shape: shape, bytes: bytes)
    }

    /// The complete file contents.
    public func serialize() -> [UInt8] {
        var members: [(String, JSONValue)] = []
        if !metadata.isEmpty {
            members.append(("__metadata__", .object(metadata.map { ($0.0, .string($0.1)) })))
        }
        var offset = 0
        for e in entries {
            members.append((e.name, .object([
                ("dtype", .string(e.dtype.rawValue)),
                ("shape", JSONValue(e.shape)),
                ("data_offsets", JSONValue([offset, offset + e.bytes.count])),
            ])))
            offset += e.bytes.count
        }
        var header = Array(JSONValue.object(members).serialized().utf8)
        while header.count % 8 != 0 { header.append(0x20) }  // pad with spaces, as the reference writer does
        var out: [UInt8] = []
        out.reserveCapacity(8 + header.count + offset)
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: header)
        for e in entries { out.append(contentsOf: e.bytes) }
        return out
    }

    /// Writes to `path` via a temporary file, fsync and rename. `compressionLevel` > 0 writes a
    /// zstd frame (with checksum) around the whole file.
    public func write(to path: String, compressionLevel: Int32 = 0) throws {
        var bytes = serialize()
        if compressionLevel > 0 { bytes = try Zstd.compress(bytes, level: compressionLevel) }
        try Files.writeAtomically(path, bytes: bytes)
    }
}
