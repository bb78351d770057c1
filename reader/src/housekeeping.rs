//! Compression and removal of closed files.
//!
//! [`plan`] looks at one listener's directory and lists what to do; [`execute`] does one action. A file is
//! *closed* when its period ended before the current local day began (so a loader has until midnight to pick up
//! a plain interval file) and the store does not hold it open. Compression writes `NAME.gz.partial`, syncs it,
//! renames it to `NAME.gz` and only then removes `NAME`, so a crash at any point leaves either the plain file or a
//! complete `.gz` (a leftover `.gz.partial` is removed, a plain file beside its `.gz` is removed). Retention
//! removes files whose period ended more than the kind's [`Retention`] days before today began. Files whose names
//! are not ours are never touched.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::linefile::{rename_durable, sync_dir};
use crate::period::{Period, Span};

/// One thing to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Gzip this file and remove it.
    Compress(PathBuf),
    /// Remove this file.
    Delete(PathBuf),
}

/// How many days each kind of closed file is kept (`None`: forever).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    /// Every kind (`reader.retention_days`).
    pub all: Option<u32>,
    /// Details files (`reader.details_retention_days`), if shorter.
    pub details: Option<u32>,
    /// Interval CSV files (`reader.interval_retention_days`), if shorter.
    pub interval: Option<u32>,
}

impl Retention {
    /// The days kept of the files under `kind` (`details`, `interval`, `day`, `weekly`): the shorter limit.
    #[must_use]
    pub fn days(&self, kind: &str) -> Option<u32> {
        let own = match kind {
            "details" => self.details,
            "interval" => self.interval,
            _ => None,
        };
        [self.all, own].into_iter().flatten().min()
    }

    /// Whether any file is ever removed.
    #[must_use]
    pub fn any(&self) -> bool {
        self.all.is_some() || self.details.is_some() || self.interval.is_some()
    }
}

/// The kinds of file the reader keeps: directory, extension, and the span of one file.
#[must_use]
pub fn kinds(interval: Span) -> [(&'static str, &'static str, Span); 4] {
    [
        ("details", "jsonl", Span::Day),
        ("day", "csv", Span::Day),
        ("interval", "csv", interval),
        ("weekly", "log", Span::Week),
    ]
}

/// What to do in `listener_dir` at `now`. `open` lists the files the store holds open.
#[must_use]
pub fn plan(
    listener_dir: &Path,
    interval: Span,
    tz: &TimeZone,
    now: Timestamp,
    compress: bool,
    retention: Retention,
    open: &[PathBuf],
) -> Vec<Action> {
    let today = Period::containing(Span::Day, now, tz);
    let cutoff_for = |days: u32| {
        let date =
            today.civil.date().checked_sub(jiff::Span::new().days(i64::from(days))).unwrap_or(today.civil.date());
        tz.to_ambiguous_timestamp(date.to_datetime(jiff::civil::Time::midnight())).compatible().unwrap_or(today.start)
    };
    let mut actions = Vec::new();
    for (sub, ext, span) in kinds(interval) {
        let cutoff = retention.days(sub).map(cutoff_for);
        let Ok(entries) = fs::read_dir(listener_dir.join(sub)) else { continue };
        let mut names: Vec<String> = entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect();
        names.sort();
        for name in names {
            let path = listener_dir.join(sub).join(&name);
            if name.ends_with(".gz.partial") {
                actions.push(Action::Delete(path));
                continue;
            }
            let (plain, gz) = match name.strip_suffix(".gz") {
                Some(p) => (p, true),
                None => (name.as_str(), false),
            };
            let Some(stem) = plain.strip_suffix(&format!(".{ext}")) else { continue };
            // A file set aside after a column change is `NAME~N.csv`.
            let base = stem.split_once('~').map_or(stem, |(b, n)| if n.parse::<u32>().is_ok() { b } else { stem });
            let Some(period) = Period::parse_name(span, base, tz) else { continue };
            if open.contains(&path) {
                continue;
            }
            if cutoff.is_some_and(|c| period.end <= c) {
                actions.push(Action::Delete(path));
            } else if compress && !gz && period.end <= today.start {
                actions.push(Action::Compress(path));
            }
        }
    }
    actions
}

/// Does one action.
pub fn execute(action: &Action) -> io::Result<()> {
    match action {
        Action::Delete(path) => match fs::remove_file(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        },
        Action::Compress(path) => compress(path),
    }
}

fn compress(path: &Path) -> io::Result<()> {
    let gz = with_suffix(path, ".gz");
    if !gz.exists() {
        let tmp = with_suffix(path, ".gz.partial");
        let result = (|| {
            let mut input = File::open(path)?;
            let mut encoder = flate2::write::GzEncoder::new(File::create(&tmp)?, flate2::Compression::default());
            io::copy(&mut input, &mut encoder)?;
            encoder.finish()?;
            rename_durable(&tmp, &gz)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result?;
    }
    fs::remove_file(path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn touch(dir: &Path, rel: &str, text: &str) -> PathBuf {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn closed_files_are_compressed_and_old_ones_removed() {
        let tz = TimeZone::get("Europe/Amsterdam").expect("tzdb");
        let dir = crate::testutil::tempdir();
        let d = dir.path();
        let old = touch(d, "details/2024-03-20.jsonl", "{}\n");
        let old_gz = touch(d, "day/2024-03-19.csv.gz", "x");
        let yesterday = touch(d, "details/2024-03-30.jsonl", "{\"a\":1}\n");
        let today = touch(d, "details/2024-03-31.jsonl", "{}\n");
        let interval = touch(d, "interval/20240330-2355.csv", "time\n");
        let set_aside = touch(d, "day/2024-03-30~1.csv", "time\n");
        let partial = touch(d, "interval/20240331-0100.csv.partial", "time\n");
        let leftover = touch(d, "day/2024-03-29.csv.gz.partial", "");
        let week = touch(d, "weekly/2024-W12.log", "# x\n");
        let foreign = touch(d, "details/notes.txt", "mine");
        let held_open = touch(d, "day/2024-03-30.csv", "time\n");
        let now: Timestamp = "2024-03-31T10:00:00Z".parse().expect("ts");
        let week_only = Retention { all: Some(7), ..Retention::default() };
        let actions = plan(d, Span::Minutes(5), &tz, now, true, week_only, std::slice::from_ref(&held_open));
        assert_eq!(
            actions,
            [
                Action::Delete(old.clone()),
                Action::Compress(yesterday.clone()),
                Action::Delete(old_gz),
                Action::Delete(leftover),
                Action::Compress(set_aside),
                Action::Compress(interval),
                Action::Compress(week),
            ]
        );
        for a in &actions {
            execute(a).expect("done");
        }
        assert!(!old.exists() && !yesterday.exists());
        let mut text = String::new();
        flate2::read::GzDecoder::new(File::open(with_suffix(&yesterday, ".gz")).expect("gz"))
            .read_to_string(&mut text)
            .expect("gunzip");
        assert_eq!(text, "{\"a\":1}\n");
        assert!(today.exists() && partial.exists() && foreign.exists() && held_open.exists());
        // Nothing left to do; without compression or retention, nothing at all.
        assert_eq!(plan(d, Span::Minutes(5), &tz, now, true, week_only, std::slice::from_ref(&held_open)), []);
        assert_eq!(plan(d, Span::Minutes(5), &tz, now, false, Retention::default(), &[]), []);
    }

    #[test]
    fn details_and_interval_files_have_their_own_shorter_retention() {
        let tz = TimeZone::get("Europe/Amsterdam").expect("tzdb");
        let dir = crate::testutil::tempdir();
        let d = dir.path();
        // Today is 2024-06-30; 7 days before it began is 2024-06-23, 90 days 2024-04-01.
        let details_old = touch(d, "details/2024-03-31.jsonl.gz", "x");
        let details_kept = touch(d, "details/2024-04-01.jsonl.gz", "x");
        let interval_old = touch(d, "interval/20240622-2355.csv.gz", "x");
        let interval_kept = touch(d, "interval/20240623-0000.csv.gz", "x");
        let day_ancient = touch(d, "day/2019-01-01.csv.gz", "x");
        let week_ancient = touch(d, "weekly/2019-W01.log.gz", "x");
        let now: Timestamp = "2024-06-30T10:00:00Z".parse().expect("ts");
        let defaults = Retention { all: None, details: Some(90), interval: Some(7) };
        let actions = plan(d, Span::Minutes(5), &tz, now, true, defaults, &[]);
        assert_eq!(actions, [Action::Delete(details_old), Action::Delete(interval_old)]);
        assert!(details_kept.exists() && interval_kept.exists() && day_ancient.exists() && week_ancient.exists());
        // A shorter limit for every kind wins over a kind's longer one.
        let short = Retention { all: Some(3), details: Some(90), interval: None };
        assert_eq!(short.days("details"), Some(3));
        assert_eq!(short.days("interval"), Some(3));
        assert_eq!(defaults.days("day"), None);
        assert!(defaults.any() && !Retention::default().any());
    }

    #[test]
    fn a_plain_file_beside_its_gzip_is_removed() {
        let dir = crate::testutil::tempdir();
        let plain = touch(dir.path(), "day/2024-03-01.csv", "time\n");
        let gz = touch(dir.path(), "day/2024-03-01.csv.gz", "complete");
        execute(&Action::Compress(plain.clone())).expect("done");
        assert!(!plain.exists());
        assert_eq!(fs::read_to_string(gz).expect("kept"), "complete");
    }
}
