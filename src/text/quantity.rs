//! Kubernetes and Docker quantities of CPU and memory (`0.5`, `"500m"`, `"512Mi"`, `"4G"`,
//! `"1g"`) as the numbers the Engine takes, so one setting means the same on both backplanes.

use crate::error::{Error, Result};
use serde_json::Value;

/// CPUs (`0.5`, `"2"`, `"500m"`) in billionths of a CPU.
pub fn cpus_to_nano(value: &Value) -> Result<i64> {
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        other => return Err(Error::input(format!("{other} is not a CPU amount"))),
    };
    let nano = if let Some(milli) = text.strip_suffix('m') {
        milli.parse::<f64>().map(|m| m * 1e6)
    } else {
        text.parse::<f64>().map(|c| c * 1e9)
    }
    .map_err(|_| {
        Error::input(format!(
            "{text:?} is not a CPU amount (e.g. 0.5, \"2\", \"500m\")"
        ))
    })?;
    if !(1e6..=1e9 * 4096.0).contains(&nano) {
        return Err(Error::input(format!(
            "{text:?} is not a CPU amount between 0.001 and 4096"
        )));
    }
    Ok(nano.round() as i64)
}

/// Memory (`"512Mi"`, `"4G"`, `"50MB"`, `1073741824`) in bytes: `Ki/Mi/Gi/Ti` are
/// powers of 1024, Kubernetes' `K/M/G/T` powers of 1000, Docker's `b/k/m/g` (and
/// `kb/mb/gb`, any case) powers of 1024.
pub fn memory_to_bytes(value: &Value) -> Result<i64> {
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        other => return Err(Error::input(format!("{other} is not a memory amount"))),
    };
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let bad = || {
        Error::input(format!(
            "{text:?} is not a memory amount (e.g. \"512Mi\", \"4G\", \"1g\")"
        ))
    };
    let number: f64 = number.parse().map_err(|_| bad())?;
    let factor: f64 = match unit {
        "" | "b" | "B" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "K" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        u => match u.to_ascii_lowercase().as_str() {
            "k" | "kb" => 1024.0,
            "m" | "mb" => 1024f64.powi(2),
            "g" | "gb" => 1024f64.powi(3),
            "t" | "tb" => 1024f64.powi(4),
            _ => return Err(bad()),
        },
    };
    let bytes = number * factor;
    // The Engine refuses less than 6 MiB.
    if !(6.0 * 1024.0 * 1024.0..=9.0e18).contains(&bytes) {
        return Err(Error::input(format!(
            "{text:?} is not a memory amount between 6Mi and 8Ei"
        )));
    }
    Ok(bytes.round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn amounts() {
        assert_eq!(cpus_to_nano(&json!(0.5)).ok(), Some(500_000_000));
        assert_eq!(cpus_to_nano(&json!("250m")).ok(), Some(250_000_000));
        assert_eq!(cpus_to_nano(&json!("2")).ok(), Some(2_000_000_000));
        assert!(cpus_to_nano(&json!("lots")).is_err());
        assert!(cpus_to_nano(&json!(0)).is_err());
        assert_eq!(memory_to_bytes(&json!("1Gi")).ok(), Some(1 << 30));
        assert_eq!(memory_to_bytes(&json!("64M")).ok(), Some(64_000_000));
        assert_eq!(memory_to_bytes(&json!("50MB")).ok(), Some(50 << 20));
        assert_eq!(memory_to_bytes(&json!("1g")).ok(), Some(1 << 30));
        assert!(
            memory_to_bytes(&json!("1k")).is_err(),
            "below the Engine's 6 MiB"
        );
        assert!(memory_to_bytes(&json!("12 parsecs")).is_err());
    }
}
