//! How the command-line client prints for people: aligned tables, fields,
//! durations and sizes.

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A JSON value as a cell: `-` for nothing, strings without quotes.
pub fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Widest a cell is shown; longer text is cut.
const MAX_CELL: usize = 60;

pub fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count().min(MAX_CELL));
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| {
                let c: String = c.chars().take(MAX_CELL).collect();
                format!("{c:<w$}")
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    println!(
        "{}",
        line(headers.iter().map(|h| (*h).to_owned()).collect())
    );
    for row in rows {
        println!("{}", line(row.clone()));
    }
}

/// Every field of an object on a line of its own; lists and objects as
/// JSON (a list's length alone would hide what is in it).
pub fn print_fields(object: &Value) {
    if let Some(map) = object.as_object() {
        for (key, value) in map {
            let shown = match value {
                Value::Array(_) | Value::Object(_) => value.to_string(),
                other => text(other),
            };
            println!("{key:<20} {shown}");
        }
    }
}

/// `1:02:03`, `2:05`; `-` when unknown.
pub fn duration(seconds: Option<f64>) -> String {
    let Some(seconds) = seconds.filter(|s| s.is_finite()) else {
        return "-".to_owned();
    };
    let s = seconds.max(0.0).round() as u64;
    let (h, m, r) = (s / 3600, s % 3600 / 60, s % 60);
    if h > 0 {
        format!("{h}:{m:02}:{r:02}")
    } else {
        format!("{m}:{r:02}")
    }
}

/// Seconds from one RFC 3339 time to another (or to now).
pub fn seconds_between(from: &Value, to: &Value) -> Option<f64> {
    let parse = |v: &Value| {
        v.as_str()
            .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok())
    };
    let from = parse(from)?;
    let to = parse(to).unwrap_or_else(OffsetDateTime::now_utc);
    Some((to - from).as_seconds_f64())
}

/// `1.2 MB`; `-` when unknown.
pub fn size(bytes: Option<u64>) -> String {
    let Some(bytes) = bytes else {
        return "-".to_owned();
    };
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < units.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else if value < 10.0 {
        format!("{value:.1} {}", units[unit])
    } else {
        format!("{value:.0} {}", units[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_read_as_people_write_them() {
        assert_eq!(duration(Some(3723.4)), "1:02:03");
        assert_eq!(duration(Some(65.0)), "1:05");
        assert_eq!(duration(None), "-");
        assert_eq!(size(Some(999)), "999 B");
        assert_eq!(size(Some(241_000)), "241 kB");
        assert_eq!(size(Some(1_234_567)), "1.2 MB");
        assert_eq!(
            seconds_between(
                &Value::from("2026-11-30T10:00:00Z"),
                &Value::from("2026-11-30T10:00:02.5Z")
            ),
            Some(2.5)
        );
    }
}
