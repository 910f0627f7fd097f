//! Bookkeeping for registry tokens: one slot per registry, repository and
//! operation, holding how many tokens were fetched for it. `oci-client`
//! keeps the tokens themselves; the slots make concurrent downloads of one
//! repository wait for a single token request, and let a request refused
//! with 401 tell whether someone already fetched a newer token since its
//! own was handed out (then it just tries again with that one). Beside
//! them, per registry, what its `GET /v2/` (the ping) answered: asked once
//! per run, so a registry that wants no token is pinged once, not once per
//! repository and operation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A slot: the generation of the token held (0: none asked for yet).
pub type Slot = Arc<tokio::sync::Mutex<u64>>;

/// What a registry's ping said: `None` before the first ping, then
/// whether it hands out bearer tokens.
pub type Ping = Arc<tokio::sync::Mutex<Option<bool>>>;

#[derive(Default)]
pub struct Tokens {
    slots: Mutex<HashMap<(String, String, bool), Slot>>,
    pings: Mutex<HashMap<String, Ping>>,
    used: std::sync::atomic::AtomicBool,
}

impl Tokens {
    /// The slot of (registry, repository, push-or-pull).
    pub fn slot(&self, registry: &str, repository: &str, push: bool) -> Slot {
        let mut slots = self.slots.lock().expect("token slots poisoned");
        slots
            .entry((registry.to_string(), repository.to_string(), push))
            .or_default()
            .clone()
    }

    /// True the first time it is asked, false after.
    pub fn first_use(&self) -> bool {
        !self.used.swap(true, std::sync::atomic::Ordering::SeqCst)
    }

    /// What `registry`'s ping said (one per registry).
    pub fn ping(&self, registry: &str) -> Ping {
        let mut pings = self.pings.lock().expect("ping slots poisoned");
        pings.entry(registry.to_string()).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_slot_per_registry_repository_and_operation() {
        let tokens = Tokens::default();
        let a = tokens.slot("r:5000", "pgoci/postgresql", false);
        let b = tokens.slot("r:5000", "pgoci/postgresql", false);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(
            &a,
            &tokens.slot("r:5000", "pgoci/postgresql", true)
        ));
        assert!(!Arc::ptr_eq(
            &a,
            &tokens.slot("r:5000", "pgoci/pg_cron", false)
        ));
        assert!(!Arc::ptr_eq(
            &a,
            &tokens.slot("r:5001", "pgoci/postgresql", false)
        ));
    }

    #[test]
    fn one_ping_per_registry() {
        let tokens = Tokens::default();
        assert!(Arc::ptr_eq(&tokens.ping("r:5000"), &tokens.ping("r:5000")));
        assert!(!Arc::ptr_eq(&tokens.ping("r:5000"), &tokens.ping("r:5001")));
    }
}
