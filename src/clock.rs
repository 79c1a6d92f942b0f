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
