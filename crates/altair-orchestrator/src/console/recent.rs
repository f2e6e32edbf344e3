//! Answers reused for one refresh: several browsers on one cluster page cost one read of
//! its history and DNS per `console.refresh_ms`, not one per browser.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Recent<T> {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, Arc<T>)>>,
}

impl<T> Recent<T> {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The answer for `key` read less than a refresh ago.
    pub fn get(&self, key: &str) -> Option<Arc<T>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    /// Keeps `value` for `key`; drops every answer older than a refresh (the map holds
    /// only pages someone is looking at).
    pub fn put(&self, key: &str, value: Arc<T>) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.retain(|_, (at, _)| at.elapsed() < self.ttl);
        entries.insert(key.to_owned(), (Instant::now(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_lives_one_refresh_and_old_ones_are_dropped() {
        let r = Recent::new(Duration::from_millis(50));
        r.put("c1", Arc::new(1));
        assert_eq!(r.get("c1").as_deref(), Some(&1));
        assert!(r.get("c2").is_none());
        std::thread::sleep(Duration::from_millis(60));
        assert!(r.get("c1").is_none(), "expired");
        r.put("c2", Arc::new(2));
        assert_eq!(r.entries.lock().expect("lock").len(), 1, "c1 dropped");
    }
}
