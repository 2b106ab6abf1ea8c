// Decisions about where a command may write, taken on normalised paths before any work:
// absolute, symlinks of the existing part resolved, `.`/`..`/repeated and trailing slashes
// collapsed. An output that is, contains or lies inside one of the command's inputs is refused
// naming both, so that `--out` can never delete or overwrite the sources.
#if canImport(Glibc)
import Glibc
#endif

public struct PathSafetyError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public enum PathSafety {
    /// The absolute, normalised form of `path`: the longest existing prefix through realpath
    /// (symlinks resolved), the rest appended with `.` and `..` collapsed; no trailing slash.
    public static func canonical(_ path: String) -> String {
        var absolute = path
        if !absolute.hasPrefix("/") {
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let cwd = getcwd(&buffer, buffer.count).map { String(cString: $0) } ?? "/"
            absolute = cwd + "/" + path
        }
        // Collapse the components lexically first, then resolve the existing prefix.
        var parts: [Substring] = []
        for part in absolute.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." { if !parts.isEmpty { parts.removeLast() }; continue }
            parts.append(part)
        }
        var existing = parts.count
        while existing > 0 {
            let prefix = "/" + parts.prefix(existing).joined(separator: "/")
            if let resolved = realpath(prefix, nil) {
                defer { free(resolved) }
                let head = String(cString: resolved)
                let rest = parts.dropFirst(existing).joined(separator: "/")
                if rest.isEmpty { return head }
                return head == "/" ? "/" + rest : head + "/" + rest
            }
            existing -= 1
        }
        return "/" + parts.joined(separator: "/")
    }

    /// Whether `inner` is `outer` or lies below it (both canonical).
    public static func isSameOrInside(_ inner: String, _ outer: String) -> Bool {
        inner == outer || outer == "/" || inner.hasPrefix(outer + "/")
    }

    /// Throws when the output `output` (named by `flag`) is, contains or lies inside one of
    /// `inputs` (flag, path); nil inputs are ignored.
    public static func checkOutput(_ output: String, flag: String, inputs: [(flag: String, path: String?)]) throws {
        let out = canonical(output)
        for (inputFlag, path) in inputs {
            guard let path else { continue }
            let input = canonical(path)
            if out == input {
                throw PathSafetyError("\(flag) \(output) is the same folder as \(inputFlag) \(path) (\(out)): choose an output outside the sources")
            }
            if isSameOrInside(input, out) {
                throw PathSafetyError("\(flag) \(output) contains \(inputFlag) \(path) (\(input) is inside \(out)): replacing it would delete the sources")
            }
            if isSameOrInside(out, input) {
                throw PathSafetyError("\(flag) \(output) lies inside \(inputFlag) \(path) (\(out) is inside \(input)): choose an output outside the sources")
            }
        }
    }

    /// Throws unless `path` (named by `flag`) can be created or written: it is missing with a
    /// writable folder as its nearest existing ancestor, or it is itself writable. Checked at
    /// start, so a long job does not fail at its end for want of a place to write.
    public static func checkWritable(_ path: String, flag: String) throws {
        var probe = canonical(path)
        while !probe.isEmpty {
            var st = stat()
            if stat(probe, &st) == 0 {
                let isDirectory = (st.st_mode & S_IFMT) == S_IFDIR
                if probe != canonical(path) && !isDirectory {
                    throw PathSafetyError("\(flag) \(path): \(probe) is not a folder, so nothing can be created below it")
                }
                if access(probe, W_OK) != 0 {
                    let reason = String(cString: strerror(errno))
                    throw PathSafetyError("\(flag) \(path): \(probe) is not writable (\(reason))")
                }
                return
            }
            if probe == "/" { return }
            let slash = probe.lastIndex(of: "/")!
            probe = slash == probe.startIndex ? "/" : String(probe[..<slash])
        }
    }
}
