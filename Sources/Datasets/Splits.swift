// Seeded, stratified splits: a fraction of each class is moved to another split, chosen by a
// per-class permutation from (seed, purpose, class), so the result depends on nothing else.
import TensorCore

public enum Splits {
    /// Indices (of `labels`) among `candidates` chosen for the new split: per class,
    /// `round(fraction * count)` items (at least one when the class has two or more items and
    /// the fraction is positive), taken from a seeded shuffle of the class's candidates.
    public static func stratifiedSample(labels: [Int], candidates: [Int], fraction: Double, seed: UInt64, purpose: UInt64) -> Set<Int> {
        guard fraction > 0 else { return [] }
        var byClass: [Int: [Int]] = [:]
        for i in candidates.sorted() { byClass[labels[i], default: []].append(i) }
        var chosen = Set<Int>()
        for label in byClass.keys.sorted() {
            let members = byClass[label]!
            var take = Int((fraction * Double(members.count)).rounded())
            if take == 0 && members.count >= 2 { take = 1 }
            take = min(take, members.count - (fraction < 1 ? 1 : 0))
            guard take > 0 else { continue }
            let order = RandomGenerator(seed: seed, stream: purpose &* 0x1_0000_0000 &+ UInt64(label)).permutation(members.count)
            for k in order.prefix(take) { chosen.insert(members[k]) }
        }
        return chosen
    }

    /// Purposes (sub-streams) of the split draws.
    public static let validationPurpose: UInt64 = 0x56414C   // "VAL"
    public static let testPurpose: UInt64 = 0x544553         // "TES"
}
