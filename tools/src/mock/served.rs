//! What the mock served, per gateway request id: prompt tokens and the
//! completion tokens of every frame actually handed to the connection (a
//! stream cut short counts only what went out). Tests compare the
//! gateway's usage ledger against it.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ServedUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// A mutex is fine here: this is the test double, not the gateway.
#[derive(Default)]
pub struct Served {
    log: Mutex<BTreeMap<String, ServedUsage>>,
}

impl Served {
    pub fn all(&self) -> BTreeMap<String, ServedUsage> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn add(&self, request_id: &str, prompt: u64, completion: u64) {
        if request_id.is_empty() {
            return;
        }
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let e = log.entry(request_id.to_string()).or_default();
        e.prompt_tokens = prompt;
        e.completion_tokens += completion;
    }
}

/// One response's accounting: tokens per event, in event order.
pub struct Account<S: AsRef<Served>> {
    pub state: Arc<S>,
    pub request_id: String,
    pub prompt: u64,
    pub per_event: Vec<u64>,
}

impl<S: AsRef<Served>> Account<S> {
    /// Event `index` went out.
    pub fn add(&self, index: usize) {
        let tokens = self.per_event.get(index).copied().unwrap_or(0);
        self.state
            .as_ref()
            .as_ref()
            .add(&self.request_id, self.prompt, tokens);
    }

    pub fn add_all(&self) {
        for i in 0..self.per_event.len().max(1) {
            self.add(i);
        }
    }
}
