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

/// The store's time zone: what "a day" means for the report, receipts, exports, `--date` and
/// `--since`, and sale ids (`[terminal] time_zone`, docs/operations.md §"One store day").
/// Providers keep their own day (Beijing for both Alipay gateways).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreZone {
    /// The host's zone (`/etc/localtime`, `TZ`): the default.
    Host,
    Fixed(FixedOffset),
    Named(chrono_tz::Tz),
}

impl StoreZone {
    /// `Asia/Bangkok`, `UTC`, `+07:00`, `-05:00`, `UTC+7`, or `host`.
    pub fn parse(text: &str) -> Result<StoreZone, String> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("host") || t.eq_ignore_ascii_case("local") {
            return Ok(StoreZone::Host);
        }
        if let Some(offset) = parse_offset(t) {
            return Ok(StoreZone::Fixed(offset));
        }
        t.parse::<chrono_tz::Tz>().map(StoreZone::Named).map_err(|_| {
            format!("{text:?} is not a time zone: use an IANA name like \"Asia/Shanghai\", an offset like \"+07:00\", or \"host\"")
        })
    }

    /// The offset from UTC in force at `t`.
    pub fn offset_at(&self, t: DateTime<Utc>) -> FixedOffset {
        use chrono::Offset;
        match self {
            StoreZone::Host => t.with_timezone(&chrono::Local).offset().fix(),
            StoreZone::Fixed(o) => *o,
            StoreZone::Named(tz) => t.with_timezone(tz).offset().fix(),
        }
    }

    /// `t` as the store's wall time.
    pub fn local(&self, t: DateTime<Utc>) -> DateTime<FixedOffset> {
        t.with_timezone(&self.offset_at(t))
    }

    /// The store day `t` falls on.
    pub fn date_of(&self, t: DateTime<Utc>) -> chrono::NaiveDate {
        self.local(t).date_naive()
    }

    /// The store day `date` as `[from, to)` in UTC (23 or 25 hours across a DST change).
    pub fn day(&self, date: chrono::NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
        let next = date.succ_opt().unwrap_or(date);
        (self.midnight(date), self.midnight(next))
    }

    /// The first instant of `date` in the store (a gap at midnight starts the day later).
    pub fn midnight(&self, date: chrono::NaiveDate) -> DateTime<Utc> {
        use chrono::TimeZone;
        let naive = date.and_time(chrono::NaiveTime::MIN);
        let first =
            |mut hour: chrono::NaiveDateTime,
             at: &dyn Fn(chrono::NaiveDateTime) -> Option<DateTime<Utc>>| {
                // A DST gap holds at most a few hours: step through it by minutes.
                for _ in 0..(4 * 60) {
                    if let Some(t) = at(hour) {
                        return t;
                    }
                    hour += chrono::Duration::minutes(1);
                }
                naive.and_utc()
            };
        match self {
            StoreZone::Host => first(naive, &|n| {
                chrono::Local
                    .from_local_datetime(&n)
                    .earliest()
                    .map(|t| t.with_timezone(&Utc))
            }),
            StoreZone::Fixed(o) => first(naive, &|n| {
                o.from_local_datetime(&n)
                    .earliest()
                    .map(|t| t.with_timezone(&Utc))
            }),
            StoreZone::Named(tz) => first(naive, &|n| {
                tz.from_local_datetime(&n)
                    .earliest()
                    .map(|t| t.with_timezone(&Utc))
            }),
        }
    }

    /// Today in the store.
    pub fn today(&self, clock: &dyn Clock) -> chrono::NaiveDate {
        self.date_of(clock.now())
    }

    /// How the zone is written in config and shown to people.
    pub fn name(&self) -> String {
        match self {
            StoreZone::Host => "host".to_string(),
            StoreZone::Fixed(o) => o.to_string(),
            StoreZone::Named(tz) => tz.name().to_string(),
        }
    }
}

/// `+07:00`, `-0500`, `+7`, `UTC+7`, `UTC-05:00`, `UTC`, `Z`.
fn parse_offset(text: &str) -> Option<FixedOffset> {
    if text.is_empty() {
        return None;
    }
    let t = text
        .strip_prefix("UTC")
        .or_else(|| text.strip_prefix("GMT"))
        .unwrap_or(text);
    if t.is_empty() || t == "Z" {
        return FixedOffset::east_opt(0);
    }
    let (sign, rest) = match t.as_bytes().first()? {
        b'+' => (1, &t[1..]),
        b'-' => (-1, &t[1..]),
        _ => return None,
    };
    let (h, m) = match rest.split_once(':') {
        Some((h, m)) => (h, m),
        None if rest.len() == 4 => rest.split_at(2),
        None => (rest, "0"),
    };
    if h.is_empty() || h.len() > 2 || m.is_empty() || m.len() > 2 {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    if h > 14
        || m > 59
        || !text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-:".contains(&b))
    {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

/// Parses `YYYY-MM-DD` for a `--date` or `--since` argument.
pub fn parse_date(text: &str) -> Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|e| format!("{text:?} is not a date like 2026-11-22 ({e})"))
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

#[cfg(test)]
mod zone_tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        from_journal(text).unwrap()
    }

    #[test]
    fn offsets_and_names_parse_and_bad_ones_say_what_to_write() {
        for (text, east) in [
            ("+07:00", 7 * 3600),
            ("-05:00", -5 * 3600),
            ("UTC+7", 7 * 3600),
            ("UTC-0530", -(5 * 3600 + 1800)),
            ("UTC", 0),
        ] {
            assert_eq!(
                StoreZone::parse(text),
                Ok(StoreZone::Fixed(FixedOffset::east_opt(east).unwrap())),
                "{text}"
            );
        }
        assert_eq!(
            StoreZone::parse("Asia/Bangkok").unwrap().name(),
            "Asia/Bangkok"
        );
        assert_eq!(StoreZone::parse("host"), Ok(StoreZone::Host));
        for bad in ["Mars/Olympus", "+25:00", "7", "+07:99", "", "UTC+"] {
            let e = StoreZone::parse(bad).unwrap_err();
            assert!(e.contains("IANA name"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_store_day_runs_from_local_midnight_to_local_midnight() {
        let bangkok = StoreZone::parse("Asia/Bangkok").unwrap();
        let day = chrono::NaiveDate::from_ymd_opt(2026, 12, 2).unwrap();
        assert_eq!(
            bangkok.day(day),
            (utc("2026-12-01T17:00:00Z"), utc("2026-12-02T17:00:00Z"))
        );
        assert_eq!(bangkok.date_of(utc("2026-12-01T17:00:00Z")), day);
        assert_eq!(
            bangkok.date_of(utc("2026-12-01T16:59:59Z")),
            day.pred_opt().unwrap()
        );
        let new_york = StoreZone::parse("America/New_York").unwrap();
        // 2026-11-01 is 25 hours long there (DST ends).
        let (from, to) = new_york.day(chrono::NaiveDate::from_ymd_opt(2026, 11, 1).unwrap());
        assert_eq!((to - from).num_hours(), 25);
        assert_eq!(
            new_york.date_of(utc("2026-12-02T04:59:00Z")),
            day.pred_opt().unwrap()
        );
        assert_eq!(new_york.date_of(utc("2026-12-02T05:00:00Z")), day);
    }
}
