// A self-contained HTML report: title, key figures, line charts drawn as inline SVG, tables and
// a confusion-matrix heat map. No scripts, no external files.
import Common

public struct HTMLReport {
    public var title: String
    private var body = ""

    public init(title: String) { self.title = title }

    static func escape(_ s: String) -> String {
        var out = ""
        for ch in s {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out.append(ch)
            }
        }
        return out
    }

    public mutating func heading(_ text: String) { body += "<h2>\(Self.escape(text))</h2>\n" }
    public mutating func paragraph(_ text: String) { body += "<p>\(Self.escape(text))</p>\n" }

    public mutating func keyValues(_ rows: [(String, String)]) {
        body += "<table class=\"kv\">\n"
        for (k, v) in rows { body += "<tr><th>\(Self.escape(k))</th><td>\(Self.escape(v))</td></tr>\n" }
        body += "</table>\n"
    }

    public mutating func table(header: [String], rows: [[String]]) {
        body += "<table><tr>" + header.map { "<th>\(Self.escape($0))</th>" }.joined() + "</tr>\n"
        for row in rows { body += "<tr>" + row.map { "<td>\(Self.escape($0))</td>" }.joined() + "</tr>\n" }
        body += "</table>\n"
    }

    /// A line chart of one or more series of (x, y) points.
    public mutating func lineChart(title: String, xLabel: String, yLabel: String, series: [(String, [(Double, Double)])]) {
        let width = 640.0, height = 300.0, left = 60.0, right = 150.0, top = 30.0, bottom = 40.0
        let points = series.flatMap(\.1).filter { $0.0.isFinite && $0.1.isFinite }
        guard !points.isEmpty else {
            body += "<p>\(Self.escape(title)): no data</p>\n"
            return
        }
        var (x0, x1) = (points.map(\.0).min()!, points.map(\.0).max()!)
        var (y0, y1) = (points.map(\.1).min()!, points.map(\.1).max()!)
        if x1 == x0 { x1 = x0 + 1 }
        if y1 == y0 { y0 -= 0.5; y1 += 0.5 }
        let plotW = width - left - right, plotH = height - top - bottom
        func px(_ x: Double) -> Double { left + (x - x0) / (x1 - x0) * plotW }
        func py(_ y: Double) -> Double { top + (1 - (y - y0) / (y1 - y0)) * plotH }
        let colours = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" class=\"chart\">\n"
        svg += "<text x=\"\(left)\" y=\"18\" font-weight=\"bold\">\(Self.escape(title))</text>\n"
        svg += "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(plotW)\" height=\"\(plotH)\" fill=\"none\" stroke=\"#999\"/>\n"
        for k in 0...4 {
            let yv = y0 + (y1 - y0) * Double(k) / 4, y = py(yv)
            svg += "<line x1=\"\(left)\" y1=\"\(y)\" x2=\"\(left + plotW)\" y2=\"\(y)\" stroke=\"#eee\"/>"
            svg += "<text x=\"\(left - 6)\" y=\"\(y + 4)\" text-anchor=\"end\" font-size=\"11\">\(Self.format(yv))</text>\n"
            let xv = x0 + (x1 - x0) * Double(k) / 4
            svg += "<text x=\"\(px(xv))\" y=\"\(top + plotH + 16)\" text-anchor=\"middle\" font-size=\"11\">\(Self.format(xv))</text>\n"
        }
        svg += "<text x=\"\(left + plotW / 2)\" y=\"\(height - 6)\" text-anchor=\"middle\" font-size=\"12\">\(Self.escape(xLabel))</text>\n"
        svg += "<text x=\"14\" y=\"\(top + plotH / 2)\" text-anchor=\"middle\" font-size=\"12\" transform=\"rotate(-90 14 \(top + plotH / 2))\">\(Self.escape(yLabel))</text>\n"
        for (i, (name, data)) in series.enumerated() {
            let colour = colours[i % colours.count]
            let path = data.filter { $0.0.isFinite && $0.1.isFinite }.map { "\(px($0.0)),\(py($0.1))" }.joined(separator: " ")
            svg += "<polyline fill=\"none\" stroke=\"\(colour)\" stroke-width=\"1.6\" points=\"\(path)\"/>\n"
            if data.count <= 60 {
                for (x, y) in data where x.isFinite && y.isFinite { svg += "<circle cx=\"\(px(x))\" cy=\"\(py(y))\" r=\"2.5\" fill=\"\(colour)\"/>" }
            }
            svg += "<rect x=\"\(left + plotW + 12)\" y=\"\(top + Double(i) * 18)\" width=\"12\" height=\"12\" fill=\"\(colour)\"/>"
            svg += "<text x=\"\(left + plotW + 30)\" y=\"\(top + Double(i) * 18 + 10)\" font-size=\"12\">\(Self.escape(name))</text>\n"
        }
        svg += "</svg>\n"
        body += svg
    }

    /// Rows = true class, columns = predicted class; cells shaded by the row-normalised count.
    public mutating func confusionMatrix(_ counts: [[Int]], classes: [String]) {
        let shown = classes.count <= 40
        guard shown else {
            body += "<p>Confusion matrix omitted (\(classes.count) classes); see report.json.</p>\n"
            return
        }
        body += "<table class=\"cm\"><tr><th>true \\ predicted</th>" + classes.map { "<th>\(Self.escape($0))</th>" }.joined() + "</tr>\n"
        for (i, row) in counts.enumerated() {
            let total = max(1, row.reduce(0, +))
            body += "<tr><th>\(Self.escape(classes[i]))</th>"
            for v in row {
                let share = Double(v) / Double(total)
                let shade = Int(255 - share * 200)
                body += "<td style=\"background: rgb(\(shade), \(shade), 255)\">\(v)</td>"
            }
            body += "</tr>\n"
        }
        body += "</table>\n"
    }

    /// A PNG embedded as a data URI, drawn at `scale` times its size without smoothing (small
    /// image grids stay sharp), with a caption.
    public mutating func image(png: [UInt8], width: Int, scale: Int = 1, caption: String) {
        body += "<figure><img class=\"grid\" width=\"\(width * scale)\" src=\"data:image/png;base64,\(Base64.encode(png))\" alt=\"\(Self.escape(caption))\">"
            + "<figcaption>\(Self.escape(caption))</figcaption></figure>\n"
    }

    /// A table of values in [0, 1] shaded from white to dark blue.
    public mutating func heatmap(rows: [String], columns: [String], values: [[Double]]) {
        body += "<table class=\"cm\"><tr><th></th>" + columns.map { "<th>\(Self.escape($0))</th>" }.joined() + "</tr>\n"
        for (r, name) in rows.enumerated() {
            body += "<tr><th>\(Self.escape(name))</th>"
            for v in values[r] {
                let share = v.isFinite ? min(max(v, 0), 1) : 0
                let shade = Int(255 - share * 200)
                body += "<td style=\"background: rgb(\(shade), \(shade), 255)\">\(Console.fixed(v, 2))</td>"
            }
            body += "</tr>\n"
        }
        body += "</table>\n"
    }

    /// Text shown as is (escaped), e.g. a configuration.
    public mutating func preformatted(_ text: String) { body += "<pre>\(Self.escape(text))</pre>\n" }

    /// Raw HTML from the report code itself (never from user input).
    mutating func raw(_ html: String) { body += html }

    static func format(_ v: Double) -> String {
        if v == 0 { return "0" }
        if abs(v) >= 1000 || abs(v) < 0.01 { return Console.fixed(v, 0).count > 8 ? "\(v)" : Console.fixed(v, abs(v) < 0.01 ? 4 : 0) }
        return Console.fixed(v, abs(v) >= 10 ? 1 : 3)
    }

    public func html() -> String {
        """
        <!DOCTYPE html>
        <html><head><meta charset="utf-8"><title>\(Self.escape(title))</title>
        <style>
        body { font-family: sans-serif; margin: 2em; color: #222; }
        table { border-collapse: collapse; margin: 1em 0; }
        th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; font-size: 13px; }
        table.kv th { text-align: left; background: #f4f4f4; }
        table.cm td { min-width: 2.2em; text-align: center; }
        svg.chart { display: block; margin: 1em 0; }
        img.grid { image-rendering: pixelated; border: 1px solid #ccc; }
        figure { display: inline-block; margin: 0.5em 1em 0.5em 0; }
        figcaption { font-size: 12px; color: #555; }
        </style></head><body>
        <h1>\(Self.escape(title))</h1>
        \(body)
        </body></html>

        """
    }
}
