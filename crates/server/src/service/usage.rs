//! Audio used per API key today (UTC), for daily quotas. Counted on this
//! node: a cluster's nodes each hold their own count, so a tenant's quota
//! applies per node (the Prometheus counters sum across nodes).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DAY: u64 = 86_400;

/// Seconds of audio per key name, for the current UTC day.
#[derive(Default)]
pub struct Usage {
    today: Mutex<HashMap<String, (u64, f64)>>,
}

fn day_now() -> (u64, Duration) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    (now / DAY, Duration::from_secs(DAY - now % DAY))
}

impl Usage {
    /// Counts `seconds` of audio for `key`.
    pub fn add(&self, key: &str, seconds: f64) {
        let (day, _) = day_now();
        let mut all = self.today.lock().unwrap_or_else(|p| p.into_inner());
        let entry = all.entry(key.to_string()).or_insert((day, 0.0));
        if entry.0 != day {
            *entry = (day, 0.0);
        }
        entry.1 += seconds.max(0.0);
    }

    /// Seconds `key` used today, and how long until the day (and the count) resets.
    pub fn today(&self, key: &str) -> (f64, Duration) {
        let (day, left) = day_now();
        let all = self.today.lock().unwrap_or_else(|p| p.into_inner());
        let used = all.get(key).filter(|(d, _)| *d == day).map_or(0.0, |e| e.1);
        (used, left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_adds_up_per_key() {
        let usage = Usage::default();
        usage.add("a", 2.5);
        usage.add("a", 1.0);
        usage.add("b", 7.0);
        assert_eq!(usage.today("a").0, 3.5);
        assert_eq!(usage.today("b").0, 7.0);
        assert_eq!(usage.today("c").0, 0.0);
        assert!(usage.today("a").1 <= Duration::from_secs(DAY));
        // A count from another day is not today's.
        usage.today.lock().unwrap().get_mut("a").unwrap().0 -= 1;
        assert_eq!(usage.today("a").0, 0.0);
        usage.add("a", 1.0);
        assert_eq!(usage.today("a").0, 1.0);
    }
}
