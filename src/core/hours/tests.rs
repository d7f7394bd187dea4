//! R21 (business hours), asserted on instants: local times go through the zone, DST included.
//!
//! Europe/Madrid is CET (UTC+1) in winter and CEST (UTC+2) from 2026-03-29 01:00 UTC (02:00 local
//! jumps to 03:00) to 2026-10-25 01:00 UTC (03:00 local falls back to 02:00).

use chrono::{Duration, TimeZone, Utc};

use super::*;

const WEEKDAYS: [&str; 5] = ["mon", "tue", "wed", "thu", "fri"];

fn build(tz: &str, week: &[(&str, &[&str])], holidays: &[&str]) -> Result<Hours, HoursError> {
    let week: Vec<(String, Vec<String>)> = week
        .iter()
        .map(|(day, spans)| (day.to_string(), spans.iter().map(|s| s.to_string()).collect()))
        .collect();
    let holidays: Vec<String> = holidays.iter().map(|s| s.to_string()).collect();
    Hours::new(tz, &week, &holidays)
}

fn madrid(week: &[(&str, &[&str])], holidays: &[&str]) -> Hours {
    build("Europe/Madrid", week, holidays).expect("valid hours")
}

/// Monday to Friday, nine to five, in Madrid.
fn office(holidays: &[&str]) -> Hours {
    let week: Vec<(&str, &[&str])> = WEEKDAYS.iter().map(|day| (*day, &["09:00-17:00"][..])).collect();
    madrid(&week, holidays)
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Timestamp {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
        .single()
        .expect("valid UTC time")
}

/// An unambiguous Madrid wall-clock time as an instant.
fn madrid_at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> Timestamp {
    chrono_tz::Europe::Madrid
        .with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .expect("unambiguous Madrid time")
        .with_timezone(&Utc)
}

fn second() -> Duration {
    Duration::seconds(1)
}

#[test]
fn r21_weekday_schedule_opens_and_closes_on_the_second() {
    let hours = office(&[]);
    let (opens, closes) = (madrid_at(2026, 3, 6, 9, 0), madrid_at(2026, 3, 6, 17, 0));
    assert_eq!(opens, utc(2026, 3, 6, 8, 0, 0), "CET is UTC+1");
    assert!(!hours.is_open(opens - second()));
    assert!(hours.is_open(opens));
    assert!(hours.is_open(closes - second()));
    assert!(!hours.is_open(closes), "spans are half-open");
    assert!(
        !hours.is_open(madrid_at(2026, 3, 7, 12, 0)),
        "Saturday is not listed"
    );
}

#[test]
fn r21_dst_spring_forward_day_opens_at_nine_local() {
    let hours = madrid(&[("sun", &["09:00-17:00"]), ("sat", &["09:00-17:00"])], &[]);
    // Saturday before the change: CET; Sunday the change happens at 02:00, nine is CEST.
    assert!(hours.is_open(utc(2026, 3, 28, 8, 0, 0)));
    assert!(!hours.is_open(utc(2026, 3, 28, 7, 59, 59)));
    assert!(hours.is_open(utc(2026, 3, 29, 7, 0, 0)));
    assert!(!hours.is_open(utc(2026, 3, 29, 6, 59, 59)));
    assert!(!hours.is_open(utc(2026, 3, 29, 15, 0, 0)), "17:00 CEST");
    assert_eq!(
        hours.next_change(utc(2026, 3, 29, 0, 0, 0)),
        Some(utc(2026, 3, 29, 7, 0, 0))
    );
    assert_eq!(
        hours.next_change(utc(2026, 3, 29, 7, 0, 0)),
        Some(utc(2026, 3, 29, 15, 0, 0))
    );
}

#[test]
fn r21_dst_fall_back_day_opens_at_nine_local() {
    let hours = madrid(&[("sun", &["09:00-17:00"])], &[]);
    assert!(hours.is_open(utc(2026, 10, 25, 8, 0, 0)), "nine is CET again");
    assert!(!hours.is_open(utc(2026, 10, 25, 7, 59, 59)));
    assert_eq!(
        hours.next_change(utc(2026, 10, 24, 12, 0, 0)),
        Some(utc(2026, 10, 25, 8, 0, 0))
    );
    assert_eq!(
        hours.next_change(utc(2026, 10, 25, 8, 0, 0)),
        Some(utc(2026, 10, 25, 16, 0, 0))
    );
}

#[test]
fn r21_boundary_in_spring_forward_gap_is_the_first_instant_after_it() {
    // 02:30 doesn't exist on 2026-03-29: the span opens when the clocks reach 03:00 CEST.
    let hours = madrid(&[("sun", &["02:30-05:00"])], &[]);
    let after_gap = utc(2026, 3, 29, 1, 0, 0);
    assert!(!hours.is_open(after_gap - second()));
    assert!(hours.is_open(after_gap));
    assert_eq!(hours.next_change(utc(2026, 3, 28, 20, 0, 0)), Some(after_gap));
    assert_eq!(
        hours.next_change(after_gap),
        Some(utc(2026, 3, 29, 3, 0, 0)),
        "05:00 CEST"
    );
    // A span wholly inside the gap is never open, and no change.
    let ghost = madrid(&[("sun", &["02:10-02:50"])], &[]);
    assert!(!ghost.is_open(after_gap));
    assert_eq!(
        ghost.next_change(utc(2026, 3, 28, 20, 0, 0)),
        Some(utc(2026, 4, 5, 0, 10, 0))
    );
}

#[test]
fn r21_ambiguous_fall_back_boundary_is_the_earlier_instant() {
    // 02:30 happens twice on 2026-10-25: first in CEST (00:30 UTC), then in CET (01:30 UTC).
    let hours = madrid(&[("sun", &["02:30-06:00"])], &[]);
    let first_pass = utc(2026, 10, 25, 0, 30, 0);
    assert!(!hours.is_open(first_pass - second()));
    assert!(hours.is_open(first_pass));
    // 01:15 UTC reads 02:15 local again, before the opening time on the clock, yet it stays open.
    assert!(hours.is_open(utc(2026, 10, 25, 1, 15, 0)));
    assert_eq!(hours.next_change(utc(2026, 10, 24, 20, 0, 0)), Some(first_pass));
    assert_eq!(
        hours.next_change(first_pass),
        Some(utc(2026, 10, 25, 5, 0, 0)),
        "06:00 CET"
    );
    // A close in the repeated hour is its earlier instant too.
    let short = madrid(&[("sun", &["01:00-02:30"])], &[]);
    assert_eq!(short.next_change(utc(2026, 10, 24, 23, 0, 0)), Some(first_pass));
    assert!(!short.is_open(utc(2026, 10, 25, 1, 15, 0)));
}

#[test]
fn r21_holiday_closes_the_whole_local_day() {
    let hours = office(&["2026-12-25"]);
    assert!(
        !hours.is_open(madrid_at(2026, 12, 25, 12, 0)),
        "Christmas is a Friday, and closed"
    );
    assert!(hours.is_open(madrid_at(2026, 12, 24, 12, 0)));
    assert!(hours.is_open(madrid_at(2026, 12, 28, 9, 0)));
    // The date is local: 23:30 UTC on the 24th is already the 25th in Madrid.
    let all_day = madrid(
        &[("thu", &["00:00-24:00"]), ("fri", &["00:00-24:00"])],
        &["2026-12-25"],
    );
    assert!(!all_day.is_open(utc(2026, 12, 24, 23, 30, 0)));
    assert!(all_day.is_open(utc(2026, 12, 24, 22, 59, 59)));
}

#[test]
fn r21_overnight_span_runs_into_the_next_day() {
    let hours = madrid(&[("fri", &["22:00-02:00"])], &[]);
    assert!(!hours.is_open(madrid_at(2026, 3, 6, 21, 59)));
    assert!(hours.is_open(madrid_at(2026, 3, 6, 22, 0)));
    assert!(hours.is_open(madrid_at(2026, 3, 7, 1, 0)), "Saturday 01:00");
    assert!(!hours.is_open(madrid_at(2026, 3, 7, 2, 0)));
    assert!(
        !hours.is_open(madrid_at(2026, 3, 5, 1, 0)),
        "not carried into Friday from Thursday"
    );
    assert_eq!(
        hours.next_change(madrid_at(2026, 3, 6, 23, 0)),
        Some(madrid_at(2026, 3, 7, 2, 0))
    );
    // "22:00-00:00" closes at midnight, like "22:00-24:00".
    assert_eq!(
        madrid(&[("fri", &["22:00-00:00"])], &[]),
        madrid(&[("fri", &["22:00-24:00"])], &[])
    );
}

#[test]
fn r21_holiday_cancels_spans_opening_that_day_not_the_night_before() {
    // Saturday is a holiday: Friday night's span still runs to 02:00 on Saturday.
    let saturday_off = madrid(
        &[("fri", &["22:00-02:00"]), ("sat", &["10:00-12:00"])],
        &["2026-03-07"],
    );
    assert!(saturday_off.is_open(madrid_at(2026, 3, 7, 1, 0)));
    assert!(!saturday_off.is_open(madrid_at(2026, 3, 7, 11, 0)));
    assert_eq!(
        saturday_off.next_change(madrid_at(2026, 3, 7, 1, 0)),
        Some(madrid_at(2026, 3, 7, 2, 0))
    );
    // Friday is a holiday: the whole span is cancelled, its Saturday hours too.
    let friday_off = madrid(&[("fri", &["22:00-02:00"])], &["2026-03-06"]);
    assert!(!friday_off.is_open(madrid_at(2026, 3, 6, 23, 0)));
    assert!(!friday_off.is_open(madrid_at(2026, 3, 7, 1, 0)));
    assert_eq!(
        friday_off.next_change(madrid_at(2026, 3, 6, 12, 0)),
        Some(madrid_at(2026, 3, 13, 22, 0))
    );
}

#[test]
fn r21_next_change_across_a_weekend() {
    let hours = office(&[]);
    let friday_close = madrid_at(2026, 3, 6, 17, 0);
    let monday_open = madrid_at(2026, 3, 9, 9, 0);
    assert_eq!(
        hours.next_change(madrid_at(2026, 3, 6, 16, 0)),
        Some(friday_close)
    );
    assert_eq!(hours.next_change(friday_close - second()), Some(friday_close));
    assert_eq!(hours.next_change(friday_close), Some(monday_open));
    assert_eq!(hours.next_change(madrid_at(2026, 3, 8, 12, 0)), Some(monday_open));
    assert_eq!(hours.next_change(monday_open - second()), Some(monday_open));
    assert_eq!(hours.next_change(monday_open), Some(madrid_at(2026, 3, 9, 17, 0)));
}

#[test]
fn r21_next_change_across_a_holiday() {
    let hours = office(&["2026-12-25"]);
    let thursday_close = madrid_at(2026, 12, 24, 17, 0);
    assert_eq!(
        hours.next_change(madrid_at(2026, 12, 24, 10, 0)),
        Some(thursday_close)
    );
    assert_eq!(
        hours.next_change(thursday_close),
        Some(madrid_at(2026, 12, 28, 9, 0))
    );
    assert_eq!(
        hours.next_change(madrid_at(2026, 12, 25, 12, 0)),
        Some(madrid_at(2026, 12, 28, 9, 0))
    );
}

#[test]
fn r21_next_change_is_none_when_always_open_or_always_closed() {
    let always: Vec<(&str, &[&str])> = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .iter()
        .map(|d| (*d, &["00:00-24:00"][..]))
        .collect();
    let open = madrid(&always, &[]);
    let now = utc(2026, 3, 28, 12, 0, 0);
    assert!(open.is_open(now));
    assert!(
        open.is_open(utc(2026, 3, 29, 1, 0, 0)),
        "open across the spring-forward gap"
    );
    assert_eq!(open.next_change(now), None);
    let closed = madrid(&[], &[]);
    assert!(!closed.is_open(now));
    assert_eq!(closed.next_change(now), None);
    // A holiday more than 400 days out is beyond the horizon.
    let far = madrid(&always, &["2028-01-01"]);
    assert_eq!(far.next_change(now), None);
    let near = madrid(&always, &["2026-12-25"]);
    assert_eq!(near.next_change(now), Some(madrid_at(2026, 12, 25, 0, 0)));
}

#[test]
fn r21_spans_that_touch_are_no_change() {
    // Across midnight: Friday to 24:00 then Saturday from 00:00 is one stretch.
    let hours = madrid(&[("fri", &["18:00-24:00"]), ("sat", &["00:00-06:00"])], &[]);
    assert!(hours.is_open(madrid_at(2026, 3, 7, 0, 0)));
    assert_eq!(
        hours.next_change(madrid_at(2026, 3, 6, 20, 0)),
        Some(madrid_at(2026, 3, 7, 6, 0))
    );
    // Unless Saturday is a holiday: then Friday's span closes at midnight.
    let holiday = madrid(
        &[("fri", &["18:00-24:00"]), ("sat", &["00:00-06:00"])],
        &["2026-03-07"],
    );
    assert_eq!(
        holiday.next_change(madrid_at(2026, 3, 6, 20, 0)),
        Some(madrid_at(2026, 3, 7, 0, 0))
    );
    // Within a day they are merged at construction.
    let split = madrid(&[("mon", &["12:00-17:00", "09:00-12:00"])], &[]);
    assert_eq!(split, madrid(&[("mon", &["09:00-17:00"])], &[]));
}

#[test]
fn r21_next_change_agrees_with_is_open() {
    // Every quarter hour across both 2026 DST changes, with overnight and touching spans.
    let hours = madrid(
        &[
            ("fri", &["08:00-12:00", "12:00-14:00", "22:00-02:30"]),
            ("sat", &["02:30-03:00", "09:00-10:00"]),
            ("sun", &["01:30-02:30", "08:00-24:00"]),
            ("mon", &["00:00-01:00"]),
        ],
        &["2026-10-24"],
    );
    for start in [utc(2026, 3, 26, 0, 0, 0), utc(2026, 10, 22, 0, 0, 0)] {
        for step in 0..(6 * 24 * 4) {
            let now = start + Duration::minutes(15 * step);
            let open = hours.is_open(now);
            let change = hours.next_change(now).expect("changes within a week");
            assert!(change > now);
            assert_ne!(hours.is_open(change), open, "at {change}, from {now}");
            assert_eq!(
                hours.is_open(change - second()),
                open,
                "before {change}, from {now}"
            );
        }
    }
}

#[test]
fn r21_day_names_are_case_insensitive_short_or_full() {
    let short = madrid(&[("mon", &["09:00-17:00"]), ("tue", &["9:00-17:00"])], &[]);
    let full = madrid(&[("MONDAY", &["09:00-17:00"]), ("Tue", &["09:00-17:00"])], &[]);
    assert_eq!(short, full);
    // A day listed twice gets both entries' spans.
    let twice = madrid(
        &[
            ("mon", &["09:00-12:00"]),
            ("Monday", &["12:00-17:00"]),
            ("tue", &["09:00-17:00"]),
        ],
        &[],
    );
    assert_eq!(twice, short);
}

#[test]
fn r21_errors_name_the_bad_value() {
    let bad_span = |span: &str| HoursError::BadSpan {
        day: "Mon".to_owned(),
        span: span.to_owned(),
    };
    assert_eq!(
        build("Mars/Olympus", &[], &[]),
        Err(HoursError::UnknownTimeZone("Mars/Olympus".to_owned()))
    );
    assert_eq!(
        build("Europe/Madrid", &[("funday", &["09:00-17:00"])], &[]),
        Err(HoursError::UnknownDay("funday".to_owned()))
    );
    for span in [
        "9-17",
        "25:00-26:00",
        "09:00",
        "09:00-09:00",
        "24:00-02:00",
        "09:60-10:00",
        "+9:00-17:00",
        "",
    ] {
        assert_eq!(
            build("Europe/Madrid", &[("Mon", &[span])], &[]),
            Err(bad_span(span)),
            "{span:?}"
        );
    }
    assert_eq!(
        build("Europe/Madrid", &[("tue", &["09:00-12:00", "11:00-13:00"])], &[]),
        Err(HoursError::OverlappingSpans {
            day: "tue".to_owned()
        })
    );
    // Friday night's span overlaps Saturday's first one.
    assert_eq!(
        build(
            "Europe/Madrid",
            &[("fri", &["22:00-02:00"]), ("Saturday", &["01:00-05:00"])],
            &[]
        ),
        Err(HoursError::OverlappingSpans {
            day: "Saturday".to_owned()
        })
    );
    // Sunday's runs into Monday, across the end of the week.
    assert_eq!(
        build(
            "Europe/Madrid",
            &[("mon", &["00:00-08:00"]), ("sun", &["23:00-01:00"])],
            &[]
        ),
        Err(HoursError::OverlappingSpans {
            day: "mon".to_owned()
        })
    );
    assert_eq!(
        build("Europe/Madrid", &[], &["2026-12-25", "2026-13-01"]),
        Err(HoursError::BadHoliday("2026-13-01".to_owned()))
    );
    assert_eq!(
        HoursError::UnknownTimeZone("Mars/Olympus".to_owned()).to_string(),
        "unknown time zone \"Mars/Olympus\" (expected an IANA name like \"Europe/Madrid\")"
    );
}

#[test]
fn r21_midnight_in_a_spring_forward_gap() {
    // Chile moves its clocks from 00:00 to 01:00 on Sunday 2026-09-06 (04:00 UTC): that Sunday has
    // no midnight. Saturday's 24:00 and Sunday's 00:00 are both the first instant after the gap.
    let week: [(&str, &[&str]); 2] = [("sat", &["18:00-24:00"]), ("sun", &["00:00-06:00"])];
    let gap = utc(2026, 9, 6, 4, 0, 0);
    let hours = build("America/Santiago", &week, &[]).expect("valid hours");
    assert!(hours.is_open(gap - second()));
    assert!(hours.is_open(gap));
    assert_eq!(
        hours.next_change(utc(2026, 9, 5, 23, 0, 0)),
        Some(utc(2026, 9, 6, 9, 0, 0)),
        "06:00 -03"
    );
    let sunday_off = build("America/Santiago", &week, &["2026-09-06"]).expect("valid hours");
    assert!(!sunday_off.is_open(gap));
    assert_eq!(sunday_off.next_change(utc(2026, 9, 5, 23, 0, 0)), Some(gap));
    let saturday_off = build("America/Santiago", &week, &["2026-09-05"]).expect("valid hours");
    assert!(!saturday_off.is_open(gap - second()));
    assert_eq!(saturday_off.next_change(utc(2026, 9, 5, 23, 0, 0)), Some(gap));
}
