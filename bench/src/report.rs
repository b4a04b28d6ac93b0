//! The rows of the printed table, and the arithmetic they share.

use std::time::Duration;

pub struct Row {
    pub figure: String,
    pub target: String,
    pub measured: String,
    pub met: bool,
}

impl Row {
    /// A row with a target.
    pub fn new(
        figure: impl Into<String>,
        target: impl Into<String>,
        measured: String,
        met: bool,
    ) -> Row {
        Row {
            figure: figure.into(),
            target: target.into(),
            measured,
            met,
        }
    }

    /// A row without a target (a breakdown or a comparison figure).
    pub fn info(figure: impl Into<String>, measured: String) -> Row {
        Row::new(figure, "—", measured, true)
    }

    /// The row as a Markdown table line.
    pub fn line(&self) -> String {
        format!(
            "| {} | {} | {} | {} |",
            self.figure,
            self.target,
            self.measured,
            match (self.target.as_str(), self.met) {
                // A breakdown, not a target.
                ("—", _) => "—",
                (_, true) => "yes",
                (_, false) => "**no**",
            }
        )
    }
}

/// Collects rows, echoing each to stderr as it is measured (a long run shows its progress, and
/// a failure late in the run keeps what came before).
#[derive(Default)]
pub struct Rows(pub Vec<Row>);

impl Rows {
    pub fn push(&mut self, row: Row) {
        eprintln!("{}", row.line());
        self.0.push(row);
    }
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// "p50 X ms, p99 Y ms" of sorted samples.
pub fn p50_p99(sorted: &[Duration]) -> String {
    format!(
        "p50 {}, p99 {}",
        ms(percentile(sorted, 0.5)),
        ms(percentile(sorted, 0.99))
    )
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// `1000` → `1,000`.
pub fn count(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn settle() {
    std::thread::sleep(Duration::from_millis(1500));
}
