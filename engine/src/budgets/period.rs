//! Budget periods: the calendar day and month in the policy's time zone.
//! Computed once per day and read lock-free in between.

use arc_swap::ArcSwap;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Periods {
    /// Days since 1970-01-01, local.
    pub day: u32,
    /// Months since year 0, local.
    pub month: u32,
    pub day_start_ms: i64,
    pub day_end_ms: i64,
    pub month_start_ms: i64,
    pub month_end_ms: i64,
}

impl Periods {
    pub fn day_tag(&self) -> u8 {
        self.day as u8
    }

    pub fn month_tag(&self) -> u8 {
        self.month as u8
    }
}

pub struct PeriodClock {
    tz: TimeZone,
    current: ArcSwap<Periods>,
}

impl PeriodClock {
    /// An unknown zone (already rejected by the compiler) falls back to UTC.
    pub fn new(timezone: &str) -> PeriodClock {
        let tz = TimeZone::get(timezone).unwrap_or(TimeZone::UTC);
        let now = Timestamp::now().as_millisecond();
        let current = ArcSwap::from_pointee(compute(&tz, now));
        PeriodClock { tz, current }
    }

    pub fn at(&self, unix_ms: i64) -> Periods {
        let p = **self.current.load();
        if (p.day_start_ms..p.day_end_ms).contains(&unix_ms) {
            return p;
        }
        let fresh = compute(&self.tz, unix_ms);
        // Only move forward: a request that read the clock late must not
        // put yesterday back.
        if fresh.day_start_ms > p.day_start_ms {
            self.current.store(Arc::new(fresh));
        }
        fresh
    }
}

fn compute(tz: &TimeZone, unix_ms: i64) -> Periods {
    let ts = Timestamp::from_millisecond(unix_ms).unwrap_or(Timestamp::UNIX_EPOCH);
    let local = ts.to_zoned(tz.clone());
    let ms = |z: Option<jiff::Zoned>| z.map(|z| z.timestamp().as_millisecond());
    let day_start = local.start_of_day().ok();
    let day_end = day_start.as_ref().and_then(|d| d.checked_add(1.day()).ok());
    let month_start = local
        .first_of_month()
        .ok()
        .and_then(|d| d.start_of_day().ok());
    let month_end = month_start
        .as_ref()
        .and_then(|d| d.checked_add(1.month()).ok());
    let date = local.date();
    let epoch = jiff::civil::date(1970, 1, 1);
    let day = epoch
        .until(date)
        .map(|s| s.get_days().max(0) as u32)
        .unwrap_or(0);
    Periods {
        day,
        month: date.year() as u32 * 12 + date.month() as u32 - 1,
        day_start_ms: ms(day_start).unwrap_or(unix_ms),
        day_end_ms: ms(day_end).unwrap_or(unix_ms + 86_400_000),
        month_start_ms: ms(month_start).unwrap_or(unix_ms),
        month_end_ms: ms(month_end).unwrap_or(unix_ms + 86_400_000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn days_and_months_follow_the_time_zone() {
        let berlin = PeriodClock::new("Europe/Berlin");
        // 23:30 UTC on 31 Jan is already 1 Feb in Berlin.
        let p = berlin.at(ms("2026-01-31T23:30:00Z"));
        assert_eq!(p.day_start_ms, ms("2026-01-31T23:00:00Z"));
        assert_eq!(p.month_start_ms, ms("2026-01-31T23:00:00Z"));
        assert_eq!(p.month_end_ms, ms("2026-02-28T23:00:00Z"));
        assert_eq!(p.month, 2026 * 12 + 1);
        let utc = PeriodClock::new("UTC");
        let q = utc.at(ms("2026-01-31T23:30:00Z"));
        assert_eq!(q.month, 2026 * 12);
        assert_eq!(q.day + 1, p.day);
        assert_eq!(q.day_end_ms - q.day_start_ms, 86_400_000);
        // DST: the last Sunday of March in Berlin has 23 hours.
        let d = berlin.at(ms("2026-03-29T12:00:00Z"));
        assert_eq!(d.day_end_ms - d.day_start_ms, 23 * 3_600_000);
    }
}
