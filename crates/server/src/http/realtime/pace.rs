//! How fast a client may go: held back (not read) while too far ahead of
//! recognition or of real time, and refused past an allowance of control
//! frames.

use std::time::Duration;

use tokio::time::Instant;

/// Control frames (pings, pongs) a client may send: this many at once,
/// then [`CONTROL_PER_SECOND`]. Each ping is answered with a pong the
/// server must buffer; a flood is refused instead of growing memory.
pub const CONTROL_BURST: f64 = 100.0;
pub const CONTROL_PER_SECOND: f64 = 10.0;

/// What remains of a client's control-frame allowance.
pub struct ControlBudget {
    left: f64,
    at: Instant,
}

impl ControlBudget {
    pub fn new() -> ControlBudget {
        ControlBudget {
            left: CONTROL_BURST,
            at: Instant::now(),
        }
    }

    /// Takes one frame's share; false when the client is over its allowance.
    pub fn spend(&mut self) -> bool {
        let now = Instant::now();
        let earned = now.duration_since(self.at).as_secs_f64() * CONTROL_PER_SECOND;
        self.left = (self.left + earned).min(CONTROL_BURST) - 1.0;
        self.at = now;
        self.left >= 0.0
    }
}

/// Whether the connection loop holds a client back (does not read it): while
/// its backlog is over `max_live_backlog`, for at most [`MAX_HOLD`] at a
/// time, then it is read again (its pings answered) until it falls back
/// under. Past twice the backlog it is refused (`live_backlog_exceeded`).
#[derive(Default)]
pub struct Backpressure {
    /// Since when the client is held.
    held: Option<Instant>,
    /// The last hold ran out: read until the backlog is under the bound.
    spent: bool,
}

/// The longest a client goes unread at a stretch: well within the
/// keep-alive timeouts of common clients (Python `websockets`: 20 s).
pub const MAX_HOLD: Duration = Duration::from_secs(5);

impl Backpressure {
    pub fn hold(&mut self, over: bool, model: &str) -> bool {
        if !over {
            self.held = None;
            self.spent = false;
            return false;
        }
        if self.spent {
            return false;
        }
        match self.held {
            Some(since) if since.elapsed() >= MAX_HOLD => {
                self.held = None;
                self.spent = true;
                false
            }
            Some(_) => true,
            None => {
                metrics::counter!("glagol_live_read_pauses_total", "model" => model.to_string())
                    .increment(1);
                self.held = Some(Instant::now());
                true
            }
        }
    }

    /// When the current hold runs out.
    pub async fn until(&self) {
        match self.held {
            Some(since) => tokio::time::sleep_until(since + MAX_HOLD).await,
            None => std::future::pending().await,
        }
    }
}

/// A connection's audio allowance: `burst` seconds at once, then `factor`
/// times real time. A client past it is not read until the clock catches
/// up, so one session cannot feed the server audio (silence included, which
/// costs voice detection and resampling) faster than that.
pub struct Speed {
    opened: Instant,
    burst: f64,
    /// None: unbounded.
    factor: Option<f64>,
    /// Seconds of audio received on this connection (across reconfigures).
    received: f64,
}

impl Speed {
    pub fn new(burst: f64, factor: f64) -> Speed {
        Speed {
            opened: Instant::now(),
            burst,
            factor: (factor > 0.0).then_some(factor),
            received: 0.0,
        }
    }

    /// Counts `seconds` more audio received.
    pub fn received(&mut self, seconds: f64) {
        self.received += seconds.max(0.0);
    }

    /// When the client may be read again; None while it is within its allowance.
    pub fn resume_at(&self) -> Option<Instant> {
        let factor = self.factor?;
        let allowed = self.burst + factor * self.opened.elapsed().as_secs_f64();
        (self.received > allowed)
            .then(|| self.opened + Duration::from_secs_f64((self.received - self.burst) / factor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_client_is_read_at_its_burst_then_at_the_factor() {
        let mut speed = Speed::new(10.0, 4.0);
        speed.received(10.0);
        assert!(speed.resume_at().is_none());
        speed.received(8.0);
        // 8 s over the burst at 4x: readable again 2 s after opening.
        let at = speed.resume_at().unwrap();
        assert_eq!(at - speed.opened, Duration::from_secs(2));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(speed.resume_at().is_none());
        let mut unbounded = Speed::new(10.0, 0.0);
        unbounded.received(1e9);
        assert!(unbounded.resume_at().is_none());
    }
}
