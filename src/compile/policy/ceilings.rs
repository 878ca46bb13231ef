//! Resource ceilings per system (`tycho.policy.max`): the sum over a system's
//! containers of what each may use (its limit, else its request) of cpus, memory, GPUs
//! and ephemeral storage, checked on the rendered pod spec before anything is created.

use crate::error::{Error, ErrorKind, Result};
use serde_json::Value;

/// A ceiling: the setting's key, the pod's resource name(s), and how to read amounts.
struct Resource {
    setting: &'static str,
    matches: fn(&str) -> bool,
}

const RESOURCES: &[Resource] = &[
    Resource {
        setting: "cpus",
        matches: |k| k == "cpu",
    },
    Resource {
        setting: "memory",
        matches: |k| k == "memory",
    },
    Resource {
        setting: "ephemeralStorage",
        matches: |k| k == "ephemeral-storage",
    },
    // Any extended resource that names a GPU (nvidia.com/gpu, amd.com/gpu) or a MIG slice.
    Resource {
        setting: "gpus",
        matches: |k| k.contains('/') && (k.contains("gpu") || k.contains("/mig-")),
    },
];

/// The value of a Kubernetes quantity (`500m` → 0.5, `1Gi` → 1073741824), or None.
pub fn quantity(text: &str) -> Option<f64> {
    let text = text.trim();
    if !crate::text::names::is_quantity(text) {
        return None;
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exp if exp.starts_with(['e', 'E']) => 10f64.powi(exp[1..].parse().ok()?),
        _ => return None,
    };
    Some(number * factor)
}

fn amount(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => quantity(s),
        _ => None,
    }
}

/// Refuses a pod spec whose containers together ask for more than `max` (the
/// `tycho.policy.max` mapping: `cpus`, `memory`, `gpus`, `ephemeralStorage`, each a
/// quantity). Init containers run before the others, so only the largest of them counts
/// against a ceiling when it is larger than the sum of the app's containers.
pub fn check(max: &Value, pod: &Value) -> Result<()> {
    let Some(max) = max.as_object().filter(|m| !m.is_empty()) else {
        return Ok(());
    };
    for resource in RESOURCES {
        let Some(ceiling_value) = max.get(resource.setting).filter(|v| !v.is_null()) else {
            continue;
        };
        let ceiling = amount(ceiling_value).ok_or_else(|| {
            Error::config(format!(
                "tycho.policy.max.{} must be a quantity, got {}",
                resource.setting,
                crate::limits::echo(&ceiling_value.to_string())
            ))
        })?;
        let used_by = |list: &str| -> Vec<(String, f64)> {
            pod.get(list)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|c| {
                    let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
                    let of = |kind: &str| -> f64 {
                        c.get("resources")
                            .and_then(|r| r.get(kind))
                            .and_then(Value::as_object)
                            .map(|m| {
                                m.iter()
                                    .filter(|(k, _)| (resource.matches)(k))
                                    .filter_map(|(_, v)| amount(v))
                                    .sum()
                            })
                            .unwrap_or(0.0)
                    };
                    let limit = of("limits");
                    (
                        name.to_string(),
                        if limit > 0.0 { limit } else { of("requests") },
                    )
                })
                .collect()
        };
        let app = used_by("containers");
        let total: f64 = app.iter().map(|(_, v)| v).sum();
        let init_peak = used_by("initContainers")
            .into_iter()
            .map(|(_, v)| v)
            .fold(0.0, f64::max);
        let used = total.max(init_peak);
        // A small tolerance: quantities are decimal and sums of floats are not exact.
        if used > ceiling * (1.0 + 1e-9) {
            let parts: Vec<String> = app
                .iter()
                .filter(|(_, v)| *v > 0.0)
                .map(|(n, v)| format!("{} {}", crate::limits::echo(n), show(resource.setting, *v)))
                .collect();
            return Err(Error::new(
                ErrorKind::Policy,
                format!(
                    "the system asks for {} {} ({}), above the ceiling tycho.policy.max.{} = {}",
                    show(resource.setting, used),
                    resource.setting,
                    parts.join(", "),
                    resource.setting,
                    crate::limits::echo(&crate::text::pyfmt::py_str(ceiling_value))
                ),
            )
            .at(format!("resources.limits.{}", resource.setting)));
        }
    }
    Ok(())
}

/// An amount as people write it: memory and storage in bytes with a binary unit.
fn show(setting: &str, v: f64) -> String {
    if matches!(setting, "memory" | "ephemeralStorage") {
        for (unit, size) in [
            ("Ti", 1024f64.powi(4)),
            ("Gi", 1024f64.powi(3)),
            ("Mi", 1024f64.powi(2)),
        ] {
            if v >= size {
                return format!("{}{unit}", trim(v / size));
            }
        }
    }
    trim(v)
}

fn trim(v: f64) -> String {
    let text = format!("{v:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quantities() {
        assert_eq!(quantity("500m"), Some(0.5));
        assert_eq!(quantity("2"), Some(2.0));
        assert_eq!(quantity("1Gi"), Some(1073741824.0));
        assert_eq!(quantity("1G"), Some(1e9));
        assert_eq!(quantity("1e3"), Some(1000.0));
        assert_eq!(quantity("lots"), None);
    }

    fn pod() -> Value {
        json!({
            "initContainers": [{"name": "init", "resources": {"limits": {"cpu": "250m", "memory": "250Mi"}}}],
            "containers": [
                {"name": "a", "resources": {"limits": {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": 1}}},
                {"name": "b", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}},
            ],
        })
    }

    #[test]
    fn under_the_ceilings_passes() {
        let max = json!({"cpus": "2.5", "memory": "5Gi", "gpus": 1, "ephemeralStorage": "1Gi"});
        assert!(check(&max, &pod()).is_ok());
        assert!(check(&json!({}), &pod()).is_ok());
        assert!(check(&Value::Null, &pod()).is_ok());
    }

    #[test]
    fn above_a_ceiling_names_the_value_and_the_ceiling() {
        let e = check(&json!({"cpus": 2}), &pod()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Policy);
        assert_eq!(
            e.message,
            "the system asks for 2.5 cpus (a 2, b 0.5), above the ceiling tycho.policy.max.cpus = 2"
        );
        let e = check(&json!({"memory": "4Gi"}), &pod()).unwrap_err();
        assert!(
            e.message.starts_with("the system asks for 5Gi memory"),
            "{}",
            e.message
        );
        let e = check(&json!({"gpus": 0}), &pod()).unwrap_err();
        assert!(e.message.contains("1 gpus"), "{}", e.message);
        let e = check(&json!({"cpus": "many"}), &pod()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Config);
    }
}
