//! One run in a fresh process: its peak RSS is then the process's own (`VmHWM`), as the
//! issue's figures are, with nothing left over from another system's run.
//!
//! The parent re-executes this binary as `rcuscale --child <workload>:<variant>:<size>`
//! (e.g. `w5:kvfree-atomic:5000000`); the child (cli.rs hands the job to `w3::child` or
//! `w5::child`) runs that one variant, then prints exactly one line on stdout,
//! `rcuscale-child key=value key=value ...`, ending with `peak_rss_kib=<VmHWM>` read after
//! the run has drained. The parent parses that line.
//! The child's stderr is the parent's (panics and the runtime's reports stay visible).

use std::process::{Command, Stdio};

/// The hidden command-line option that makes rcuscale a child.
pub(crate) const FLAG: &str = "--child";

/// The first word of a child's result line.
const MARKER: &str = "rcuscale-child";

/// The `key=value` figures of one child run.
#[derive(Clone, Debug, Default)]
pub(crate) struct Report {
    fields: Vec<(String, f64)>,
}

impl Report {
    pub(crate) fn new() -> Self {
        Report::default()
    }

    /// Adds a figure; `key` must not contain `=` or whitespace.
    pub(crate) fn with(mut self, key: &str, value: f64) -> Self {
        debug_assert!(!key.contains(|c: char| c == '=' || c.is_whitespace()), "{key}");
        self.fields.push((key.to_string(), value));
        self
    }

    /// The figure `key`, NaN when the child did not report it.
    pub(crate) fn get(&self, key: &str) -> f64 {
        self.fields.iter().find(|(k, _)| k == key).map_or(f64::NAN, |&(_, v)| v)
    }

    /// The process's peak RSS in MiB.
    pub(crate) fn peak_rss_mib(&self) -> f64 {
        self.get("peak_rss_kib") / 1024.0
    }

    fn line(&self) -> String {
        let mut line = String::from(MARKER);
        for (k, v) in &self.fields {
            line.push_str(&format!(" {k}={v}"));
        }
        line
    }

    fn parse(line: &str) -> Result<Self, String> {
        let mut words = line.split_whitespace();
        if words.next() != Some(MARKER) {
            return Err(format!("not a result line: {line:?}"));
        }
        let mut report = Report::new();
        for w in words {
            let (k, v) = w.split_once('=').ok_or_else(|| format!("bad field {w:?}"))?;
            let v: f64 = v.parse().map_err(|e| format!("bad value in {w:?}: {e}"))?;
            report.fields.push((k.to_string(), v));
        }
        Ok(report)
    }
}

/// Parent side: runs `rcuscale --child <spec>` to completion and returns its figures.
pub(crate) fn run(spec: &str) -> Result<Report, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let out = Command::new(exe)
        .arg(FLAG)
        .arg(spec)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot start the child {spec}: {e}"))?;
    if !out.status.success() {
        return Err(format!("child {spec} failed: {}", out.status));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with(MARKER))
        .ok_or_else(|| format!("child {spec} printed no result line"))?;
    Report::parse(line)
}

/// The process's peak resident set size so far (`VmHWM` of /proc/self/status), in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    // "VmHWM:     2345 kB"
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A child's job, `<workload>:<variant>:<size>` (e.g. `w5:kvfree-atomic:5000000`): the
/// workload runs `variant` with `size` (its own unit: W3 seconds, W5 nodes).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Job<'a> {
    pub(crate) workload: &'a str,
    pub(crate) variant: &'a str,
    pub(crate) size: &'a str,
}

impl<'a> Job<'a> {
    pub(crate) fn parse(spec: &'a str) -> Result<Self, String> {
        let mut parts = spec.splitn(3, ':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(workload), Some(variant), Some(size)) => Ok(Job { workload, variant, size }),
            _ => Err(format!("expected <workload>:<variant>:<size>, got {spec:?}")),
        }
    }

    /// The size as a number.
    pub(crate) fn size<T: std::str::FromStr>(&self) -> Result<T, String>
    where
        T::Err: std::fmt::Display,
    {
        self.size.parse().map_err(|e| format!("size {:?} of {}: {e}", self.size, self.workload))
    }
}

/// Child side: prints the result line of a job that ran (with the peak RSS, read now, after
/// the run and its drain) or reports its error; the process's exit code.
pub(crate) fn respond(spec: &str, result: Result<Report, String>) -> i32 {
    match result {
        Ok(report) => {
            let hwm = peak_rss_kib().map_or(f64::NAN, |k| k as f64);
            println!("{}", report.with("peak_rss_kib", hwm).line());
            0
        }
        Err(e) => {
            eprintln!("rcuscale {FLAG} {spec}: {e}");
            2
        }
    }
}
