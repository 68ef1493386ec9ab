//! Rows of results and their renderings: the human table (a Markdown table, so it pastes
//! verbatim into docs/performance.md), CSV, JSON and an SVG bar chart of the ratios.

use std::fmt::Write as _;

use crate::common::{median, PerSystem, System};

/// Which direction is good for a metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Better {
    Lower,
    Higher,
    /// A fact (yes/no) or a figure with no direction.
    Neither,
}

/// The target for a row, and how it is checked.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Target {
    None,
    /// ours / crossbeam-epoch <= x.
    VsCrossbeamAtMost(f64),
    /// ours / crossbeam-epoch >= x.
    VsCrossbeamAtLeast(f64),
    /// ours / seize >= x.
    VsSeizeAtLeast(f64),
    /// The rcu-ctx value <= x.
    AtMost(f64),
    /// The rcu-ctx value >= x (a ratio row: ours / a reference measured in the same run).
    AtLeast(f64),
    /// The rcu-ctx value == x (an exact figure, such as a size in bytes).
    Equals(f64),
    /// The rcu-ctx value is "yes" (1).
    Yes,
    /// Every system's value that is present is "yes" (for rcu-ctx this is the target; the
    /// peers' values are shown for comparison).
    OursYes,
    /// ours / the row's other peer (its own column: liburcu, arc-swap) <= x.
    VsOtherAtMost(f64),
    /// ours / the row's other peer >= x.
    VsOtherAtLeast(f64),
    /// Every one of these (a row with an absolute bound and a ratio bound).
    All(&'static [Target]),
}

impl Target {
    /// `other`: the name of the row's other peer.
    fn describe(self, other: &str) -> String {
        match self {
            Target::None => String::new(),
            Target::VsCrossbeamAtMost(x) => format!("<= {x}x crossbeam"),
            Target::VsCrossbeamAtLeast(x) => format!(">= {x}x crossbeam"),
            Target::VsSeizeAtLeast(x) => format!(">= {x}x seize"),
            Target::AtMost(x) => format!("<= {}", fmt_num(x)),
            Target::AtLeast(x) => format!(">= {}", fmt_num(x)),
            Target::Equals(x) => format!("== {}", fmt_num(x)),
            Target::Yes | Target::OursYes => "yes".into(),
            Target::VsOtherAtMost(x) => format!("<= {x}x {other}"),
            Target::VsOtherAtLeast(x) => format!(">= {x}x {other}"),
            Target::All(all) => {
                all.iter().map(|t| t.describe(other)).collect::<Vec<_>>().join("; ")
            }
        }
    }
}

/// A peer outside the three columns (liburcu, arc-swap), in the table's "other peer"
/// column: its name and its values per repetition, or why it has none.
#[derive(Clone, Debug)]
pub(crate) struct OtherPeer {
    pub(crate) name: &'static str,
    pub(crate) reps: Result<Vec<f64>, &'static str>,
}

impl OtherPeer {
    /// The median over the repetitions (None without values).
    fn value(&self) -> Option<f64> {
        self.reps.as_ref().ok().map(|v| median(v)).filter(|v| !v.is_nan())
    }

    fn cell(&self) -> String {
        match (&self.reps, self.value()) {
            (Err(why), _) => format!("{}: {why}", self.name),
            (Ok(_), Some(v)) => format!("{} {}", self.name, fmt_num(v)),
            (Ok(_), None) => format!("{} n/a", self.name),
        }
    }
}

/// One line of the results.
#[derive(Clone, Debug)]
pub(crate) struct Row {
    pub(crate) workload: &'static str,
    /// What is measured, with its unit, e.g. "read section (ns/op)".
    pub(crate) metric: String,
    pub(crate) unit: &'static str,
    /// rcu-ctx, crossbeam-epoch, seize (None: not applicable).
    pub(crate) values: [Option<f64>; 3],
    pub(crate) better: Better,
    pub(crate) target: Target,
    /// Per-repetition values behind the medians (for the JSON).
    pub(crate) reps: Option<PerSystem>,
    /// A peer outside the three columns, if the row has one.
    pub(crate) other: Option<OtherPeer>,
}

impl Row {
    pub(crate) fn new(
        workload: &'static str,
        metric: impl Into<String>,
        unit: &'static str,
    ) -> Self {
        Row {
            workload,
            metric: metric.into(),
            unit,
            values: [None; 3],
            better: Better::Neither,
            target: Target::None,
            reps: None,
            other: None,
        }
    }

    /// The medians of `reps` as the row's values.
    pub(crate) fn from_reps(
        workload: &'static str,
        metric: impl Into<String>,
        unit: &'static str,
        better: Better,
        reps: PerSystem,
    ) -> Self {
        let mut row = Row::new(workload, metric, unit);
        row.values = reps.medians();
        row.better = better;
        row.reps = Some(reps);
        row
    }

    pub(crate) fn ours(mut self, v: f64) -> Self {
        self.values[0] = Some(v);
        self
    }

    pub(crate) fn better(mut self, better: Better) -> Self {
        self.better = better;
        self
    }

    pub(crate) fn target(mut self, target: Target) -> Self {
        self.target = target;
        self
    }

    /// The row's other peer (`name`) and its values per repetition, or why it has none.
    pub(crate) fn other(
        mut self,
        name: &'static str,
        reps: Result<Vec<f64>, &'static str>,
    ) -> Self {
        self.other = Some(OtherPeer { name, reps });
        self
    }

    fn other_name(&self) -> &str {
        self.other.as_ref().map_or("(no other peer)", |o| o.name)
    }

    /// ours / the other peer.
    pub(crate) fn ratio_other(&self) -> Option<f64> {
        match (self.value(System::Ours), self.other.as_ref().and_then(OtherPeer::value)) {
            (Some(a), Some(b)) if b != 0.0 && self.unit != "bool" => Some(a / b),
            _ => None,
        }
    }

    fn value(&self, s: System) -> Option<f64> {
        self.values[s as usize].filter(|v| !v.is_nan())
    }

    /// ours / peer.
    pub(crate) fn ratio(&self, peer: System) -> Option<f64> {
        if self.unit == "bool" {
            return None;
        }
        match (self.value(System::Ours), self.value(peer)) {
            (Some(a), Some(b)) if b != 0.0 => Some(a / b),
            _ => None,
        }
    }

    /// Whether the target is met; None without a target or without the data to judge.
    pub(crate) fn met(&self) -> Option<bool> {
        self.meets(self.target)
    }

    fn meets(&self, target: Target) -> Option<bool> {
        let ours = self.value(System::Ours);
        match target {
            Target::None => None,
            Target::VsCrossbeamAtMost(x) => self.ratio(System::Crossbeam).map(|r| r <= x),
            Target::VsCrossbeamAtLeast(x) => self.ratio(System::Crossbeam).map(|r| r >= x),
            Target::VsSeizeAtLeast(x) => self.ratio(System::Seize).map(|r| r >= x),
            Target::AtMost(x) => ours.map(|v| v <= x),
            Target::AtLeast(x) => ours.map(|v| v >= x),
            Target::Equals(x) => ours.map(|v| v == x),
            Target::Yes | Target::OursYes => ours.map(|v| v == 1.0),
            Target::VsOtherAtMost(x) => self.ratio_other().map(|r| r <= x),
            Target::VsOtherAtLeast(x) => self.ratio_other().map(|r| r >= x),
            // Missed if one is missed; met only if every one could be judged and is met.
            Target::All(all) => {
                let each: Vec<Option<bool>> = all.iter().map(|&t| self.meets(t)).collect();
                if each.contains(&Some(false)) {
                    Some(false)
                } else if each.iter().all(|m| *m == Some(true)) {
                    Some(true)
                } else {
                    None
                }
            }
        }
    }

    /// One verdict per target (a `Target::All` has several), in the order they are described.
    pub(crate) fn verdicts(&self) -> Vec<Option<bool>> {
        match self.target {
            Target::None => Vec::new(),
            Target::All(all) => all.iter().map(|&t| self.meets(t)).collect(),
            t => vec![self.meets(t)],
        }
    }

    fn describe_target(&self) -> String {
        self.target.describe(self.other_name())
    }

    fn cell(&self, s: System) -> String {
        match self.value(s) {
            None => "n/a".into(),
            Some(v) if self.unit == "bool" => if v == 1.0 { "yes" } else { "NO" }.into(),
            Some(v) => fmt_num(v),
        }
    }
}

/// Three significant figures, roughly; no exponent notation.
pub(crate) fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 || (v == v.trunc() && a < 1e15) {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else if a == 0.0 {
        "0".into()
    } else {
        format!("{v:.3}")
    }
}

fn fmt_ratio(r: Option<f64>) -> String {
    match r {
        Some(r) if r >= 100.0 => format!("{r:.0}x"),
        Some(r) if r >= 10.0 => format!("{r:.1}x"),
        Some(r) => format!("{r:.2}x"),
        None => "".into(),
    }
}

/// An advantage below 1 as "1/Nx" (rcu-ctx N times worse), which reads better than 0.003x.
fn fmt_advantage(a: f64) -> String {
    if a >= 1.0 {
        fmt_ratio(Some(a))
    } else if 1.0 / a >= 10.0 {
        format!("1/{:.0}x", 1.0 / a)
    } else {
        format!("1/{:.2}x", 1.0 / a)
    }
}

fn fmt_met(m: Option<bool>) -> &'static str {
    match m {
        Some(true) => "met",
        Some(false) => "NOT MET",
        None => "",
    }
}

/// A row's verdicts, "; " between them as between its targets; one that could not be judged
/// (a peer not built) is "n/a" when the row has several.
fn fmt_verdicts(v: &[Option<bool>]) -> String {
    match v {
        [one] => fmt_met(*one).to_string(),
        many => many
            .iter()
            .map(|m| if m.is_some() { fmt_met(*m) } else { "n/a" })
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// The human table: Markdown, aligned.
pub(crate) fn table(rows: &[Row]) -> String {
    let header = [
        "workload",
        "metric",
        "rcu-ctx",
        "crossbeam-epoch",
        "seize",
        "ours/crossbeam",
        "ours/seize",
        "other peer",
        "ours/other",
        "target",
        "met?",
    ];
    let body: Vec<[String; 11]> = rows
        .iter()
        .map(|r| {
            [
                r.workload.to_string(),
                r.metric.clone(),
                r.cell(System::Ours),
                r.cell(System::Crossbeam),
                r.cell(System::Seize),
                fmt_ratio(r.ratio(System::Crossbeam)),
                fmt_ratio(r.ratio(System::Seize)),
                r.other.as_ref().map(OtherPeer::cell).unwrap_or_default(),
                fmt_ratio(r.ratio_other()),
                r.describe_target(),
                fmt_verdicts(&r.verdicts()),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for line in &body {
        for (w, c) in widths.iter_mut().zip(line) {
            *w = (*w).max(c.chars().count());
        }
    }
    let numeric = [false, false, true, true, true, true, true, false, true, false, false];
    let mut out = String::new();
    let fmt_line = |cells: &[String], out: &mut String| {
        out.push('|');
        for (i, c) in cells.iter().enumerate() {
            let pad = widths[i] - c.chars().count();
            if numeric[i] {
                let _ = write!(out, " {}{} |", " ".repeat(pad), c);
            } else {
                let _ = write!(out, " {}{} |", c, " ".repeat(pad));
            }
        }
        out.push('\n');
    };
    fmt_line(&header.map(String::from), &mut out);
    out.push('|');
    for (i, w) in widths.iter().enumerate() {
        if numeric[i] {
            let _ = write!(out, " {}: |", "-".repeat(w - 1));
        } else {
            let _ = write!(out, " {} |", "-".repeat(*w));
        }
    }
    out.push('\n');
    for line in &body {
        fmt_line(line, &mut out);
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn opt(v: Option<f64>) -> String {
    v.filter(|v| !v.is_nan()).map(|v| format!("{v}")).unwrap_or_default()
}

pub(crate) fn csv(rows: &[Row]) -> String {
    let mut out = String::from(
        "workload,metric,unit,rcu_ctx,crossbeam_epoch,seize,ratio_vs_crossbeam,ratio_vs_seize,\
         other_peer,other_value,ratio_vs_other,target,met\n",
    );
    for r in rows {
        let met = match r.met() {
            Some(true) => "true",
            Some(false) => "false",
            None => "",
        };
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{}",
            r.workload,
            csv_field(&r.metric),
            r.unit,
            opt(r.values[0]),
            opt(r.values[1]),
            opt(r.values[2]),
            opt(r.ratio(System::Crossbeam)),
            opt(r.ratio(System::Seize)),
            csv_field(&r.other.as_ref().map(OtherPeer::cell).unwrap_or_default()),
            opt(r.other.as_ref().and_then(OtherPeer::value)),
            opt(r.ratio_other()),
            csv_field(&r.describe_target()),
            met
        );
    }
    out
}

pub(crate) fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_num(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v}"),
        _ => "null".into(),
    }
}

fn json_list(xs: &[f64]) -> String {
    let items: Vec<String> = xs.iter().map(|&x| json_num(Some(x))).collect();
    format!("[{}]", items.join(", "))
}

/// The whole run as JSON: `meta` (already-rendered `"key": value` pairs), the rows with
/// their per-repetition values, and the notes.
pub(crate) fn json(meta: &[(String, String)], rows: &[Row], notes: &[String]) -> String {
    let mut out = String::from("{\n");
    for (k, v) in meta {
        let _ = writeln!(out, "  {}: {},", json_str(k), v);
    }
    out.push_str("  \"rows\": [\n");
    for (i, r) in rows.iter().enumerate() {
        let met = match r.met() {
            Some(b) => b.to_string(),
            None => "null".into(),
        };
        let reps = match &r.reps {
            Some(p) => format!(
                "{{\"rcu_ctx\": {}, \"crossbeam_epoch\": {}, \"seize\": {}}}",
                json_list(&p.ours),
                json_list(&p.crossbeam),
                json_list(&p.seize)
            ),
            None => "null".into(),
        };
        let other = match &r.other {
            Some(o) => format!(
                "{{\"name\": {}, \"value\": {}, \"reps\": {}, \"missing\": {}}}",
                json_str(o.name),
                json_num(o.value()),
                o.reps.as_ref().map_or_else(|_| "null".into(), |v| json_list(v)),
                o.reps.as_ref().err().map_or_else(|| "null".into(), |why| json_str(why))
            ),
            None => "null".into(),
        };
        let _ = write!(
            out,
            "    {{\"workload\": {}, \"metric\": {}, \"unit\": {}, \"rcu_ctx\": {}, \
             \"crossbeam_epoch\": {}, \"seize\": {}, \"ratio_vs_crossbeam\": {}, \
             \"ratio_vs_seize\": {}, \"other_peer\": {}, \"ratio_vs_other\": {}, \
             \"target\": {}, \"met\": {}, \"reps\": {}}}",
            json_str(r.workload),
            json_str(&r.metric),
            json_str(r.unit),
            json_num(r.values[0]),
            json_num(r.values[1]),
            json_num(r.values[2]),
            json_num(r.ratio(System::Crossbeam)),
            json_num(r.ratio(System::Seize)),
            other,
            json_num(r.ratio_other()),
            json_str(&r.describe_target()),
            met,
            reps
        );
        out.push_str(if i + 1 < rows.len() { ",\n" } else { "\n" });
    }
    out.push_str("  ],\n  \"notes\": [\n");
    for (i, n) in notes.iter().enumerate() {
        let _ = write!(out, "    {}", json_str(n));
        out.push_str(if i + 1 < notes.len() { ",\n" } else { "\n" });
    }
    out.push_str("  ]\n}\n");
    out
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A horizontal bar chart, log scale, of how much better rcu-ctx is than each peer on every
/// row that has a ratio: the ratio itself where higher is better, its inverse where lower is
/// better, so bars right of 1 always mean "rcu-ctx ahead". Targets are red ticks.
pub(crate) fn svg(rows: &[Row], title: &str) -> String {
    let rows: Vec<&Row> = rows
        .iter()
        .filter(|r| {
            r.better != Better::Neither
                && (r.ratio(System::Crossbeam).is_some()
                    || r.ratio(System::Seize).is_some()
                    || r.ratio_other().is_some())
        })
        .collect();
    let (left, right, top, row_h) = (380.0, 40.0, 70.0, 46.0);
    let plot_w = 560.0;
    let width = left + plot_w + right;
    let height = top + row_h * rows.len() as f64 + 60.0;
    let (lo, hi) = (-5.0f64, 6.0f64); // log2 range: 1/32x .. 64x
    let x_of = |adv: f64| {
        let l = adv.log2().clamp(lo, hi);
        left + (l - lo) / (hi - lo) * plot_w
    };
    let adv = |r: &Row, ratio: f64| if r.better == Better::Lower { 1.0 / ratio } else { ratio };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(s, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"22\" font-size=\"15\" font-weight=\"bold\">{}</text>",
        10,
        xml(title)
    );
    let _ = writeln!(
        s,
        "<text x=\"10\" y=\"42\" fill=\"#444\">advantage of rcu-ctx over each peer (log scale): \
         ratio ours/peer for throughput, peer/ours for time and memory; right of 1x = \
         rcu-ctx ahead; red tick = target</text>"
    );
    let bottom = top + row_h * rows.len() as f64;
    for e in lo as i32..=hi as i32 {
        let x = x_of(2f64.powi(e));
        let label = if e >= 0 { format!("{}x", 1u64 << e) } else { format!("1/{}x", 1u64 << -e) };
        let stroke = if e == 0 { "#000" } else { "#ddd" };
        let _ = writeln!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{bottom}\" stroke=\"{stroke}\"/>"
        );
        let _ = writeln!(
            s,
            "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#444\">{label}</text>",
            bottom + 16.0
        );
    }
    // The third bar: the row's own other peer (liburcu, arc-swap), named in its metric.
    let colors = [("crossbeam-epoch", "#4477aa"), ("seize", "#ee7733"), ("other peer", "#228833")];
    let ratio_of = |r: &Row, j: usize| match j {
        0 => r.ratio(System::Crossbeam),
        1 => r.ratio(System::Seize),
        _ => r.ratio_other(),
    };
    for (i, r) in rows.iter().enumerate() {
        let y = top + row_h * i as f64;
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{} {}</text>",
            left - 8.0,
            y + row_h / 2.0 + 4.0,
            r.workload,
            xml(&r.metric)
        );
        for (j, (_, color)) in colors.iter().enumerate() {
            let Some(ratio) = ratio_of(r, j) else { continue };
            let a = adv(r, ratio);
            let (x0, x1) = (x_of(1.0), x_of(a));
            let (bx, bw) = if x1 >= x0 { (x0, x1 - x0) } else { (x1, x0 - x1) };
            let by = y + 4.0 + j as f64 * 13.0;
            let _ = writeln!(
                s,
                "<rect x=\"{bx:.1}\" y=\"{by:.1}\" width=\"{:.1}\" height=\"11\" fill=\"{color}\"/>",
                bw.max(1.0)
            );
            // Right of the bar's end; for bars pointing left, right of the 1x line (a bar
            // clamped at the left edge would otherwise run its label into the row's name).
            let tx = if x1 >= x0 { x1 + 4.0 } else { x0 + 4.0 };
            let anchor = "start";
            let _ = writeln!(
                s,
                "<text x=\"{tx:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"{anchor}\">{}</text>",
                by + 9.0,
                fmt_advantage(a)
            );
        }
        // The ticks stand beside the bar of the peer each target names (0: crossbeam-epoch's,
        // 1: seize's, 2: the other peer's).
        let tick = |t: Target| match t {
            Target::VsCrossbeamAtMost(x) | Target::VsCrossbeamAtLeast(x) => Some((0, adv(r, x))),
            Target::VsSeizeAtLeast(x) => Some((1, adv(r, x))),
            Target::VsOtherAtMost(x) | Target::VsOtherAtLeast(x) => Some((2, adv(r, x))),
            _ => None,
        };
        let ticks: Vec<(usize, f64)> = match r.target {
            Target::All(all) => all.iter().filter_map(|&t| tick(t)).collect(),
            t => tick(t).into_iter().collect(),
        };
        for (j, t) in ticks {
            let x = x_of(t);
            let y0 = y + 2.0 + j as f64 * 13.0;
            let _ = writeln!(
                s,
                "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"red\" \
                 stroke-width=\"2\"/>",
                y0,
                y0 + 15.0
            );
        }
    }
    let ly = bottom + 36.0;
    for (j, (peer, color)) in colors.iter().enumerate() {
        let lx = left + j as f64 * 170.0 - 170.0;
        let _ = writeln!(
            s,
            "<rect x=\"{lx}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{color}\"/>\
             <text x=\"{}\" y=\"{:.1}\">vs {}</text>",
            ly - 10.0,
            lx + 16.0,
            ly,
            peer
        );
    }
    s.push_str("</svg>\n");
    s
}
