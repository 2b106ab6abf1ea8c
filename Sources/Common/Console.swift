// Console output helpers: stderr messages, flushing, human-readable sizes and durations, and
// plain-text tables used by the `bench` and `env` commands.
#if canImport(Glibc)
import Glibc
#endif

public enum Console {
    /// Writes a line to standard error (unbuffered).
    public static func error(_ message: String) {
        var line = message
        if !line.hasSuffix("\n") { line += "\n" }
        var bytes = Array(line.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress! + offset, $0.count - offset) }
            if n <= 0 { break }
            offset += n
        }
    }

    /// Writes to standard output and flushes, so progress shows up promptly under mpirun.
    public static func print(_ message: String, terminator: String = "\n") {
        Swift.print(message, terminator: terminator)
        fflush(nil)
    }

    /// A monotonic clock in seconds.
    public static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    /// Wall-clock time as an ISO 8601 UTC string.
    public static func timestamp() -> String {
        var t = time(nil)
        var tmv = tm()
        gmtime_r(&t, &tmv)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(tmv.tm_year + 1900)-\(two(tmv.tm_mon + 1))-\(two(tmv.tm_mday))T\(two(tmv.tm_hour)):\(two(tmv.tm_min)):\(two(tmv.tm_sec))Z"
    }

    /// Fixed-point with an explicit sign (+0.125, -0.030).
    public static func signed(_ value: Double, _ digits: Int) -> String { (value >= 0 ? "+" : "") + fixed(value, digits) }

    /// Fixed-point formatting without Foundation.
    /// `significant` significant digits, in exponent form below 1e-3 (e.g. 1.234e-05).
    public static func significant(_ value: Double, _ significant: Int = 4) -> String {
        if value == 0 || !value.isFinite { return fixed(value, 0) }
        var exponent = 0
        var mantissa = abs(value)
        while mantissa >= 10 { mantissa /= 10; exponent += 1 }
        while mantissa < 1 { mantissa *= 10; exponent -= 1 }
        let sign = value < 0 ? "-" : ""
        if exponent >= -3 && exponent < 6 {
            return fixed(value, max(0, significant - 1 - exponent))
        }
        var text = fixed(mantissa, significant - 1)
        if text.hasPrefix("10.") { text = fixed(1, significant - 1); exponent += 1 }
        let e = abs(exponent) < 10 ? "0\(abs(exponent))" : "\(abs(exponent))"
        return sign + text + "e" + (exponent < 0 ? "-" : "+") + e
    }

    public static func fixed(_ value: Double, _ digits: Int) -> String {
        if value.isNaN { return "nan" }
        if value.isInfinite { return value > 0 ? "inf" : "-inf" }
        if abs(value) >= 1e15 { return "\(value)" }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let scaled = (abs(value) * scale).rounded()
        let whole = (scaled / scale).rounded(.down)
        let fraction = Int64(scaled - whole * scale)
        let sign = value < 0 && scaled != 0 ? "-" : ""
        if digits == 0 { return sign + String(Int64(whole)) }
        var fractionText = String(fraction)
        while fractionText.count < digits { fractionText = "0" + fractionText }
        return sign + String(Int64(whole)) + "." + fractionText
    }

    public static func bytes(_ count: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(count)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(count) B" : fixed(value, 1) + " " + units[unit]
    }

    public static func duration(_ seconds: Double) -> String {
        if !seconds.isFinite || seconds < 0 { return "?" }
        let s = Int(seconds.rounded())
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m\(s % 60 < 10 ? "0" : "")\(s % 60)s" }
        return "\(s / 3600)h\((s % 3600) / 60 < 10 ? "0" : "")\((s % 3600) / 60)m"
    }

    /// A plain-text table with left-aligned first column and right-aligned others.
    public static func table(header: [String], rows: [[String]]) -> String {
        var widths = header.map { $0.count }
        for row in rows {
            for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, cell in
                let pad = String(repeating: " ", count: max(0, widths[i] - cell.count))
                return i == 0 ? cell + pad : pad + cell
            }.joined(separator: "  ")
        }
        var out = line(header) + "\n"
        out += widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ") + "\n"
        for row in rows { out += line(row) + "\n" }
        return out
    }
}

/// Reads an environment variable.
public func environment(_ name: String) -> String? {
    guard let value = getenv(name) else { return nil }
    return String(cString: value)
}

extension String {
    /// Decodes a NUL-terminated C character buffer.
    public init(nulTerminated buffer: [CChar]) {
        let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        self = String(decoding: bytes, as: UTF8.self)
    }
}
