// `viscoin demo-summary --demo DIR`: the headline figures of a finished `launch/demo` run, read
// from the report.json files of its stages.
import ArgumentParser
import Common

struct DemoSummaryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo-summary",
        abstract: "Headline figures of a launch/demo output folder.")

    @Option(help: "The demo output folder.") var demo: String

    func run() throws {
        func report(_ stage: String) throws -> JSONValue {
            let path = Files.join(demo, "\(stage)/report.json")
            guard Files.exists(path) else { throw ValidationError("\(path) is missing: has the demo finished?") }
            return try JSONValue.parse(try Files.read(path))
        }
        let classifier = try report("classifier"), gan = try report("gan"), viscoin = try report("viscoin")
        func percent(_ v: Double?) -> String { v.map { "\(Console.fixed($0, 2))%" } ?? "-" }
        var rows: [[String]] = [["classifier f: test accuracy", percent(classifier["test_accuracy"]?.doubleValue.map { 100 * $0 })]]
        if let fids = gan["fid"]?.arrayValue, let first = fids.first?.arrayValue?[1].doubleValue, let last = fids.last?.arrayValue?[1].doubleValue {
            rows.append(["generator: domain FID (start -> end)", "\(Console.fixed(first, 1)) -> \(Console.fixed(last, 1))"])
        }
        let figures = viscoin["figures"], e = figures?["evaluation"]
        rows += [["VisCoIN: explainer accuracy", percent(e?["explainer_accuracy"]?.doubleValue)],
                 ["VisCoIN: fidelity (argmax f = argmax Theta)", percent(e?["fidelity"]?.doubleValue)],
                 ["VisCoIN: reconstruction L1 / L2", "\(e?["l1"]?.doubleValue.map { Console.fixed($0, 4) } ?? "-") / \(e?["l2"]?.doubleValue.map { Console.fixed($0, 4) } ?? "-")"],
                 ["VisCoIN: domain FID of reconstructions", e?["fid"]?.doubleValue.map { Console.fixed($0, 2) } ?? "-"]]
        if let a = figures?["alignment"]?["score"]?.doubleValue, let b = figures?["baseline_alignment"]?["score"]?.doubleValue {
            rows.append(["concept alignment with the true concepts (untrained Psi)", "\(Console.fixed(a, 3)) (\(Console.fixed(b, 3)))"])
        }
        if let f = figures?["faithfulness"], let s = f["selected"]?.doubleValue, let r = f["random"]?.doubleValue {
            rows.append(["faithfulness: x4 vs x1, top-3 vs random concepts", "\(Console.signed(s, 3)) vs \(Console.signed(r, 3))"])
        }
        Console.print(Console.table(header: ["figure", "value"], rows: rows), terminator: "")
        Console.print("report: \(Files.join(demo, "viscoin/report.html"))")
    }
}
