// Graceful stop on a signal. Once installed, SIGUSR1 (what SLURM's --signal sends before a time
// limit or a pre-emption), SIGTERM (scancel, a pre-empting scheduler) and SIGINT (Ctrl-C) only
// record the signal: the training engine notices it at the end of the step, writes a
// checkpoint and ends the process with `StopSignals.exitStatus`. A second signal of the same
// kind ends the process at once (the handler restores the default action).
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

private let pendingStopSignal = Atomic<Int32>(0)

public enum StopSignals {
    /// Exit status of a run that stopped on a signal after writing its checkpoint (EX_TEMPFAIL:
    /// try again later, e.g. requeue with --resume latest).
    public static let exitStatus: Int32 = 75

    public static let handled: [Int32] = [SIGUSR1, SIGTERM, SIGINT]

    /// Installs the recording handlers (idempotent).
    public static func install() {
        _ = pendingStopSignal.load(ordering: .relaxed)
        for number in handled {
            signal(number) { received in
                pendingStopSignal.store(received, ordering: .relaxed)
                signal(received, SIG_DFL)
            }
        }
    }

    /// The signal received since `install` (0 when none).
    public static var pending: Int32 { pendingStopSignal.load(ordering: .relaxed) }

    /// Gives the handled signals their default action again (after a phase that handles them).
    public static func restoreDefaults() {
        for number in handled { signal(number, SIG_DFL) }
    }

    /// Forgets a received signal and restores the recording handlers (tests).
    public static func reset() {
        pendingStopSignal.store(0, ordering: .relaxed)
        install()
    }

    public static func name(_ number: Int32) -> String {
        switch number {
        case SIGUSR1: return "SIGUSR1"
        case SIGTERM: return "SIGTERM"
        case SIGINT: return "SIGINT"
        default: return "signal \(number)"
        }
    }
}

/// A command that ended early but cleanly (its state is saved): the process prints `message`
/// on rank 0 and exits with `status` on every rank.
public struct GracefulStop: Error, CustomStringConvertible {
    public var status: Int32
    public var message: String
    public init(status: Int32, message: String) {
        self.status = status
        self.message = message
    }
    public var description: String { message }
}
