//! Wall-clock time behind a seam, so tests can run hours of retries in milliseconds.
//!
//! Waiting is done with `tokio::time`, which tests pause and advance; [`TokioClock`] derives
//! wall time from tokio's clock so the two never disagree under a paused runtime.

use chrono::{DateTime, FixedOffset, Utc};

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The host's real clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Wall time that advances with tokio's (pausable) clock from a fixed start, and can be
/// stepped apart from it, as NTP or an operator steps a real wall clock.
pub struct TokioClock {
    start_wall: DateTime<Utc>,
    start: tokio::time::Instant,
    step_ms: std::sync::atomic::AtomicI64,
}

impl TokioClock {
    pub fn starting_at(start_wall: DateTime<Utc>) -> TokioClock {
        TokioClock {
            start_wall,
            start: tokio::time::Instant::now(),
            step_ms: std::sync::atomic::AtomicI64::new(0),
        }
    }

    /// Steps the wall clock by `by` (either way); tokio's clock does not move.
    pub fn step(&self, by: chrono::TimeDelta) {
        self.step_ms
            .fetch_add(by.num_milliseconds(), std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = tokio::time::Instant::now() - self.start;
        let step = self.step_ms.load(std::sync::atomic::Ordering::SeqCst);
        self.start_wall
            + chrono::Duration::from_std(elapsed).unwrap_or(chrono::TimeDelta::MAX)
            + chrono::TimeDelta::milliseconds(step)
    }
}

/// China Standard Time (UTC+8): Alipay's timestamps and cancel windows are stated in it.
pub fn beijing() -> FixedOffset {
    // 8 hours is always in range; `east_opt` only fails beyond ±24 h.
    FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| unreachable!())
}

/// The calendar day `date` in Beijing time (the Open Platform's bills), as `[from, to)` in UTC.
pub fn beijing_day(date: chrono::NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = date.and_time(chrono::NaiveTime::MIN) - chrono::Duration::hours(8);
    let from = start.and_utc();
    (from, from + chrono::Duration::days(1))
}

/// RFC 3339 in UTC with milliseconds, the journal's timestamp form (sorts as text).
pub fn to_journal(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn from_journal(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Pauses between retries that double from `first` up to `max`: device reopening, cancels
/// and refunds in doubt, a throttled request.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: std::time::Duration,
    max: std::time::Duration,
    next: std::time::Duration,
}

impl Backoff {
    pub fn new(first: std::time::Duration, max: std::time::Duration) -> Backoff {
        Backoff {
            first,
            max,
            next: first,
        }
    }

    /// The pause to take now; the one after is twice as long, up to the maximum.
    pub fn pause(&mut self) -> std::time::Duration {
        let now = self.next;
        self.next = (self.next * 2).min(self.max);
        now
    }

    /// From now on, the longest pause (a retry that can only succeed after a person acts).
    pub fn hold_at_max(&mut self) {
        self.next = self.max;
    }

    /// Back to the first pause (the retried thing worked).
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

#[cfg(test)]
mod backoff_tests {
    use std::time::Duration;

    use super::Backoff;

    #[test]
    fn pauses_double_to_the_maximum_and_reset() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(5));
        let pauses: Vec<u128> = (0..6).map(|_| b.pause().as_millis()).collect();
        assert_eq!(pauses, [500, 1000, 2000, 4000, 5000, 5000]);
        b.reset();
        assert_eq!(b.pause(), Duration::from_millis(500));
        b.hold_at_max();
        assert_eq!(b.pause(), Duration::from_secs(5));
    }
}
