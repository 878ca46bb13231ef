//! The memory budget of `tycho api` (`--memory-budget`): one semaphore of bytes that
//! every request body takes from as it arrives, and every start takes from for its
//! compilation before it is parsed. A request that would go over is answered 503 at
//! once (with `Retry-After`), never queued: the process's memory stays bounded by the
//! budget plus what it holds when idle, whatever clients send.
//!
//! What a start costs is estimated from its body ([`start_cost`]): its size, and its
//! settings times its services (every container's environment gets all settings, the
//! one expansion of a start request). The constants are the measured peak of reading,
//! building and rendering the costliest shapes of start requests, with half again as
//! much for what a thread does not see (the copies on the way to the cluster); the
//! unit tests at the end hold the estimates to the measurement.

use serde_json::Value;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget counts KiB (a semaphore's permits are a u32 per acquire).
const UNIT: u64 = 1024;

/// Bytes one node of a JSON tree may take: serde_json's `Value` with its maps in order
/// is 80 bytes, in lists and maps that grow by doubling (twice that at worst).
pub const JSON_NODE_COST: u64 = 160;

/// Bytes one string of a JSON tree may take besides its text (the allocation's rounding).
pub const JSON_STRING_COST: u64 = 16;

/// Bytes a start may hold at its peak per byte of its body's JSON tree (the model,
/// template values, the rendered objects and their copies on the way to the cluster).
pub const START_COST_PER_TREE_BYTE: u64 = 9;

/// Bytes any start may hold, however small its body (templates, the rendered pod).
pub const START_BASE_COST: u64 = 2 << 20;

/// Bytes each setting may take in each container it is copied into (the settings go
/// into the environment of every container: model, template value, pod text and tree).
pub const SETTING_COPY_COST: u64 = 1536;

/// Bytes each byte of a setting may take in each container it is copied into.
pub const SETTING_BYTE_COPY_COST: u64 = 8;

/// An upper bound of the bytes the JSON tree of `text` takes once parsed, from one pass
/// over the text that counts its values (`,`, `:`, `[`, `{` outside strings) and its
/// strings. The text of a body over the limit never gets here, so this is at most
/// about 80 times 1 MiB (a list of one-digit numbers).
pub fn json_tree_cost(text: &[u8]) -> u64 {
    let (mut nodes, mut strings, mut string_bytes) = (1u64, 0u64, 0u64);
    let (mut in_string, mut escaped) = (false, false);
    for &b in text {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
                continue;
            }
            string_bytes += 1;
        } else {
            match b {
                b'"' => {
                    in_string = true;
                    strings += 1;
                }
                b',' | b':' | b'[' | b'{' => nodes += 1,
                _ => {}
            }
        }
    }
    nodes * JSON_NODE_COST + strings * JSON_STRING_COST + string_bytes
}

/// What a start may hold at its peak: a share per byte of its JSON tree (`tree`, from
/// [`json_tree_cost`]), plus its settings once per service of `request` (the one
/// expansion of a start request: every container's environment gets all settings).
pub fn start_cost(tree: u64, request: &Value) -> u64 {
    let services = request
        .pointer("/system/services")
        .and_then(Value::as_object)
        .map_or(1, |s| s.len().max(1)) as u64;
    let (count, bytes) = request
        .get("env")
        .and_then(Value::as_object)
        .map_or((0, 0), |env| {
            env.iter().fold((0u64, 0u64), |(n, b), (k, v)| {
                let len = match v {
                    Value::String(s) => s.len(),
                    other => other.to_string().len(),
                };
                (n + 1, b + (k.len() + len) as u64)
            })
        });
    let each = count
        .saturating_mul(SETTING_COPY_COST)
        .saturating_add(bytes.saturating_mul(SETTING_BYTE_COPY_COST));
    START_BASE_COST
        .saturating_add(tree.saturating_mul(START_COST_PER_TREE_BYTE))
        .saturating_add(each.saturating_mul(services))
}

/// The process's memory budget.
#[derive(Debug)]
pub struct MemoryBudget {
    permits: Arc<Semaphore>,
    total: u64,
}

impl MemoryBudget {
    /// A budget of `bytes` (rounded down to whole KiB).
    pub fn new(bytes: u64) -> Self {
        let units = (bytes / UNIT).min(Semaphore::MAX_PERMITS as u64) as usize;
        MemoryBudget {
            permits: Arc::new(Semaphore::new(units)),
            total: units as u64 * UNIT,
        }
    }

    /// Its size in bytes.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Bytes taken now.
    pub fn in_use(&self) -> u64 {
        self.total - self.permits.available_permits() as u64 * UNIT
    }

    /// An empty reservation, to grow as a request needs memory.
    pub fn reservation(&self) -> Reservation {
        Reservation {
            permits: self.permits.clone(),
            held: None,
        }
    }
}

/// Bytes of the budget held for one request; given back when dropped (when the request,
/// or the operation it started, ends).
#[derive(Debug)]
pub struct Reservation {
    permits: Arc<Semaphore>,
    held: Option<OwnedSemaphorePermit>,
}

impl Reservation {
    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.held.as_ref().map_or(0, |p| p.num_permits() as u64) * UNIT
    }

    /// Holds at least `bytes` (rounded up to whole KiB); false, holding what it held,
    /// when the budget has not that much free now.
    pub fn grow_to(&mut self, bytes: u64) -> bool {
        let want = bytes.div_ceil(UNIT);
        let have = self.held.as_ref().map_or(0, |p| p.num_permits() as u64);
        if want <= have {
            return true;
        }
        let Ok(more) = u32::try_from(want - have) else {
            return false;
        };
        match self.permits.clone().try_acquire_many_owned(more) {
            Ok(permit) => {
                match &mut self.held {
                    Some(held) => held.merge(permit),
                    None => self.held = Some(permit),
                }
                true
            }
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reservations_grow_within_the_budget_and_give_back_on_drop() {
        let budget = MemoryBudget::new(10 * 1024);
        assert_eq!(budget.total(), 10 * 1024);
        let mut a = budget.reservation();
        assert!(a.grow_to(1));
        assert_eq!(a.bytes(), 1024);
        assert!(a.grow_to(6 * 1024));
        assert!(a.grow_to(2 * 1024), "holding more already");
        assert_eq!(a.bytes(), 6 * 1024);
        let mut b = budget.reservation();
        assert!(!b.grow_to(5 * 1024), "only 4 KiB are free");
        assert_eq!(b.bytes(), 0);
        assert!(b.grow_to(4 * 1024));
        assert_eq!(budget.in_use(), 10 * 1024);
        assert!(!a.grow_to(7 * 1024));
        assert_eq!(a.bytes(), 6 * 1024, "a failed grow keeps what was held");
        drop(a);
        assert_eq!(budget.in_use(), 4 * 1024);
        assert!(b.grow_to(10 * 1024));
        assert!(!b.grow_to(u64::MAX));
        drop(b);
        assert_eq!(budget.in_use(), 0);
    }

    /// Start requests of about `target` bytes of JSON in the shapes that cost the most
    /// memory per byte (for the tests of the server's memory budget): many settings, a long
    /// environment, many services, one huge value, settings copied into many services,
    /// every service at the port cap.
    fn memory_shapes(target: usize) -> Vec<(&'static str, Vec<u8>)> {
        fn base() -> Value {
            json!({
                "name": "big",
                "env": {},
                "system": {"version": "3.0", "services": {"web": {"image": "nginx:1.25", "ports": ["80"]}}},
                "principal": "{\"username\": \"jdoe\", \"access_token\": \"tok\"}",
                "services": {"web": {"port": 80}},
                "serviceaccount": "default",
            })
        }
        let env_list = |n: usize| -> Value {
            (0..n)
                .map(|i| json!(format!("V{i}={}", "y".repeat(30))))
                .collect()
        };
        let mut out = Vec::new();
        let mut r = base();
        let mut n = 0;
        while r.to_string().len() < target {
            for _ in 0..200 {
                r["env"][format!("SETTING_{n}")] = json!(format!("value-{}", "x".repeat(20)));
                n += 1;
            }
        }
        out.push(("settings", r));
        let mut r = base();
        r["system"]["services"]["web"]["environment"] = env_list(target / 40);
        out.push(("environment", r));
        let mut r = base();
        for s in 0..63 {
            r["system"]["services"][format!("s{s}")] = json!({"image": "nginx:1.25", "ports": ["80"], "environment": env_list(target / 64 / 40)});
        }
        out.push(("services", r));
        let mut r = base();
        r["env"]["BIG"] = json!("x".repeat(target));
        out.push(("one value", r));
        let mut r = base();
        for s in 0..7 {
            r["system"]["services"][format!("s{s}")] = json!({"image": "nginx:1.25"});
        }
        for i in 0..10_000 {
            r["env"][format!("a{i}")] = json!("b");
        }
        out.push(("settings in 8 services", r));
        let mut r = base();
        for s in 0..63 {
            let ports: Vec<Value> = (0..64)
                .map(|p| json!(format!("{}:{}/tcp", 10000 + p, 80 + p)))
                .collect();
            r["system"]["services"][format!("s{s}")] =
                json!({"image": "nginx:1.25", "ports": ports});
        }
        out.push(("ports", r));
        out.into_iter()
            .map(|(k, v)| (k, serde_json::to_vec(&v).expect("JSON")))
            .collect()
    }

    fn mib(bytes: u64) -> f64 {
        bytes as f64 / 1048576.0
    }

    /// The estimate of a start is at least half again the measured peak of the costliest
    /// 1 MiB start requests: read from bytes, built, rendered into objects (what the
    /// server does before the objects go to the cluster), on one thread with the test
    /// allocator.
    #[test]
    fn start_cost_covers_the_measured_peak() {
        use crate::test_alloc::peak_of;
        let config = crate::config::default_config();
        for (shape, bytes) in memory_shapes(1 << 20) {
            let (objects, peak) = peak_of(|| {
                let value: Value = serde_json::from_slice(&bytes).unwrap();
                let request = crate::model::StartRequest::from_value(value).unwrap();
                let system =
                    crate::compile::parse_request(config, request, None, false, true).unwrap();
                let compiled = crate::compile::compile_system(config, system, None).unwrap();
                compiled.objects().len()
            });
            assert!(objects >= 1, "{shape}");
            let value: Value = serde_json::from_slice(&bytes).unwrap();
            let estimate = start_cost(json_tree_cost(&bytes), &value);
            assert!(
                peak as u64 * 3 / 2 <= estimate,
                "{shape}: a {} B body peaked at {:.1} MiB; the estimate, {:.1} MiB, is not half again as much",
                bytes.len(),
                mib(peak as u64),
                mib(estimate)
            );
        }
    }

    /// The JSON tree of any body is within [`json_tree_cost`]: start requests, and the
    /// shapes with the most nodes per byte.
    #[test]
    fn json_tree_cost_covers_the_measured_trees() {
        use crate::test_alloc::peak_of;
        let mut shapes = memory_shapes(1 << 20);
        let n = (1 << 20) / 4;
        shapes.push((
            "empty objects",
            format!("[{}{{}}]", "{},".repeat(n)).into_bytes(),
        ));
        shapes.push((
            "empty lists",
            format!("[{}[]]", "[],".repeat(n)).into_bytes(),
        ));
        shapes.push(("numbers", format!("[{}1]", "1,".repeat(2 * n)).into_bytes()));
        shapes.push((
            "short strings",
            format!("[{}\"\"]", "\"\",".repeat(n)).into_bytes(),
        ));
        shapes.push((
            "a map of numbers",
            format!(
                "{{{}\"a\":1}}",
                (0..n / 4)
                    .map(|i| format!("\"{i}\":1,"))
                    .collect::<String>()
            )
            .into_bytes(),
        ));
        let services: serde_json::Map<String, Value> = (0..15_000)
            .map(|i| (format!("s{i}"), json!({"image": "n", "ports": ["80"]})))
            .collect();
        shapes.push((
            "tiny services",
            serde_json::to_vec(&json!({"system": {"services": services}})).unwrap(),
        ));
        for (shape, bytes) in shapes {
            let (value, peak) = peak_of(|| serde_json::from_slice::<Value>(&bytes).unwrap());
            drop(value);
            let estimate = json_tree_cost(&bytes);
            assert!(
                peak as u64 <= estimate && estimate <= peak as u64 * 3,
                "{shape}: {} B parsed into {:.1} MiB; the estimate is {:.1} MiB",
                bytes.len(),
                mib(peak as u64),
                mib(estimate)
            );
        }
    }
}
