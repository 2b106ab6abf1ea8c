// The VISCOIN_* environment variables the binary reads, checked once at start: a value that
// does not parse or is out of range is an error naming the variable, instead of being ignored
// where it is read. (Variables of the launch and cluster scripts are theirs to check;
// VISCOIN_BLAS_CORE is checked by BLASKernels.validateEnvironment, which knows the kernel families.)
public enum EnvironmentSettings {
    /// (name, what it must be, check)
    static let checks: [(String, String, @Sendable (String) -> Bool)] = [
        ("VISCOIN_THREADS", "an integer between 1 and 1024", { Int($0).map { (1...1024).contains($0) } ?? false }),
        ("VISCOIN_POOL_MB", "a whole number of MiB (0 or more)", { Int($0).map { $0 >= 0 && $0 < 1 << 40 } ?? false }),
        ("VISCOIN_CONV", "auto, onednn or im2col", { ["auto", "onednn", "im2col"].contains($0) }),
        ("VISCOIN_GEMM", "onednn or openblas", { $0 == "onednn" || $0 == "openblas" }),
        ("VISCOIN_PRECISION", "float32 or bf16", { $0 == "float32" || $0 == "bf16" }),
        ("VISCOIN_FORCE_MPI", "0 or 1", { $0 == "0" || $0 == "1" }),
        ("VISCOIN_DDP_MODE", "blocking or nonblocking", { $0 == "blocking" || $0 == "nonblocking" }),
        ("VISCOIN_FAULT_STEP", "a step number (1 or more)", { Int($0).map { $0 >= 1 } ?? false }),
        ("VISCOIN_FAULT_RANK", "a rank (0 or more)", { Int($0).map { $0 >= 0 } ?? false }),
        ("VISCOIN_FAULT_ONCE", "a file path", { !$0.isEmpty }),
    ]

    /// Throws for the first variable whose value is invalid.
    public static func validate() throws {
        for (name, expected, isValid) in checks {
            guard let value = environment(name) else { continue }
            if !isValid(value) { throw EnvironmentError(message: "\(name)='\(value)': must be \(expected)") }
        }
    }
}

public struct EnvironmentError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}
