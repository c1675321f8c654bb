use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Mutex;

/// What the mock received, for tests to assert on (which key, which body).
#[derive(Debug, Clone, Serialize)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// Lower-cased header names; repeated headers joined with ", ".
    pub headers: std::collections::BTreeMap<String, String>,
    pub body: serde_json::Value,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// A bounded log of recent requests. A mutex is fine here: this is the
/// test double, not the gateway.
pub struct Recorder {
    capacity: usize,
    log: Mutex<VecDeque<RecordedRequest>>,
}

impl Recorder {
    pub fn new(capacity: usize) -> Self {
        Recorder {
            capacity,
            log: Mutex::new(VecDeque::new()),
        }
    }

    pub fn push(&self, r: RecordedRequest) {
        if self.capacity == 0 {
            return;
        }
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        if log.len() == self.capacity {
            log.pop_front();
        }
        log.push_back(r);
    }

    pub fn all(&self) -> Vec<RecordedRequest> {
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    pub fn clear(&self) {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}
