// What the process launcher (mpirun, srun, or none) tells a rank about its host: how many ranks
// share this host and, under SLURM, how many CPUs each task was given.
#if canImport(Glibc)
import Glibc
#endif

public enum Launcher {
    /// True inside a SLURM job step (started by srun).
    public static var isSLURMStep: Bool { environment("SLURM_STEP_ID") != nil && environment("SLURM_JOB_ID") != nil }

    /// Ranks on this host according to the launcher (1 without one).
    public static var localRanks: Int {
        for name in ["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"] {
            if let text = environment(name), let value = Int(text), value > 0 { return value }
        }
        if isSLURMStep, let tasks = slurmTasksOnThisNode { return tasks }
        if let text = environment("SLURM_NTASKS_PER_NODE"), let value = Int(text), value > 0 { return value }
        return 1
    }

    /// Under srun: the tasks of this step on this node, from SLURM_TASKS_PER_NODE ("2(x3),1":
    /// two tasks on each of the first three nodes, one on the fourth) and SLURM_NODEID.
    public static var slurmTasksOnThisNode: Int? {
        guard let text = environment("SLURM_TASKS_PER_NODE"), let node = environment("SLURM_NODEID").flatMap({ Int($0) }) else { return nil }
        return parseTasksPerNode(text).flatMap { node >= 0 && node < $0.count ? $0[node] : nil }
    }

    /// Expands SLURM's compressed task list: "2(x3),1" -> [2, 2, 2, 1]; nil if malformed.
    public static func parseTasksPerNode(_ text: String) -> [Int]? {
        var counts: [Int] = []
        for item in text.split(separator: ",") {
            var tasks = Substring(item), repeats = 1
            if let open = item.firstIndex(of: "(") {
                guard item.hasSuffix(")"), item[item.index(after: open)...].hasPrefix("x"),
                      let r = Int(item[item.index(open, offsetBy: 2)..<item.index(before: item.endIndex)]), r > 0 else { return nil }
                tasks = item[..<open]
                repeats = r
            }
            guard let n = Int(tasks), n > 0, repeats <= 100_000 else { return nil }
            counts += Array(repeating: n, count: repeats)
        }
        return counts.isEmpty ? nil : counts
    }

    /// Compute threads a rank should use when nothing asks for a number: SLURM's CPUs per task
    /// (or the node's CPUs divided by its tasks) under srun, else this host's cores divided by
    /// the ranks on it.
    public static var defaultThreads: Int {
        if isSLURMStep {
            if let text = environment("SLURM_CPUS_PER_TASK"), let value = Int(text), value > 0 { return value }
            if let text = environment("SLURM_CPUS_ON_NODE"), let cpus = Int(text), cpus > 0, let tasks = slurmTasksOnThisNode {
                return max(1, cpus / tasks)
            }
        }
        let cores = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        return max(1, cores / localRanks)
    }
}
