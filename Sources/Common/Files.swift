// File helpers: whole-file reads, memory maps, and crash-safe writes (temporary name, fsync,
// rename, fsync of the directory) so that a crash never leaves a half-written file under its
// final name.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An I/O error naming the file and the failing operation.
public struct FileError: Error, CustomStringConvertible, Sendable {
    public let path: String
    public let reason: String
    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }
    public var description: String { "\(path): \(reason)" }

    static func errno(_ path: String, _ operation: String) -> FileError {
        FileError(path: path, reason: "\(operation) failed: \(String(cString: strerror(Glibc.errno)))")
    }
}

public enum Files {
    /// True when `path` exists (file or directory).
    public static func exists(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0
    }

    public static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// The size of a regular file, or nil when `path` is missing or not a regular file.
    public static func regularFileSize(_ path: String) -> Int? {
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        return Int(st.st_size)
    }

    public static func fileSize(_ path: String) throws -> Int {
        var st = stat()
        guard stat(path, &st) == 0 else { throw FileError.errno(path, "stat") }
        return Int(st.st_size)
    }

    /// Opens `path` for reading if it is a regular file. The open itself does not block (a FIFO
    /// would wait for a writer forever); FIFOs, devices, sockets and folders are refused by name.
    public static func openRegularFile(_ path: String) throws -> (fd: Int32, size: Int) {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw FileError.errno(path, "open") }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let error = FileError.errno(path, "stat")
            close(fd)
            throw error
        }
        let type = st.st_mode & S_IFMT
        guard type == S_IFREG else {
            close(fd)
            let kind = type == S_IFDIR ? "a directory" : type == S_IFIFO ? "a FIFO (named pipe)" : type == S_IFCHR || type == S_IFBLK ? "a device"
                : type == S_IFSOCK ? "a socket" : "not a regular file"
            throw FileError(path: path, reason: "is \(kind), expected a regular file")
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        return (fd, Int(st.st_size))
    }

    /// Reads a whole regular file into memory; a file larger than `maxBytes` is refused by name
    /// (indexes, manifests and configurations are small: a huge one is damage or a mistake).
    public static func read(_ path: String, maxBytes: Int = 4 << 30) throws -> [UInt8] {
        let (fd, size) = try openRegularFile(path)
        defer { close(fd) }
        guard size <= maxBytes else { throw FileError(path: path, reason: "is \(size) bytes, more than the \(maxBytes) this file may have") }
        // st_size is 0 for /proc files: grow the buffer until end of file.
        var bytes = [UInt8](repeating: 0, count: max(size, 4096))
        var offset = 0
        while true {
            if offset == bytes.count { bytes.append(contentsOf: [UInt8](repeating: 0, count: bytes.count)) }
            let n = bytes.withUnsafeMutableBytes { buffer in
                Glibc.read(fd, buffer.baseAddress! + offset, buffer.count - offset)
            }
            if n < 0 {
                if Glibc.errno == EINTR { continue }
                throw FileError.errno(path, "read")
            }
            if n == 0 { break }
            offset += n
            guard offset <= maxBytes else { throw FileError(path: path, reason: "holds more than the \(maxBytes) bytes this file may have") }
        }
        if offset < bytes.count { bytes.removeLast(bytes.count - offset) }
        return bytes
    }

    public static func readText(_ path: String) throws -> String {
        let bytes = try read(path)
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw FileError(path: path, reason: "is not valid UTF-8 text")
        }
        return text
    }

    /// Writes `bytes` crash-safely: a temporary file in the same directory, fsync, rename over
    /// `path`, fsync of the directory.
    public static func writeAtomically(_ path: String, bytes: UnsafeRawBufferPointer) throws {
        let directory = parentDirectory(of: path)
        let temporary = "\(directory)/.\(lastComponent(of: path)).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FileError.errno(temporary, "create") }
        var ok = false
        defer {
            if !ok { unlink(temporary) }
        }
        do {
            try writeAll(fd: fd, bytes: bytes, path: temporary)
            guard fsync(fd) == 0 else { throw FileError.errno(temporary, "fsync") }
        } catch {
            close(fd)
            throw error
        }
        guard close(fd) == 0 else { throw FileError.errno(temporary, "close") }
        guard rename(temporary, path) == 0 else { throw FileError.errno(path, "rename") }
        ok = true
        syncDirectory(directory)
    }

    public static func writeAtomically(_ path: String, bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try writeAtomically(path, bytes: $0) }
    }

    public static func writeAtomically(_ path: String, text: String) throws {
        try writeAtomically(path, bytes: Array(text.utf8))
    }

    /// Writes a new file without fsync (for the many files of a folder that is itself made
    /// durable and renamed into place as a whole). Fails if the file exists.
    public static func writeNew(_ path: String, bytes: [UInt8]) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FileError.errno(path, "create") }
        do {
            try bytes.withUnsafeBytes { try writeAll(fd: fd, bytes: $0, path: path) }
        } catch {
            close(fd)
            unlink(path)
            throw error
        }
        guard close(fd) == 0 else { throw FileError.errno(path, "close") }
    }

    /// rename(2) with an error naming both paths.
    public static func move(_ from: String, to: String) throws {
        guard rename(from, to) == 0 else {
            let reason = String(cString: strerror(Glibc.errno))
            throw FileError(path: from, reason: "cannot rename to \(to): \(reason)")
        }
    }

    /// Writes every byte to `fd`, retrying short writes.
    public static func writeAll(fd: Int32, bytes: UnsafeRawBufferPointer, path: String) throws {
        var offset = 0
        while offset < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                if Glibc.errno == EINTR { continue }
                throw FileError.errno(path, "write")
            }
            offset += n
        }
    }

    /// fsync of a directory, so that a rename inside it is durable.
    public static func syncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            _ = fsync(fd)
            close(fd)
        }
    }

    /// Creates a directory and its parents (no error when it exists).
    public static func createDirectory(_ path: String) throws {
        if isDirectory(path) { return }
        let parent = parentDirectory(of: path)
        if parent != path && !parent.isEmpty && !exists(parent) { try createDirectory(parent) }
        if mkdir(path, 0o755) != 0 && Glibc.errno != EEXIST { throw FileError.errno(path, "mkdir") }
        if !isDirectory(path) { throw FileError(path: path, reason: "exists and is not a directory") }
    }

    /// Names inside a directory (without "." and ".."), sorted.
    public static func list(_ path: String) throws -> [String] {
        guard let dir = opendir(path) else { throw FileError.errno(path, "opendir") }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// Removes a file or a directory tree (no error when absent).
    public static func remove(_ path: String) throws {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            for name in try list(path) { try remove("\(path)/\(name)") }
            guard rmdir(path) == 0 else { throw FileError.errno(path, "rmdir") }
        } else {
            guard unlink(path) == 0 else { throw FileError.errno(path, "unlink") }
        }
    }

    public static func parentDirectory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        if slash == path.startIndex { return "/" }
        return String(path[..<slash])
    }

    public static func lastComponent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }

    /// `base/relative`, leaving absolute `relative` paths alone.
    public static func join(_ base: String, _ relative: String) -> String {
        if relative.hasPrefix("/") || base.isEmpty { return relative }
        return base.hasSuffix("/") ? base + relative : base + "/" + relative
    }
}

/// A read-only memory map of a whole file (for large weight files).
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let bytes: UnsafeRawBufferPointer

    public init(path: String) throws {
        self.path = path
        let (fd, size) = try Files.openRegularFile(path)
        defer { close(fd) }
        if size == 0 {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        guard let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), address != MAP_FAILED else {
            throw FileError.errno(path, "mmap")
        }
        bytes = UnsafeRawBufferPointer(start: address, count: size)
    }

    deinit {
        if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
    }
}
