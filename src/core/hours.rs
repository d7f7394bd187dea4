//! A queue's opening hours (R21): is it open at `now`, and when does that next change.
//!
//! The schedule is written in local time (a weekly plan and holiday dates in the queue's time zone),
//! but the engine thinks in UTC instants, so every span is turned into a UTC interval through the
//! zone's rules on the day it applies. Two DST cases have no obvious answer and are fixed here:
//!
//! - a boundary that falls in a spring-forward gap (02:30 on a day that jumps from 02:00 to 03:00)
//!   is the first instant after the gap (03:00 local);
//! - a boundary that falls in a fall-back overlap (02:30 on a day that repeats 02:00–03:00) is the
//!   earlier of its two instants.
//!
//! Comparing local wall-clock times instead would flip a queue closed and open again during the
//! repeated hour, which is why the comparison is done on instants.
//!
//! A span belongs to the day it opens on. A span like "22:00-02:00" on Friday runs into Saturday
//! morning; a holiday on Friday cancels all of it (Saturday's early hours included), and a holiday
//! on Saturday does not cut it short: the holiday closes Saturday's own spans only. The chat that
//! arrived on Friday night was promised Friday's hours.

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use crate::clock::Timestamp;

/// How far ahead [`Hours::next_change`] looks before it gives up and answers `None`.
const HORIZON_DAYS: i64 = 400;

/// The day names [`Hours::new`] accepts, Monday first, as (short, full).
const DAY_NAMES: [(&str, &str); 7] = [
    ("mon", "monday"),
    ("tue", "tuesday"),
    ("wed", "wednesday"),
    ("thu", "thursday"),
    ("fri", "friday"),
    ("sat", "saturday"),
    ("sun", "sunday"),
];

/// One queue's opening hours: a time zone, a weekly schedule and holidays.
///
/// Built by [`Hours::new`] from the queue's configuration; immutable afterwards.
#[derive(Clone, Debug, PartialEq)]
pub struct Hours {
    /// The zone the schedule and the holidays are written in.
    tz: Tz,
    /// Monday first. Each day's spans are sorted by opening time, non-overlapping (also with the
    /// previous day's span that runs past midnight), and spans that touch are merged. A span is
    /// half-open, `[open, close)`, and `close` reads three ways:
    /// - `close == 00:00` is the end of the day (24:00), since a span can't close at its own start;
    /// - `close > open` closes the same day;
    /// - otherwise (`close < open`) it runs past midnight and closes at `close` the next day.
    week: [Vec<(NaiveTime, NaiveTime)>; 7],
    /// Local dates in `tz` on which the day's own spans don't open.
    holidays: BTreeSet<NaiveDate>,
}

/// What is wrong with a queue's opening hours, naming the bad value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HoursError {
    /// Not an IANA time zone name.
    #[error("unknown time zone {0:?} (expected an IANA name like \"Europe/Madrid\")")]
    UnknownTimeZone(String),
    /// Not a day of the week.
    #[error("unknown day {0:?} (expected mon..sun or monday..sunday)")]
    UnknownDay(String),
    /// A span that is not "HH:MM-HH:MM", has an impossible time, or is empty.
    #[error("bad span {span:?} on {day} (expected \"HH:MM-HH:MM\", like \"09:00-17:00\")")]
    BadSpan {
        /// The day as written.
        day: String,
        /// The span as written.
        span: String,
    },
    /// Two spans on the same day overlap (counting a previous day's span that runs past midnight).
    #[error("overlapping spans on {day}")]
    OverlappingSpans {
        /// The day as written.
        day: String,
    },
    /// Not an ISO date "YYYY-MM-DD".
    #[error("bad holiday {0:?} (expected an ISO date like \"2026-12-25\")")]
    BadHoliday(String),
}

impl Hours {
    /// `tz` an IANA name ("Europe/Madrid"); `week` pairs of a day name ("mon".."sun",
    /// case-insensitive, also full names "monday") and a list of spans "09:00-17:00" (also
    /// "00:00-24:00" for all day; a span whose close is before its open, like "22:00-02:00", runs
    /// past midnight into the next day); `holidays` ISO dates "2026-12-25" (local dates in `tz`;
    /// closed the whole local day). Days not listed are closed.
    ///
    /// A day listed twice gets the spans of both entries. Spans that touch ("09:00-12:00" and
    /// "12:00-17:00") are one span; spans that overlap are refused. A holiday cancels the spans
    /// that open on that date, and not a previous day's span that runs past midnight into it
    /// (see the module's documentation).
    pub fn new(tz: &str, week: &[(String, Vec<String>)], holidays: &[String]) -> Result<Hours, HoursError> {
        let zone: Tz = tz
            .parse()
            .map_err(|_| HoursError::UnknownTimeZone(tz.to_owned()))?;

        let mut days: [Vec<(NaiveTime, NaiveTime)>; 7] = Default::default();
        // The day as the configuration wrote it, so an overlap error names what the user typed.
        let mut written: [Option<&str>; 7] = [None; 7];
        for (day, spans) in week {
            let index = day_index(day).ok_or_else(|| HoursError::UnknownDay(day.clone()))?;
            written[index].get_or_insert(day.as_str());
            for span in spans {
                let parsed = parse_span(span).ok_or_else(|| HoursError::BadSpan {
                    day: day.clone(),
                    span: span.clone(),
                })?;
                days[index].push(parsed);
            }
        }

        for spans in &mut days {
            spans.sort_unstable();
        }
        for index in 0..7 {
            let previous = &days[(index + 6) % 7];
            if overlaps(previous, &days[index]) {
                let day = written[index].unwrap_or(DAY_NAMES[index].0).to_owned();
                return Err(HoursError::OverlappingSpans { day });
            }
        }
        for spans in &mut days {
            merge_touching(spans);
        }

        let holidays = holidays
            .iter()
            .map(|text| {
                NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
                    .map_err(|_| HoursError::BadHoliday(text.clone()))
            })
            .collect::<Result<BTreeSet<_>, _>>()?;

        Ok(Hours {
            tz: zone,
            week: days,
            holidays,
        })
    }

    /// Whether the queue is open at `now`.
    ///
    /// Looks at the spans of three local days at most (yesterday's only when they run past
    /// midnight) and allocates nothing: it runs on every routing decision.
    pub fn is_open(&self, now: Timestamp) -> bool {
        let today = now.with_timezone(&self.tz).date_naive();
        // Yesterday only matters through a span that runs past midnight into today.
        if let Some(yesterday) = today.pred_opt() {
            if !self.holidays.contains(&yesterday) {
                let spills = self
                    .spans(yesterday)
                    .iter()
                    .filter(|span| runs_to_next_day(**span));
                for &span in spills {
                    if let Some((open, close)) = self.interval(yesterday, span) {
                        if open <= now && now < close {
                            return true;
                        }
                    }
                }
            }
        }
        // Tomorrow matters only when the clocks went back across midnight, so that a span of
        // tomorrow's can have begun at an instant whose local date still reads today.
        for day in [Some(today), today.succ_opt()].into_iter().flatten() {
            if self.holidays.contains(&day) {
                continue;
            }
            for &span in self.spans(day) {
                let Some((open, close)) = self.interval(day, span) else {
                    continue;
                };
                if open > now {
                    // Spans are sorted, and turning local times into instants keeps their order.
                    break;
                }
                if now < close {
                    return true;
                }
            }
        }
        false
    }

    /// The first instant after `now` at which `is_open` changes, if any within the next 400 days
    /// (None when always open or always closed).
    ///
    /// From an open instant that is the closing time, from a closed one the opening time, exact to
    /// the second. Spans that touch, even across midnight ("18:00-24:00" then "00:00-06:00"), are
    /// no change.
    pub fn next_change(&self, now: Timestamp) -> Option<Timestamp> {
        let horizon = now + Duration::days(HORIZON_DAYS);
        let first = now.with_timezone(&self.tz).date_naive().pred_opt()?;
        let last = horizon.with_timezone(&self.tz).date_naive().succ_opt()?;
        let mut intervals = first
            .iter_days()
            .take_while(|day| *day <= last)
            .filter(|day| !self.holidays.contains(day))
            .flat_map(|day| {
                self.spans(day)
                    .iter()
                    .filter_map(move |&span| self.interval(day, span))
            })
            // A span that DST squeezed to nothing (it lay wholly in a spring-forward gap) is no span.
            .filter(|(open, close)| open < close);

        let change = if self.is_open(now) {
            // The end of the run of touching intervals that holds `now`.
            let (_, mut end) = intervals
                .by_ref()
                .find(|(open, close)| *open <= now && now < *close)?;
            for (open, close) in intervals {
                if open > end || end > horizon {
                    break;
                }
                end = end.max(close);
            }
            end
        } else {
            let (open, _) = intervals.find(|(open, _)| *open > now)?;
            open
        };
        (change <= horizon).then_some(change)
    }

    /// The weekly spans for `day`'s weekday.
    fn spans(&self, day: NaiveDate) -> &[(NaiveTime, NaiveTime)] {
        &self.week[day.weekday().num_days_from_monday() as usize]
    }

    /// The UTC interval of `span` opening on local `day`; `None` only at the end of the calendar.
    fn interval(
        &self,
        day: NaiveDate,
        (open, close): (NaiveTime, NaiveTime),
    ) -> Option<(Timestamp, Timestamp)> {
        let close_day = if runs_to_next_day((open, close)) {
            day.succ_opt()?
        } else {
            day
        };
        Some((
            self.instant(day.and_time(open)),
            self.instant(close_day.and_time(close)),
        ))
    }

    /// The instant a local time names in this zone: the earlier one when the clocks went back and
    /// it happened twice, the first instant after the gap when they went forward over it.
    fn instant(&self, local: NaiveDateTime) -> Timestamp {
        match self.tz.from_local_datetime(&local).earliest() {
            Some(instant) => instant.with_timezone(&Utc),
            None => self.after_gap(local),
        }
    }

    /// The first instant after the spring-forward gap that `local` falls in: the transition itself.
    ///
    /// chrono-tz doesn't expose its transitions, so this bisects, to the second, between the
    /// instants `local` would name under the offsets before and after the gap. It runs only for a
    /// span boundary inside a gap, which is rare.
    fn after_gap(&self, local: NaiveDateTime) -> Timestamp {
        // A day either side is clear of the transition (offsets stay within ±14 hours, and zones
        // don't change twice in two days), so these are the offsets before and after it.
        let offset_at = |probe: NaiveDateTime| {
            i64::from(self.tz.offset_from_utc_datetime(&probe).fix().local_minus_utc())
        };
        let before = offset_at(local - Duration::days(1));
        let after = offset_at(local + Duration::days(1));
        let as_utc = local.and_utc();
        // Before the transition `local` hasn't been reached yet; at it, it has been passed.
        let mut low = as_utc - Duration::seconds(after);
        let mut high = as_utc - Duration::seconds(before);
        while high - low > Duration::seconds(1) {
            let middle = low + Duration::seconds((high - low).num_seconds() / 2);
            if middle.with_timezone(&self.tz).naive_local() >= local {
                high = middle;
            } else {
                low = middle;
            }
        }
        high
    }
}

/// Which day of the week `name` is, Monday 0.
fn day_index(name: &str) -> Option<usize> {
    let name = name.trim();
    DAY_NAMES
        .iter()
        .position(|(short, full)| name.eq_ignore_ascii_case(short) || name.eq_ignore_ascii_case(full))
}

/// "09:00-17:00" as (open, close) in the encoding of [`Hours`]'s `week`; `None` when malformed.
fn parse_span(text: &str) -> Option<(NaiveTime, NaiveTime)> {
    let (open, close) = text.split_once('-')?;
    let (open, close) = (parse_clock(open)?, parse_clock(close)?);
    match (open, close) {
        // 24:00 closes a day; it opens nothing.
        (Written::EndOfDay, _) => None,
        (Written::At(open), Written::EndOfDay) => Some((open, NaiveTime::MIN)),
        // An empty span is a typo more likely than a wish; "00:00-24:00" says all day.
        (Written::At(open), Written::At(close)) if open == close => None,
        // "22:00-00:00" closes at midnight, the same as "22:00-24:00"; the encoding agrees.
        (Written::At(open), Written::At(close)) => Some((open, close)),
    }
}

/// A time of day as written in a span: "24:00" is not a `NaiveTime`, so it gets its own case.
enum Written {
    At(NaiveTime),
    EndOfDay,
}

/// "H:MM" or "HH:MM", or "24:00".
fn parse_clock(text: &str) -> Option<Written> {
    let (hours, minutes) = text.trim().split_once(':')?;
    // Digits only: `u32::from_str` would also take a sign.
    let number = |s: &str| {
        if s.bytes().all(|b| b.is_ascii_digit()) {
            s.parse::<u32>().ok()
        } else {
            None
        }
    };
    if !matches!(hours.len(), 1 | 2) || minutes.len() != 2 {
        return None;
    }
    let (hours, minutes) = (number(hours)?, number(minutes)?);
    if (hours, minutes) == (24, 0) {
        return Some(Written::EndOfDay);
    }
    NaiveTime::from_hms_opt(hours, minutes, 0).map(Written::At)
}

/// Whether a span closes after midnight: at 24:00 or the next day.
fn runs_to_next_day((open, close): (NaiveTime, NaiveTime)) -> bool {
    close == NaiveTime::MIN || close < open
}

/// Whether `day`'s spans (sorted) overlap each other or the part of `previous`'s spans that runs
/// past midnight into `day`.
fn overlaps(previous: &[(NaiveTime, NaiveTime)], day: &[(NaiveTime, NaiveTime)]) -> bool {
    // Seconds from the day's midnight, closing at 24:00 at the latest: the part on this day.
    let seconds = |time: NaiveTime| time.num_seconds_from_midnight();
    const END: u32 = 24 * 60 * 60;
    let own = day.iter().map(|&(open, close)| {
        let end = if runs_to_next_day((open, close)) {
            END
        } else {
            seconds(close)
        };
        (seconds(open), end)
    });
    let carried = previous
        .iter()
        .filter(|&&(open, close)| close != NaiveTime::MIN && close < open)
        .map(|&(_, close)| (0, seconds(close)));
    // Ten spans a day at most in any sane schedule, and this runs once at construction.
    let mut all: Vec<(u32, u32)> = carried.chain(own).collect();
    all.sort_unstable();
    all.windows(2).any(|pair| pair[0].1 > pair[1].0)
}

/// Joins a day's spans (sorted, non-overlapping) where one closes as the next opens.
fn merge_touching(spans: &mut Vec<(NaiveTime, NaiveTime)>) {
    let mut merged: Vec<(NaiveTime, NaiveTime)> = Vec::with_capacity(spans.len());
    for &(open, close) in spans.iter() {
        match merged.last_mut() {
            Some(last) if !runs_to_next_day(*last) && last.1 == open => last.1 = close,
            _ => merged.push((open, close)),
        }
    }
    *spans = merged;
}
