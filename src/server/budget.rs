//! The memory budget of `tycho api` (`--memory-budget`): one semaphore of bytes that
//! every request body takes from as it arrives, and every start takes from for its
//! compilation before it is parsed. A request that would go over is answered 503 at
//! once (with `Retry-After`), never queued: the process's memory stays bounded by the
//! budget plus what it holds when idle, whatever clients send.
//!
//! What a start costs is estimated from its body's size ([`start_cost`]): the measured
//! peak of reading, building and rendering the worst shapes of start requests, per body
//! byte, with a margin (the unit test at the end holds the estimate to the measurement).

use serde_json::Value;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget counts KiB (a semaphore's permits are a u32 per acquire).
const UNIT: u64 = 1024;

/// Bytes a start may hold at its peak per byte of its body (JSON tree, model, template
/// values, the rendered objects and their copies on the way to the cluster).
pub const START_COST_PER_BYTE: u64 = 48;

/// Bytes any start may hold, however small its body (templates, the rendered pod).
pub const START_BASE_COST: u64 = 2 << 20;

/// Bytes each setting may take in each container it is copied into (the settings go
/// into the environment of every container: model, template value, pod text and tree).
pub const SETTING_COPY_COST: u64 = 1024;

/// Bytes each byte of a setting may take in each container it is copied into.
pub const SETTING_BYTE_COPY_COST: u64 = 8;

/// What a start of a `body_len`-byte body that parsed to `request` may hold at its
/// peak: the body's own share, plus its settings once per service (the one expansion
/// of a start request: every container's environment gets all settings).
pub fn start_cost(body_len: usize, request: &Value) -> u64 {
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
        .saturating_add((body_len as u64).saturating_mul(START_COST_PER_BYTE))
        .saturating_add(each.saturating_mul(services))
}

/// Bytes a body of another request may hold per byte once parsed (its JSON tree).
pub const PARSE_COST_PER_BYTE: u64 = 8;

/// What the JSON tree of another request's `body_len`-byte body may hold.
pub fn parse_cost(body_len: usize) -> u64 {
    (body_len as u64).saturating_mul(PARSE_COST_PER_BYTE)
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

    /// The estimate of a start holds the measured peak of the worst 1 MiB start
    /// requests: read from bytes, built, rendered into objects (what the server does
    /// before the objects go to the cluster), on one thread with the test allocator.
    #[test]
    fn start_cost_covers_the_measured_peak() {
        use crate::test_alloc::peak_of;
        let config = crate::config::default_config();
        for (shape, bytes) in crate::compile::memory_shapes(1 << 20) {
            let (objects, peak) = peak_of(|| {
                let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                let request = crate::model::StartRequest::from_value(value).unwrap();
                let system =
                    crate::compile::parse_request(config, request, None, false, true).unwrap();
                let compiled = crate::compile::compile_system(config, system, None).unwrap();
                compiled.objects().len()
            });
            assert!(objects >= 1, "{shape}");
            let value: Value = serde_json::from_slice(&bytes).unwrap();
            let estimate = start_cost(bytes.len(), &value);
            eprintln!(
                "{shape}: body {} B, peak {:.1} MiB, estimate {:.1} MiB",
                bytes.len(),
                peak as f64 / 1048576.0,
                estimate as f64 / 1048576.0
            );
            assert!(
                peak as u64 * 2 <= estimate || std::env::var("PRINT_ONLY").is_ok(),
                "{shape}: a {} B body peaked at {peak} B, more than half the estimate {estimate} B",
                bytes.len()
            );
        }
    }
}
