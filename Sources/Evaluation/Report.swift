import Foundation

/// Small inline-SVG charts (no external assets, no script): grouped bars and lines.
public enum SVGChart {
    static let palette = ["#2f5bd3", "#d3672f", "#2f9e5b", "#9b2fd3", "#c9a227", "#d32f5b"]

    static func esc(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static func num(_ v: Double) -> String { v.isFinite ? String(format: "%.4g", v) : "–" }

    /// Bars for each group (a task's metric), one per series (a run), with values above them.
    public static func bars(title: String, groups: [(label: String, values: [Double?])], series: [String], width: Int = 640) -> String {
        let h = 260, top = 36, bottom = 56, left = 48
        let plotH = Double(h - top - bottom), plotW = Double(width - left - 16)
        let maxV = max(groups.flatMap { $0.values.compactMap { $0 } }.max() ?? 1, 1e-9)
        let yMax = maxV <= 1 ? 1.0 : maxV * 1.1
        let gw = plotW / Double(max(groups.count, 1))
        let bw = min(40, gw * 0.8 / Double(max(series.count, 1)))
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(h)\" role=\"img\" aria-label=\"\(esc(title))\">"
        s += "<text x=\"\(left)\" y=\"20\" font-size=\"14\" font-weight=\"600\">\(esc(title))</text>"
        for i in 0...4 {
            let v = yMax * Double(i) / 4, y = Double(top) + plotH * (1 - Double(i) / 4)
            s += "<line x1=\"\(left)\" x2=\"\(width - 16)\" y1=\"\(y)\" y2=\"\(y)\" stroke=\"#ddd\"/>"
            s += "<text x=\"\(left - 6)\" y=\"\(y + 4)\" font-size=\"10\" text-anchor=\"end\">\(num(v))</text>"
        }
        for (g, group) in groups.enumerated() {
            let x0 = Double(left) + gw * Double(g) + (gw - bw * Double(series.count)) / 2
            for (k, v) in group.values.enumerated() {
                guard let v else { continue }
                let bh = plotH * min(v / yMax, 1), x = x0 + bw * Double(k), y = Double(top) + plotH - bh
                s += "<rect x=\"\(x)\" y=\"\(y)\" width=\"\(bw - 2)\" height=\"\(bh)\" fill=\"\(palette[k % palette.count])\"><title>\(esc(series[k])): \(num(v))</title></rect>"
                s += "<text x=\"\(x + bw / 2 - 1)\" y=\"\(y - 3)\" font-size=\"9\" text-anchor=\"middle\">\(num(v))</text>"
            }
            s += "<text x=\"\(Double(left) + gw * (Double(g) + 0.5))\" y=\"\(h - bottom + 16)\" font-size=\"11\" text-anchor=\"middle\">\(esc(group.label))</text>"
        }
        s += legend(series, y: h - 14, left: left)
        return s + "</svg>"
    }

    /// Lines through (x, y) points, one per series.
    public static func lines(title: String, series: [(name: String, points: [(Double, Double)])], xLabel: String, width: Int = 640) -> String {
        let h = 240, top = 36, bottom = 50, left = 52
        let all = series.flatMap(\.points)
        let xs = all.map(\.0), ys = all.map(\.1)
        let (x0, x1) = (xs.min() ?? 0, max(xs.max() ?? 1, (xs.min() ?? 0) + 1e-9))
        let (y0, y1) = (min(ys.min() ?? 0, 0), max(ys.max() ?? 1, 1e-9) * 1.05)
        let plotW = Double(width - left - 16), plotH = Double(h - top - bottom)
        func px(_ x: Double) -> Double { Double(left) + (x - x0) / (x1 - x0) * plotW }
        func py(_ y: Double) -> Double { Double(top) + plotH * (1 - (y - y0) / (y1 - y0)) }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(h)\" role=\"img\" aria-label=\"\(esc(title))\">"
        s += "<text x=\"\(left)\" y=\"20\" font-size=\"14\" font-weight=\"600\">\(esc(title))</text>"
        for i in 0...4 {
            let v = y0 + (y1 - y0) * Double(i) / 4
            s += "<line x1=\"\(left)\" x2=\"\(width - 16)\" y1=\"\(py(v))\" y2=\"\(py(v))\" stroke=\"#ddd\"/>"
            s += "<text x=\"\(left - 6)\" y=\"\(py(v) + 4)\" font-size=\"10\" text-anchor=\"end\">\(num(v))</text>"
        }
        s += "<text x=\"\(Double(left) + plotW / 2)\" y=\"\(h - bottom + 28)\" font-size=\"11\" text-anchor=\"middle\">\(esc(xLabel))</text>"
        for (k, line) in series.enumerated() {
            let pts = line.points.map { "\(px($0.0)),\(py($0.1))" }.joined(separator: " ")
            s += "<polyline fill=\"none\" stroke=\"\(palette[k % palette.count])\" stroke-width=\"2\" points=\"\(pts)\"/>"
            for p in line.points { s += "<circle cx=\"\(px(p.0))\" cy=\"\(py(p.1))\" r=\"3\" fill=\"\(palette[k % palette.count])\"><title>\(esc(line.name)): \(num(p.1))</title></circle>" }
        }
        s += legend(series.map(\.name), y: h - 10, left: left)
        return s + "</svg>"
    }

    static func legend(_ names: [String], y: Int, left: Int) -> String {
        var s = "", x = Double(left)
        for (k, n) in names.enumerated() {
            s += "<rect x=\"\(x)\" y=\"\(y - 9)\" width=\"10\" height=\"10\" fill=\"\(palette[k % palette.count])\"/>"
            s += "<text x=\"\(x + 14)\" y=\"\(y)\" font-size=\"11\">\(esc(n))</text>"
            x += 24 + Double(n.count) * 6.5
        }
        return s
    }
}

/// `steward eval report`: Markdown and one self-contained HTML page.
public enum EvalReport {
    public struct Extras {
        /// (name, [(epoch, train loss, validation loss?)]) from steward tune's trainer_state.json.
        public var tuneCurves: [(String, [(Double, Double, Double?)])] = []
        /// (file, [(test, tokens/s)]) from steward bench --json output.
        public var bench: [(String, [(String, Double)])] = []
        public init() {}
    }

    public static func write(runs: [(name: String, run: EvalRun)], extras: Extras, to dir: String) throws -> (markdown: String, html: String) {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let names = runs.map(\.name)
        var md = "# Evaluation report\n\n"
        var body = "<h1>Evaluation report</h1>"
        // Runs
        md += "| run | model | adapters | quantization | created |\n|---|---|---|---|---|\n"
        body += "<table><tr><th>run</th><th>model</th><th>adapters</th><th>quantization</th><th>created</th></tr>"
        for (n, r) in runs {
            let model = r.model["path"] ?? r.model["endpoint"] ?? "?"
            md += "| \(n) | \(model) | \(r.model["adapters"] ?? "") | \(r.model["quantization"] ?? "") | \(r.created) |\n"
            body += "<tr><td>\(SVGChart.esc(n))</td><td>\(SVGChart.esc(model))</td><td>\(SVGChart.esc(r.model["adapters"] ?? ""))</td><td>\(SVGChart.esc(r.model["quantization"] ?? ""))</td><td>\(SVGChart.esc(r.created))</td></tr>"
        }
        body += "</table>"
        // Metrics
        var tasks: [String] = []
        for (_, r) in runs { for t in r.tasks where !tasks.contains(t.name) { tasks.append(t.name) } }
        md += "\n| task | metric | " + names.joined(separator: " | ") + " |\n|---|---|" + names.map { _ in "---:|" }.joined() + "\n"
        body += "<h2>Tasks</h2><table><tr><th>task</th><th>metric</th>" + names.map { "<th>\(SVGChart.esc($0))</th>" }.joined() + "</tr>"
        var charts: [String] = []
        for t in tasks {
            let metrics = runs.flatMap { $0.run.tasks.first { $0.name == t }?.metrics.keys.map { $0 } ?? [] }.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }.sorted()
            var groups: [(String, [Double?])] = []
            for m in metrics {
                let vals = runs.map { $0.run.tasks.first { $0.name == t }?.metrics[m] }
                func cell(_ v: MetricValue?) -> String { v.map { String(format: "%.4f", $0.value) + ($0.stderr.map { String(format: " ± %.4f", $0) } ?? "") } ?? "–" }
                md += "| \(t) | \(m) | " + vals.map(cell).joined(separator: " | ") + " |\n"
                body += "<tr><td>\(SVGChart.esc(t))</td><td>\(SVGChart.esc(m))</td>" + vals.map { "<td>\(cell($0))</td>" }.joined() + "</tr>"
                groups.append((m, vals.map { $0?.value }))
            }
            charts.append(SVGChart.bars(title: t, groups: groups, series: names))
        }
        body += "</table><h2>Charts</h2>" + charts.map { "<figure>\($0)</figure>" }.joined()
        md += "\nCharts: see report.html.\n"
        if !extras.tuneCurves.isEmpty {
            var series: [(String, [(Double, Double)])] = []
            for (n, pts) in extras.tuneCurves {
                series.append(("\(n) train", pts.map { ($0.0, $0.1) }))
                let val = pts.compactMap { p in p.2.map { (p.0, $0) } }
                if !val.isEmpty { series.append(("\(n) validation", val)) }
            }
            body += "<h2>Training loss</h2><figure>" + SVGChart.lines(title: "steward tune loss per epoch", series: series, xLabel: "epoch") + "</figure>"
            md += "\n## Training loss\n\n" + extras.tuneCurves.map { n, pts in "- \(n): " + pts.map { String(format: "epoch %.0f train %.4f", $0.0, $0.1) + ($0.2.map { String(format: " val %.4f", $0) } ?? "") }.joined(separator: "; ") }.joined(separator: "\n") + "\n"
        }
        if !extras.bench.isEmpty {
            let tests = extras.bench.flatMap { $0.1.map(\.0) }.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
            let groups = tests.map { t in (t, extras.bench.map { b in b.1.first { $0.0 == t }?.1 }) }
            body += "<h2>Throughput</h2><figure>" + SVGChart.bars(title: "steward bench tokens/s", groups: groups, series: extras.bench.map(\.0)) + "</figure>"
            md += "\n## Throughput (tokens/s)\n\n" + extras.bench.map { n, v in "- \(n): " + v.map { "\($0.0) \(String(format: "%.1f", $0.1))" }.joined(separator: ", ") }.joined(separator: "\n") + "\n"
        }
        let html = """
            <!doctype html><html lang="en"><head><meta charset="utf-8"><title>Steward evaluation report</title>
            <meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
            <style>body{font:14px/1.5 system-ui,sans-serif;margin:24px;color:#1d2330;background:#fff}table{border-collapse:collapse;margin:8px 0}
            td,th{border:1px solid #d9dde4;padding:4px 8px;text-align:left}figure{margin:12px 0}svg text{font-family:system-ui,sans-serif;fill:#1d2330}</style>
            </head><body>\(body)</body></html>
            """
        try md.write(toFile: dir + "/report.md", atomically: true, encoding: .utf8)
        try html.write(toFile: dir + "/report.html", atomically: true, encoding: .utf8)
        return (md, html)
    }
}
