//! What a run prints: one JSON line per figure as it is measured, and a
//! Markdown table at the end. A figure may stand beside its floor (the
//! same work done by the harness itself with nothing of recorderd in the
//! way), with the ratio between them.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Value, json};

/// How a figure compares with its target.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    AtMost(f64),
    Below(f64),
    AtLeast(f64),
    Exactly(f64),
}

impl Target {
    fn met(self, value: f64) -> bool {
        match self {
            Self::AtMost(t) => value <= t,
            Self::Below(t) => value < t,
            Self::AtLeast(t) => value >= t,
            Self::Exactly(t) => value == t,
        }
    }

    fn describe(self) -> String {
        match self {
            Self::AtMost(t) => format!("<= {}", fmt_num(t)),
            Self::Below(t) => format!("< {}", fmt_num(t)),
            Self::AtLeast(t) => format!(">= {}", fmt_num(t)),
            Self::Exactly(t) => format!("= {}", fmt_num(t)),
        }
    }
}

/// Which way a figure is better, which fixes how its ratio to the floor
/// reads: always "how many times worse than the floor" (1 is the floor).
#[derive(Debug, Clone, Copy)]
pub enum Better {
    /// A latency: ratio = figure / floor.
    Lower,
    /// A throughput: ratio = floor / figure.
    Higher,
}

/// One measured figure.
pub struct Figure {
    workload: &'static str,
    name: String,
    value: f64,
    unit: &'static str,
    target: Option<Target>,
    floor: Option<(f64, Better)>,
    /// The ratio to the floor may not exceed this for the target to be met.
    max_ratio: Option<f64>,
}

impl Figure {
    pub fn new(
        workload: &'static str,
        name: impl Into<String>,
        value: f64,
        unit: &'static str,
    ) -> Self {
        Self {
            workload,
            name: name.into(),
            value,
            unit,
            target: None,
            floor: None,
            max_ratio: None,
        }
    }

    pub fn target(mut self, target: Target) -> Self {
        self.target = Some(target);
        self
    }

    /// The floor of this figure, in the same unit.
    pub fn floor(mut self, floor: f64, better: Better) -> Self {
        self.floor = Some((floor, better));
        self
    }

    /// Part of the target: at most `ratio` times the floor.
    pub fn max_ratio(mut self, ratio: f64) -> Self {
        self.max_ratio = Some(ratio);
        self
    }

    fn ratio(&self) -> Option<f64> {
        let (floor, better) = self.floor?;
        let ratio = match better {
            Better::Lower => self.value / floor,
            Better::Higher => floor / self.value,
        };
        ratio.is_finite().then_some(ratio)
    }

    fn met(&self) -> Option<bool> {
        if self.target.is_none() && self.max_ratio.is_none() {
            return None;
        }
        let value_met = self.target.is_none_or(|t| t.met(self.value));
        let ratio_met = match self.max_ratio {
            Some(max) => self.ratio().is_some_and(|r| r <= max),
            None => true,
        };
        Some(value_met && ratio_met)
    }

    fn describe_target(&self) -> Option<String> {
        let value = self
            .target
            .map(|t| format!("{} {}", t.describe(), self.unit));
        let ratio = self.max_ratio.map(|r| format!("<= {}× floor", fmt_num(r)));
        match (value, ratio) {
            (Some(v), Some(r)) => Some(format!("{v}, {r}")),
            (v, r) => v.or(r),
        }
    }

    fn json(&self) -> Value {
        let number = |v: f64| if v.is_finite() { json!(v) } else { Value::Null };
        json!({
            "workload": self.workload,
            "figure": self.name,
            "value": number(self.value),
            "unit": self.unit,
            "floor": self.floor.map(|(f, _)| number(f)),
            "ratio": self.ratio(),
            "target": self.describe_target(),
            "met": self.met(),
        })
    }

    fn row(&self) -> [String; 7] {
        [
            self.workload.to_owned(),
            self.name.clone(),
            format!("{} {}", fmt_num(self.value), self.unit),
            self.floor
                .map(|(f, _)| format!("{} {}", fmt_num(f), self.unit))
                .unwrap_or_default(),
            self.ratio().map(|r| format!("{r:.2}")).unwrap_or_default(),
            self.describe_target().unwrap_or_default(),
            match self.met() {
                Some(true) => "yes".to_owned(),
                Some(false) => "**NO**".to_owned(),
                None => String::new(),
            },
        ]
    }
}

/// Everything the figures are written to.
#[derive(Default)]
pub struct Report {
    figures: Vec<Figure>,
}

impl Report {
    /// A figure given as context (no target, no floor).
    pub fn add(
        &mut self,
        workload: &'static str,
        name: impl Into<String>,
        value: f64,
        unit: &'static str,
        target: Option<Target>,
    ) {
        let mut figure = Figure::new(workload, name, value, unit);
        figure.target = target;
        self.push(figure);
    }

    /// Prints the figure's JSON line and keeps it for the table.
    pub fn push(&mut self, figure: Figure) {
        println!("{}", figure.json());
        self.figures.push(figure);
    }

    pub fn table(&self) -> String {
        let header = [
            "workload", "figure", "value", "floor", "ratio", "target", "met",
        ];
        let mut out = String::new();
        let _ = writeln!(out, "| {} |", header.join(" | "));
        let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
        for figure in &self.figures {
            let _ = writeln!(out, "| {} |", figure.row().join(" | "));
        }
        out
    }
}

pub fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    values
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// p50 and p99 of a set of latencies (ms), kept sorted.
#[derive(Debug, Clone, Default)]
pub struct Latencies(Vec<f64>);

impl Latencies {
    pub fn new(values: Vec<f64>) -> Self {
        Self(sorted(values))
    }

    pub fn p50(&self) -> f64 {
        percentile(&self.0, 0.50)
    }

    pub fn p99(&self) -> f64 {
        percentile(&self.0, 0.99)
    }

    pub fn max(&self) -> f64 {
        self.0.last().copied().unwrap_or(f64::NAN)
    }
}
