//! Starts in flight in this process, by GUID, so a delete of a GUID wins over a start of
//! it that runs at the same time.
//!
//! A start registers its GUID ([`Start::register`]) and checks [`Start::cancelled`]
//! before and after each stage; a delete holds a [`Deleting`] guard while it runs, which
//! cancels the starts of that GUID already registered and every start registered while
//! it lasts. A cancelled start removes what it created and fails. (Across processes the
//! start notices the delete from its Deployment having vanished: see `start`.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

#[derive(Default)]
struct Entry {
    deletes: usize,
    starts: Vec<Arc<AtomicBool>>,
}

fn registry() -> &'static Mutex<HashMap<String, Entry>> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Entry>>> = OnceLock::new();
    REGISTRY.get_or_init(Mutex::default)
}

fn with_entry<T>(guid: &str, f: impl FnOnce(&mut Entry) -> T) -> T {
    let mut map = registry().lock().unwrap_or_else(|p| p.into_inner());
    let entry = map.entry(guid.to_string()).or_default();
    let out = f(entry);
    if entry.deletes == 0 && entry.starts.is_empty() {
        map.remove(guid);
    }
    out
}

/// A start of a GUID in progress (unregistered on drop).
pub(crate) struct Start {
    guid: String,
    flag: Arc<AtomicBool>,
}

impl Start {
    /// Registers a start of `guid`; already cancelled when a delete of it is running.
    pub(crate) fn register(guid: &str) -> Start {
        let flag = Arc::new(AtomicBool::new(false));
        with_entry(guid, |e| {
            if e.deletes > 0 {
                flag.store(true, Ordering::SeqCst);
            }
            e.starts.push(flag.clone());
        });
        Start {
            guid: guid.to_string(),
            flag,
        }
    }

    /// Whether a delete of the GUID ran since this start was registered.
    pub(crate) fn cancelled(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

impl Drop for Start {
    fn drop(&mut self) {
        let flag = self.flag.clone();
        with_entry(&self.guid, |e| e.starts.retain(|f| !Arc::ptr_eq(f, &flag)));
    }
}

/// A delete of a GUID in progress: cancels the starts of the GUID (unregistered on drop).
pub(crate) struct Deleting {
    guid: String,
}

impl Deleting {
    /// Marks `guid` as being deleted and cancels its starts in flight.
    pub(crate) fn begin(guid: &str) -> Deleting {
        with_entry(guid, |e| {
            e.deletes += 1;
            for s in &e.starts {
                s.store(true, Ordering::SeqCst);
            }
        });
        Deleting {
            guid: guid.to_string(),
        }
    }
}

impl Drop for Deleting {
    fn drop(&mut self) {
        with_entry(&self.guid, |e| e.deletes = e.deletes.saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delete_cancels_starts_in_flight_and_during_it_only() {
        let before = Start::register("inflight-test-g1");
        let other = Start::register("inflight-test-g2");
        assert!(!before.cancelled());
        let deleting = Deleting::begin("inflight-test-g1");
        assert!(before.cancelled());
        assert!(!other.cancelled());
        let during = Start::register("inflight-test-g1");
        assert!(during.cancelled());
        drop(deleting);
        let after = Start::register("inflight-test-g1");
        assert!(!after.cancelled());
        drop((before, during, after, other));
        assert!(registry().lock().unwrap().get("inflight-test-g1").is_none());
    }
}
