//! Calendar periods in the configured time zone: the intervals, hours, days and ISO weeks that files rotate on.
//!
//! Everything here is a pure function of an instant and a [`TimeZone`]: no clock is read, so rotation is tested
//! by passing instants in. A period is named by its local start (`20240331-0300`, `2024-03-31`, `2024-W13`) and
//! holds the UTC instants `[start, end)` it covers. Days and weeks follow the civil calendar, so a DST day of 23 or
//! 25 hours is one period. Intervals and hours follow the local clock; in the autumn hour that is repeated, the
//! repeated local times are two different periods and their names carry the UTC offset
//! (`20241027-0200+0200`, then `20241027-0200+0100`) so that no name is ever used twice. In spring the skipped
//! local times have no period at all.

use std::fmt;

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{AmbiguousOffset, Offset, TimeZone};
use jiff::{SignedDuration, Timestamp};

/// What a period spans.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Span {
    /// Local-clock minutes, aligned to local midnight; the value divides 1440 and is below it.
    Minutes(u32),
    /// A civil day.
    Day,
    /// An ISO 8601 week, Monday to Sunday.
    Week,
}

impl Span {
    /// One hour.
    pub const HOUR: Span = Span::Minutes(60);

    /// The span for `interval_minutes`: a whole day becomes [`Span::Day`] so that it never splits at DST.
    #[must_use]
    pub fn interval(minutes: u32) -> Span {
        if minutes == 0 || minutes >= 1440 || 1440 % minutes != 0 {
            Span::Day
        } else {
            Span::Minutes(minutes)
        }
    }
}

/// One period: its local name and the instants it covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    /// What it spans.
    pub span: Span,
    /// Local civil start.
    pub civil: DateTime,
    /// The UTC offset of the start, when the local start time occurs twice (autumn DST) and only then.
    pub fold_offset: Option<Offset>,
    /// First instant (inclusive).
    pub start: Timestamp,
    /// First instant after the period.
    pub end: Timestamp,
}

impl Period {
    /// The period of `span` that contains instant `t` in zone `tz`.
    #[must_use]
    pub fn containing(span: Span, t: Timestamp, tz: &TimeZone) -> Period {
        let (civil, fold_offset, start) = key(span, t, tz);
        let end = end_after(span, t, tz, civil, fold_offset);
        Period { span, civil, fold_offset, start, end }
    }

    /// The period that follows this one.
    #[must_use]
    pub fn next(&self, tz: &TimeZone) -> Period {
        Period::containing(self.span, self.end, tz)
    }

    /// Whether instant `t` lies in this period.
    #[must_use]
    pub fn contains(&self, t: Timestamp) -> bool {
        self.start <= t && t < self.end
    }

    /// The file name stem: `20240331-0300` (interval), `2024-03-31` (day), `2024-W13` (week).
    #[must_use]
    pub fn name(&self) -> String {
        match self.span {
            Span::Minutes(_) => {
                let mut name = self.civil.strftime("%Y%m%d-%H%M").to_string();
                if let Some(offset) = self.fold_offset {
                    name.push_str(&compact_offset(offset));
                }
                name
            }
            Span::Day => self.civil.date().strftime("%Y-%m-%d").to_string(),
            Span::Week => {
                let week = self.civil.date().iso_week_date();
                format!("{:04}-W{:02}", week.year(), week.week())
            }
        }
    }

    /// The local start with its offset, e.g. `2024-10-27T02:00+01:00`: unambiguous even in a repeated hour.
    #[must_use]
    pub fn label(&self, tz: &TimeZone) -> String {
        let offset = tz.to_offset(self.start);
        format!("{}{}", self.civil.strftime("%Y-%m-%dT%H:%M"), offset_text(offset))
    }

    /// Reads a name written by [`Period::name`] back into the period it names, as the period of `span` that
    /// contains the named start. `None` if the text is not such a name.
    #[must_use]
    pub fn parse_name(span: Span, name: &str, tz: &TimeZone) -> Option<Period> {
        let start = match span {
            Span::Minutes(_) => {
                // Any file name can come here: `split_at_checked` is `None` inside a multi-byte character.
                let (stamp, offset) = if name.len() > 13 { name.split_at_checked(13)? } else { (name, "") };
                let civil = DateTime::strptime("%Y%m%d-%H%M", stamp).ok()?;
                if offset.is_empty() {
                    tz.to_ambiguous_timestamp(civil).compatible().ok()?
                } else {
                    parse_compact_offset(offset)?.to_timestamp(civil).ok()?
                }
            }
            Span::Day => {
                let date = Date::strptime("%Y-%m-%d", name).ok()?;
                tz.to_ambiguous_timestamp(date.to_datetime(Time::midnight())).compatible().ok()?
            }
            Span::Week => {
                let (year, week) = name.split_once("-W")?;
                let week =
                    jiff::civil::ISOWeekDate::new(year.parse().ok()?, week.parse().ok()?, jiff::civil::Weekday::Monday)
                        .ok()?;
                tz.to_ambiguous_timestamp(week.date().to_datetime(Time::midnight())).compatible().ok()?
            }
        };
        let period = Period::containing(span, start, tz);
        (period.name() == name).then_some(period)
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// `+01:00`.
#[must_use]
pub fn offset_text(offset: Offset) -> String {
    let secs = offset.seconds();
    let sign = if secs < 0 { '-' } else { '+' };
    let abs = secs.unsigned_abs();
    format!("{sign}{:02}:{:02}", abs / 3600, abs % 3600 / 60)
}

fn compact_offset(offset: Offset) -> String {
    offset_text(offset).replace(':', "")
}

fn parse_compact_offset(text: &str) -> Option<Offset> {
    let sign = match text.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    if text.len() != 5 || !text[1..].bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hh: i32 = text[1..3].parse().ok()?;
    let mm: i32 = text[3..5].parse().ok()?;
    Offset::from_seconds(sign * (hh * 3600 + mm * 60)).ok()
}

/// The identity of the period containing `t`: its civil start, the offset if that start is in a fold, and the
/// instant it begins.
fn key(span: Span, t: Timestamp, tz: &TimeZone) -> (DateTime, Option<Offset>, Timestamp) {
    let local = tz.to_datetime(t);
    match span {
        Span::Minutes(n) => {
            let n = n.clamp(1, 1440);
            let minute_of_day = u32::from(local.hour().unsigned_abs()) * 60 + u32::from(local.minute().unsigned_abs());
            let floor = minute_of_day - minute_of_day % n;
            let time = Time::new((floor / 60) as i8, (floor % 60) as i8, 0, 0).unwrap_or(Time::midnight());
            let civil = local.date().to_datetime(time);
            match tz.to_ambiguous_timestamp(civil).offset() {
                AmbiguousOffset::Fold { before, after } => {
                    let offset = tz.to_offset(t);
                    let offset = if offset == before { before } else { after };
                    (civil, Some(offset), offset.to_timestamp(civil).unwrap_or(t))
                }
                _ => (civil, None, resolve_first(tz, civil, t)),
            }
        }
        Span::Day => {
            let civil = local.date().to_datetime(Time::midnight());
            (civil, None, resolve_first(tz, civil, t))
        }
        Span::Week => {
            let monday =
                local.date().iso_week_date().first_of_week().map_or(local.date(), jiff::civil::ISOWeekDate::date);
            let civil = monday.to_datetime(Time::midnight());
            (civil, None, resolve_first(tz, civil, t))
        }
    }
}

/// The earliest instant at which the local clock shows `civil` (the end of the gap if it was skipped), never
/// later than `fallback`'s own period would allow; on a jiff error, `fallback`.
fn resolve_first(tz: &TimeZone, civil: DateTime, fallback: Timestamp) -> Timestamp {
    tz.to_ambiguous_timestamp(civil).compatible().unwrap_or(fallback)
}

/// The first instant after `t` at which the period key changes.
fn end_after(span: Span, t: Timestamp, tz: &TimeZone, civil: DateTime, fold_offset: Option<Offset>) -> Timestamp {
    let next_civil = match span {
        Span::Minutes(n) => civil.checked_add(SignedDuration::from_mins(i64::from(n.clamp(1, 1440)))),
        Span::Day => civil.date().tomorrow().map(|d| d.to_datetime(Time::midnight())),
        Span::Week => civil.date().checked_add(jiff::Span::new().days(7)).map(|d| d.to_datetime(Time::midnight())),
    };
    // A fallback that always moves forward, should jiff ever refuse a date at the ends of its range.
    let fallback = t + SignedDuration::from_mins(1);
    let Ok(next_civil) = next_civil else { return fallback };
    // The first instant after `t` at which the local clock reaches the next civil start.
    let candidate = match tz.to_ambiguous_timestamp(next_civil).offset() {
        AmbiguousOffset::Fold { before, after } => [before, after]
            .into_iter()
            .filter_map(|o| o.to_timestamp(next_civil).ok())
            .find(|&s| s > t)
            .unwrap_or(fallback),
        _ => tz.to_ambiguous_timestamp(next_civil).compatible().unwrap_or(fallback),
    };
    let candidate = if candidate > t { candidate } else { fallback };
    // A DST transition inside the period can end it early: the local clock jumps back into an earlier slot
    // (autumn, for intervals shorter than the repeated hour). Days and weeks never end at a transition.
    if let Span::Minutes(_) = span {
        for transition in tz.following(t).take(4) {
            let at = transition.timestamp();
            if at >= candidate {
                break;
            }
            let (c, f, _) = key(span, at, tz);
            if c != civil || f != fold_offset {
                return at;
            }
        }
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ams() -> TimeZone {
        TimeZone::get("Europe/Amsterdam").expect("tzdb")
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    /// Walks every period of `span` from `from` until `until` and returns their names and lengths in minutes.
    fn walk(span: Span, from: &str, until: &str, tz: &TimeZone) -> Vec<(String, i64)> {
        let mut p = Period::containing(span, ts(from), tz);
        let mut out = Vec::new();
        while p.start < ts(until) {
            out.push((p.name(), p.end.duration_since(p.start).as_mins()));
            let next = p.next(tz);
            assert_eq!(next.start, p.end, "periods tile time without gap or overlap after {}", p.name());
            p = next;
        }
        out
    }

    #[test]
    fn spring_day_is_one_day_of_23_hours() {
        let days = walk(Span::Day, "2024-03-30T12:00Z", "2024-04-01T12:00Z", &ams());
        assert_eq!(days, [("2024-03-30".into(), 1440), ("2024-03-31".into(), 1380), ("2024-04-01".into(), 1440)]);
    }

    #[test]
    fn autumn_day_is_one_day_of_25_hours() {
        let days = walk(Span::Day, "2024-10-26T12:00Z", "2024-10-28T12:00Z", &ams());
        assert_eq!(days, [("2024-10-26".into(), 1440), ("2024-10-27".into(), 1500), ("2024-10-28".into(), 1440)]);
    }

    #[test]
    fn spring_hours_skip_the_missing_hour() {
        // 2024-03-31 02:00 local did not happen: the clock went from 01:59:59+01:00 to 03:00+02:00.
        let hours = walk(Span::HOUR, "2024-03-30T23:00Z", "2024-03-31T03:00Z", &ams());
        let names: Vec<&str> = hours.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["20240331-0000", "20240331-0100", "20240331-0300", "20240331-0400"]);
        assert!(hours.iter().all(|(_, len)| *len == 60));
        let day_hours = walk(Span::HOUR, "2024-03-30T23:00Z", "2024-03-31T22:00Z", &ams());
        assert_eq!(day_hours.len(), 23);
    }

    #[test]
    fn autumn_hours_repeat_with_offsets_in_their_names() {
        let hours = walk(Span::HOUR, "2024-10-26T23:00Z", "2024-10-27T03:00Z", &ams());
        let names: Vec<&str> = hours.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["20241027-0100", "20241027-0200+0200", "20241027-0200+0100", "20241027-0300"]);
        assert!(hours.iter().all(|(_, len)| *len == 60));
        assert_eq!(walk(Span::HOUR, "2024-10-26T22:00Z", "2024-10-27T23:00Z", &ams()).len(), 25);
    }

    #[test]
    fn five_minute_intervals_across_both_transitions() {
        let spring = walk(Span::Minutes(5), "2024-03-31T00:50Z", "2024-03-31T01:10Z", &ams());
        let names: Vec<&str> = spring.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["20240331-0150", "20240331-0155", "20240331-0300", "20240331-0305"]);
        // 288 intervals on a normal day, 276 in spring, 300 in autumn; all 5 minutes long.
        for (day_start, day_end, count) in [
            ("2024-03-29T23:00Z", "2024-03-30T23:00Z", 288),
            ("2024-03-30T23:00Z", "2024-03-31T22:00Z", 276),
            ("2024-10-26T22:00Z", "2024-10-27T23:00Z", 300),
        ] {
            let all = walk(Span::Minutes(5), day_start, day_end, &ams());
            assert_eq!(all.len(), count, "intervals from {day_start}");
            assert!(all.iter().all(|(_, len)| *len == 5));
            let mut names: Vec<&String> = all.iter().map(|(n, _)| n).collect();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), count, "names are unique");
        }
        let autumn = walk(Span::Minutes(5), "2024-10-27T00:50Z", "2024-10-27T01:10Z", &ams());
        let names: Vec<&str> = autumn.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["20241027-0250+0200", "20241027-0255+0200", "20241027-0200+0100", "20241027-0205+0100"]);
    }

    #[test]
    fn two_hour_intervals_are_split_only_by_the_repeated_hour() {
        let autumn = walk(Span::Minutes(120), "2024-10-26T22:00Z", "2024-10-27T05:00Z", &ams());
        assert_eq!(
            autumn,
            [
                ("20241027-0000".into(), 120),
                ("20241027-0200+0200".into(), 60),
                ("20241027-0200+0100".into(), 120),
                ("20241027-0400".into(), 120)
            ]
        );
        let spring = walk(Span::Minutes(120), "2024-03-30T23:00Z", "2024-03-31T04:00Z", &ams());
        assert_eq!(
            spring,
            [("20240331-0000".into(), 120), ("20240331-0200".into(), 60), ("20240331-0400".into(), 120)]
        );
    }

    #[test]
    fn iso_weeks_cross_years_and_dst() {
        let tz = ams();
        let week = Period::containing(Span::Week, ts("2021-01-01T12:00Z"), &tz);
        assert_eq!(week.name(), "2020-W53");
        assert_eq!(week.start, ts("2020-12-27T23:00Z"));
        assert_eq!(week.end, ts("2021-01-03T23:00Z"));
        let week = Period::containing(Span::Week, ts("2024-12-31T12:00Z"), &tz);
        assert_eq!(week.name(), "2025-W01");
        // The week that holds the autumn change is 169 hours long, the spring one 167.
        let autumn = Period::containing(Span::Week, ts("2024-10-27T12:00Z"), &tz);
        assert_eq!((autumn.name().as_str(), autumn.end.duration_since(autumn.start).as_hours()), ("2024-W43", 169));
        let spring = Period::containing(Span::Week, ts("2024-03-31T12:00Z"), &tz);
        assert_eq!((spring.name().as_str(), spring.end.duration_since(spring.start).as_hours()), ("2024-W13", 167));
        // Monday 00:00 local (Sunday 22:00 UTC in summer time) is the first instant of a week.
        assert_eq!(Period::containing(Span::Week, ts("2024-04-07T21:59:59Z"), &tz).name(), "2024-W14");
        assert_eq!(Period::containing(Span::Week, ts("2024-04-07T22:00:00Z"), &tz).name(), "2024-W15");
    }

    #[test]
    fn day_boundary_is_local_midnight() {
        let tz = ams();
        assert_eq!(Period::containing(Span::Day, ts("2024-06-01T21:59:59.999Z"), &tz).name(), "2024-06-01");
        assert_eq!(Period::containing(Span::Day, ts("2024-06-01T22:00:00Z"), &tz).name(), "2024-06-02");
        let utc = TimeZone::UTC;
        assert_eq!(Period::containing(Span::Day, ts("2024-06-01T22:00:00Z"), &utc).name(), "2024-06-01");
    }

    #[test]
    fn names_read_back_into_the_same_period() {
        let tz = ams();
        for (span, at) in [
            (Span::Minutes(5), "2024-10-27T00:57Z"),
            (Span::Minutes(5), "2024-10-27T01:02Z"),
            (Span::Minutes(15), "2024-03-31T01:20Z"),
            (Span::HOUR, "2024-10-27T01:30Z"),
            (Span::Day, "2024-10-27T12:00Z"),
            (Span::Week, "2021-01-01T00:00Z"),
        ] {
            let p = Period::containing(span, ts(at), &tz);
            assert_eq!(Period::parse_name(span, &p.name(), &tz), Some(p), "{}", p.name());
        }
        assert_eq!(Period::parse_name(Span::Minutes(5), "20240331-0203", &tz), None, "not a period start");
        assert_eq!(Period::parse_name(Span::Minutes(5), "nonsense", &tz), None);
        assert_eq!(Period::parse_name(Span::Minutes(5), "20240331-030é", &tz), None, "a character across byte 13");
        assert_eq!(Period::parse_name(Span::Day, "2024-02-30", &tz), None);
    }

    #[test]
    fn labels_carry_the_offset() {
        let tz = ams();
        let first = Period::containing(Span::HOUR, ts("2024-10-27T00:30Z"), &tz);
        let second = first.next(&tz);
        assert_eq!(first.label(&tz), "2024-10-27T02:00+02:00");
        assert_eq!(second.label(&tz), "2024-10-27T02:00+01:00");
    }

    #[test]
    fn interval_spans_are_checked() {
        assert_eq!(Span::interval(5), Span::Minutes(5));
        assert_eq!(Span::interval(1440), Span::Day);
        assert_eq!(Span::interval(7), Span::Day);
    }
}
