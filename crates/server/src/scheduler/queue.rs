//! The order in which one model's waiting work runs.
//!
//! Classes first: a live final before an utterance's first partial before
//! its later partials before an interactive request before a background job. A class passed over too often while it
//! waits gets its turn (its budget), so a steady stream of live work cannot
//! starve requests, nor requests starve jobs. Live items go in arrival
//! order. Requests and jobs go by
//! *virtual arrival*: arrival time plus the item's audio seconds, so a 5 s
//! clip that arrives while a 10 min file waits goes first, and the file
//! still goes before anything that arrives more than 10 min after it.
//!
//! A partial for a live stream is only worth its newest audio: a new
//! partial replaces the stream's queued one, and a final drops both. What
//! its user sees lags the speech by the age of that audio when the partial
//! starts plus the recognition, and streams' frames arrive at different
//! moments, so of partials that waited about as long the one whose newest
//! audio is freshest goes first: up to [`MAX_STALENESS_S`] of audio age
//! counts as [`STALENESS_WEIGHT`] times as much waiting, so no partial
//! waits more than that much longer for it.
//! Cancelled items and items past their deadline leave at dequeue.
//!
//! Live finals are shared fairly between streams: each stream's finals are
//! queued after the audio of its earlier ones (start-time fair queueing on
//! audio seconds), so a stream that sends a minute of speech at once cannot
//! hold another stream's final behind all of it — the other's final waits
//! for at most about one final of each stream ahead.
//!
//! Requests and jobs of one API key are queued the same way against other
//! keys': each key's next item starts on the virtual clock where its queued
//! audio ends, so a key that submits an hour of audio at once delays another
//! key's clip by about one of its items, not all of them.

use std::collections::HashMap;
use std::time::Instant;

use super::{Class, WorkItem};
use crate::error::{ErrorKind, ServiceError};

/// How many dispatches of higher classes a waiting class tolerates.
const BUDGET: [u32; 5] = [u32::MAX, 4, 4, 8, 16];

/// Seconds of waiting that a second of a partial's audio age weighs.
const STALENESS_WEIGHT: f64 = 5.0;

/// Audio age beyond this counts no more against a partial, in seconds
/// (a stream that sent nothing for a while has nothing fresher coming).
const MAX_STALENESS_S: f64 = 0.1;

struct Queued {
    item: WorkItem,
    /// Virtual arrival, seconds since the queue's epoch.
    key: f64,
    seq: u64,
}

/// Items that leave the queue without running, with the reason to give.
pub(super) type Rejected = Vec<(WorkItem, ServiceError)>;

pub(super) struct Queue {
    items: Vec<Queued>,
    next_seq: u64,
    epoch: Instant,
    passed_over: [u32; 5],
    /// Per live stream, where its queued finals' audio ends on the virtual
    /// clock (a stream with none queued starts at now).
    finals_end: HashMap<u64, f64>,
    /// The same per API key and class, for requests and jobs.
    account_end: HashMap<(Class, String), f64>,
}

impl Queue {
    pub fn new() -> Self {
        Queue {
            items: Vec::new(),
            next_seq: 0,
            epoch: Instant::now(),
            passed_over: [0; 5],
            finals_end: HashMap::new(),
            account_end: HashMap::new(),
        }
    }

    /// Interactive requests waiting (what the queue depth bounds).
    pub fn interactive(&self) -> usize {
        self.items
            .iter()
            .filter(|q| q.item.class == Class::Interactive && !q.item.options.is_cancelled())
            .count()
    }

    /// Items waiting, cancelled ones not counted.
    pub fn len(&self) -> usize {
        self.items
            .iter()
            .filter(|q| !q.item.options.is_cancelled())
            .count()
    }

    /// Adds an item; returns the queued items it makes stale.
    pub fn push(&mut self, item: WorkItem) -> Rejected {
        let mut stale = Rejected::new();
        if let Some(stream) = item.stream {
            let supersedes = |q: &Queued| {
                q.item.stream == Some(stream)
                    && q.item.class.is_partial()
                    && (item.class.is_partial() || item.class == Class::LiveFinal)
            };
            let mut i = 0;
            while i < self.items.len() {
                if supersedes(&self.items[i]) {
                    let old = self.items.swap_remove(i).item;
                    stale.push((
                        old,
                        ServiceError::new(
                            ErrorKind::Conflict,
                            "partial_superseded",
                            "newer audio of the stream arrived",
                        ),
                    ));
                } else {
                    i += 1;
                }
            }
        }
        let now = self.epoch.elapsed().as_secs_f64();
        let key = match (item.class, item.stream) {
            (Class::Interactive | Class::Background, _) => {
                let audio = item.audio_seconds().max(0.0);
                match &item.account {
                    Some(account) => {
                        self.account_end.retain(|_, end| *end > now);
                        let end = self
                            .account_end
                            .entry((item.class, account.clone()))
                            .or_insert(now);
                        *end += audio;
                        *end
                    }
                    None => now + audio,
                }
            }
            (Class::LiveFinal, Some(stream)) => {
                self.finals_end.retain(|_, end| *end > now);
                let end = self.finals_end.entry(stream).or_insert(now);
                let start = *end;
                *end += item.audio_seconds().max(0.0);
                start
            }
            // Partials go in arrival order (one per stream is queued).
            _ => now,
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        self.items.push(Queued { item, key, seq });
        stale
    }

    /// Removes cancelled and expired items.
    pub fn prune(&mut self, now: Instant) -> Rejected {
        let mut gone = Rejected::new();
        let mut i = 0;
        while i < self.items.len() {
            let item = &self.items[i].item;
            let why = if item.options.is_cancelled() {
                Some(ServiceError::new(
                    ErrorKind::Conflict,
                    "cancelled",
                    "the request was cancelled",
                ))
            } else if item.deadline.is_some_and(|d| d <= now) {
                Some(ServiceError::new(
                    ErrorKind::Timeout,
                    "inference_timeout",
                    "the request waited longer than its deadline",
                ))
            } else {
                None
            };
            match why {
                Some(e) => gone.push((self.items.swap_remove(i).item, e)),
                None => i += 1,
            }
        }
        gone
    }

    /// The next item to run, by class, budget and virtual arrival.
    pub fn pop(&mut self) -> Option<WorkItem> {
        let waiting = |c: Class| self.items.iter().any(|q| q.item.class == c);
        let class = Class::ALL
            .into_iter()
            .filter(|&c| waiting(c))
            .find(|&c| self.passed_over[c as usize] >= BUDGET[c as usize])
            .or_else(|| Class::ALL.into_iter().find(|&c| waiting(c)))?;
        let at = self.best_of(|item| item.class == class)?;
        for lower in Class::ALL.into_iter().filter(|&l| l != class && waiting(l)) {
            self.passed_over[lower as usize] = self.passed_over[lower as usize].saturating_add(1);
        }
        self.passed_over[class as usize] = 0;
        Some(self.items.swap_remove(at).item)
    }

    /// The next item `fits` accepts, in the order within a class (for
    /// topping up a batch).
    pub fn pop_where(&mut self, fits: impl Fn(&WorkItem) -> bool) -> Option<WorkItem> {
        let at = self.best_of(fits)?;
        Some(self.items.swap_remove(at).item)
    }

    fn best_of(&self, fits: impl Fn(&WorkItem) -> bool) -> Option<usize> {
        let now = Instant::now();
        self.items
            .iter()
            .enumerate()
            .filter(|(_, q)| fits(&q.item))
            .map(|(i, q)| (i, q, q.key + staleness(&q.item, now) * STALENESS_WEIGHT))
            .min_by(|(_, a, a_key), (_, b, b_key)| {
                (a.item.class as u8)
                    .cmp(&(b.item.class as u8))
                    .then(a_key.total_cmp(b_key))
                    .then(a.seq.cmp(&b.seq))
            })
            .map(|(i, _, _)| i)
    }

    /// Empties the queue.
    pub fn drain(&mut self) -> Vec<WorkItem> {
        self.items.drain(..).map(|q| q.item).collect()
    }
}

/// How old a live partial's newest audio is, in seconds, at most
/// [`MAX_STALENESS_S`]; 0 for other items.
fn staleness(item: &WorkItem, now: Instant) -> f64 {
    let arrived = match &item.refresh {
        Some(fresh) if item.class.is_partial() => fresh.arrived(),
        _ => None,
    };
    arrived.map_or(0.0, |at| {
        now.saturating_duration_since(at)
            .as_secs_f64()
            .min(MAX_STALENESS_S)
    })
}
