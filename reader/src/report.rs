//! `p1-reader report` (usage and cost per day, week, month or year from the daily rows) and `p1-reader import`
//! (the history database filled from existing details files).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use jiff::civil::Date;
use shared::config::Prices;
use shared::wire::Message;

use crate::history::{Db, HistoryError, MinuteRow, Minutes, Mode, BATCH_ROWS};

/// How the days are grouped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Per {
    /// One line per day, the last 31 days.
    #[default]
    Day,
    /// Per ISO week, the last 13 weeks.
    Week,
    /// Per month, the last 13 months.
    Month,
    /// Per year, all of them.
    Year,
}

/// Output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns.
    #[default]
    Table,
    /// CSV with a header.
    Csv,
    /// A JSON array.
    Json,
}

/// Why a report or an import failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The database.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// No database file yet.
    #[error("reader.database: sqlite:{0}: no history database there yet (the reader creates it)")]
    Missing(PathBuf),
    /// A query failed.
    #[error("reader.database: reading the history failed: {0}")]
    Query(#[from] rusqlite::Error),
    /// A details file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// One line of a report: the sums of the daily rows of a period and meter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Line {
    /// `2026-12-06`, `2026-W49`, `2026-12` or `2026`.
    pub period: String,
    /// The listener's name.
    pub meter: String,
    /// Days with data.
    pub days: i64,
    /// Wh imported on tariffs 1 and 2, exported on tariffs 1 and 2; litres of gas and water.
    pub totals: [i64; 6],
}

impl Line {
    /// The cost in millionths: energy by tariff (export paid back), gas, water and the standing charge per day.
    #[must_use]
    pub fn cost_micro(&self, p: &Prices) -> i64 {
        let prices = [p.import_t1, p.import_t2, -p.export_t1, -p.export_t2, p.gas_m3, p.water_m3];
        // Thousandths times millionths per unit: billionths; rounded to millionths.
        let nano: i128 = self.totals.iter().zip(prices).map(|(&q, pr)| i128::from(q) * i128::from(pr)).sum();
        let micro = (nano + nano.signum() * 500) / 1000;
        i64::try_from(micro).unwrap_or(i64::MAX) + self.days * p.standing_per_day
    }
}

fn thousandths(x: i64) -> String {
    let sign = if x < 0 { "-" } else { "" };
    format!("{sign}{}.{:03}", (x / 1000).abs(), (x % 1000).abs())
}

fn money(micro: i64) -> String {
    // Rounded to cents.
    let cents = (micro + micro.signum() * 5000) / 10_000;
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", (cents / 100).abs(), (cents % 100).abs())
}

fn key(per: Per, day: Date) -> String {
    match per {
        Per::Day => day.to_string(),
        Per::Week => {
            let w = day.iso_week_date();
            format!("{:04}-W{:02}", w.year(), w.week())
        }
        Per::Month => format!("{:04}-{:02}", day.year(), day.month()),
        Per::Year => format!("{:04}", day.year()),
    }
}

/// The first day a report of `per` covers when today is `today`.
fn since(per: Per, today: Date) -> Date {
    let back = match per {
        Per::Day => jiff::Span::new().days(30),
        Per::Week => jiff::Span::new().weeks(12),
        Per::Month => jiff::Span::new().months(12),
        Per::Year => jiff::Span::new().years(100),
    };
    let d = today.checked_sub(back).unwrap_or(Date::MIN);
    match per {
        Per::Day => d,
        Per::Week => d.iso_week_date().first_of_week().map_or(d, jiff::civil::ISOWeekDate::date),
        Per::Month => d.first_of_month(),
        Per::Year => d.first_of_year(),
    }
}

/// Sums the daily rows per period and meter, from the period that holds `today` back.
pub fn lines(db: &Db, per: Per, meter: Option<&str>, today: Date) -> Result<Vec<Line>, ReportError> {
    let from = since(per, today).to_string();
    let mut stmt = db.conn().prepare(
        "SELECT d.day, m.name, coalesce(d.import_t1_wh, 0), coalesce(d.import_t2_wh, 0), coalesce(d.export_t1_wh, 0), \
         coalesce(d.export_t2_wh, 0), coalesce(d.gas_l, 0), coalesce(d.water_l, 0) \
         FROM day d JOIN meter m ON m.id = d.meter_id WHERE d.day >= ?1 AND (?2 IS NULL OR m.name = ?2) \
         ORDER BY d.day, m.name",
    )?;
    let mut out: BTreeMap<(String, String), Line> = BTreeMap::new();
    let mut rows = stmt.query(rusqlite::params![from, meter])?;
    while let Some(r) = rows.next()? {
        let day: String = r.get(0)?;
        let Ok(date) = day.parse::<Date>() else { continue };
        let name: String = r.get(1)?;
        let k = key(per, date);
        let line =
            out.entry((k.clone(), name.clone())).or_insert_with(|| Line { period: k, meter: name, ..Line::default() });
        line.days += 1;
        for (i, t) in line.totals.iter_mut().enumerate() {
            *t += r.get::<_, i64>(i + 2)?;
        }
    }
    Ok(out.into_values().collect())
}

const HEADER: [&str; 12] = [
    "period",
    "meter",
    "days",
    "import_t1_kwh",
    "import_t2_kwh",
    "export_t1_kwh",
    "export_t2_kwh",
    "import_kwh",
    "export_kwh",
    "net_kwh",
    "gas_m3",
    "water_m3",
];

/// The report as text.
#[must_use]
pub fn render(lines: &[Line], prices: &Prices, format: Format) -> String {
    let rows: Vec<Vec<String>> = lines
        .iter()
        .map(|l| {
            let [t1, t2, e1, e2, gas, water] = l.totals;
            let mut row = vec![l.period.clone(), l.meter.clone(), l.days.to_string()];
            row.extend([t1, t2, e1, e2, t1 + t2, e1 + e2, t1 + t2 - e1 - e2, gas, water].map(thousandths));
            row.push(money(l.cost_micro(prices)));
            row
        })
        .collect();
    let mut header: Vec<&str> = HEADER.to_vec();
    header.push("cost");
    let mut s = String::new();
    match format {
        Format::Csv => {
            let _ = writeln!(s, "{}", header.join(","));
            for r in &rows {
                let _ = writeln!(
                    s,
                    "{}",
                    r.iter()
                        .map(|f| if f.contains([',', '"', '\n']) {
                            format!("\"{}\"", f.replace('"', "\"\""))
                        } else {
                            f.clone()
                        })
                        .collect::<Vec<_>>()
                        .join(",")
                );
            }
        }
        Format::Json => {
            let list: Vec<serde_json::Value> = rows
                .iter()
                .map(|r| {
                    let mut o = serde_json::Map::new();
                    for (i, (h, v)) in header.iter().zip(r).enumerate() {
                        let value = if i < 2 {
                            serde_json::Value::String(v.clone())
                        } else {
                            // Numbers with their exact decimals.
                            serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.clone()))
                        };
                        o.insert((*h).to_owned(), value);
                    }
                    serde_json::Value::Object(o)
                })
                .collect();
            s = serde_json::to_string_pretty(&list).unwrap_or_default();
            s.push('\n');
        }
        Format::Table => {
            let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
            for r in &rows {
                for (w, f) in widths.iter_mut().zip(r) {
                    *w = (*w).max(f.chars().count());
                }
            }
            let mut line = |fields: &[String]| {
                let cells: Vec<String> = fields
                    .iter()
                    .zip(&widths)
                    .enumerate()
                    .map(|(i, (f, w))| if i < 2 { format!("{f:<w$}") } else { format!("{f:>w$}") })
                    .collect();
                let _ = writeln!(s, "{}", cells.join("  ").trim_end());
            };
            line(&header.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>());
            for r in &rows {
                line(r);
            }
        }
    }
    s
}

/// Opens the database for a report: it must exist.
pub fn open_existing(path: &Path, tz: jiff::tz::TimeZone) -> Result<Db, ReportError> {
    if !path.exists() {
        return Err(ReportError::Missing(path.to_owned()));
    }
    Ok(Db::open(path, tz)?)
}

/// What an import did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Imported {
    /// Details files read.
    pub files: usize,
    /// Telegrams read.
    pub telegrams: u64,
    /// Lines that were not telegram messages (skipped).
    pub skipped: u64,
    /// Minute rows offered (minutes already in the database are kept as they are).
    pub minutes: u64,
}

fn details_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if p.is_dir() {
            details_files(&p, out)?;
        } else if name.to_ascii_lowercase().ends_with(".jsonl") || name.to_ascii_lowercase().ends_with(".jsonl.gz") {
            out.push(p);
        }
    }
    Ok(())
}

/// Reads every details file under `dir` (`*.jsonl`, `*.jsonl.gz`, in name order per directory) into `db`.
pub fn import(db: &mut Db, dir: &Path) -> Result<Imported, ReportError> {
    let mut files = Vec::new();
    details_files(dir, &mut files).map_err(|source| ReportError::Read { path: dir.to_owned(), source })?;
    let mut done = Imported::default();
    let mut minutes = Minutes::default();
    let mut rows: Vec<MinuteRow> = Vec::new();
    for path in files {
        let read_err = |source| ReportError::Read { path: path.clone(), source };
        let file = std::fs::File::open(&path).map_err(read_err)?;
        let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
            Box::new(flate2::read::MultiGzDecoder::new(file))
        } else {
            Box::new(file)
        };
        done.files += 1;
        for line in BufReader::new(reader).split(b'\n') {
            let line = line.map_err(|source| ReportError::Read { path: path.clone(), source })?;
            match shared::wire::parse(&line) {
                Ok(Message::Telegram(t)) => {
                    done.telegrams += 1;
                    minutes.add(&t, t.received_at, t.received_at, &mut rows);
                }
                Ok(_) => {}
                Err(_) => done.skipped += u64::from(!line.is_empty()),
            }
            if rows.len() >= BATCH_ROWS {
                done.minutes += rows.len() as u64;
                db.write(&rows, Mode::KeepExisting)?;
                rows.clear();
            }
        }
    }
    minutes.close_all(&mut rows);
    done.minutes += rows.len() as u64;
    db.write(&rows, Mode::KeepExisting)?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use jiff::tz::TimeZone;
    use jiff::{SignedDuration, Timestamp};
    use shared::decimal::Decimal;
    use shared::wire::{encode, TelegramMessage};

    use super::*;
    use crate::testutil::{telegram, tempdir};

    /// Every 10 s for `hours` from `from`: 1 Wh on the tariff of the hour (1 at night), 0.5 Wh export at noon
    /// hours, 1 litre of gas per 10 minutes.
    fn telegrams(from: &str, hours: i64) -> Vec<TelegramMessage> {
        let start: Timestamp = from.parse().expect("t");
        let tz = TimeZone::get("Europe/Amsterdam").expect("tz");
        let (mut t1, mut t2, mut e2, mut gas) = (5_000_000_i64, 7_000_000_i64, 0_i64, 100_000_i64);
        (0..hours * 360)
            .map(|i| {
                let at = start + SignedDuration::from_secs(i * 10);
                let h = at.to_zoned(tz.clone()).hour();
                if (7..23).contains(&h) {
                    t2 += 1;
                } else {
                    t1 += 1;
                }
                if (11..14).contains(&h) && i % 2 == 0 {
                    e2 += 1;
                }
                if i % 60 == 0 {
                    gas += 1;
                }
                let mut m = telegram("meterkast", "boot", i as u64 + 1, "2026-01-01T00:00:00Z");
                m.received_at = at;
                m.values.energy_import_t1_kwh = Some(Decimal::new(t1, 3));
                m.values.energy_import_t2_kwh = Some(Decimal::new(t2, 3));
                m.values.energy_export_t1_kwh = Some(Decimal::new(0, 3));
                m.values.energy_export_t2_kwh = Some(Decimal::new(e2, 3));
                m.values.gas_m3 = Some(Decimal::new(gas, 3));
                m
            })
            .collect()
    }

    fn prices() -> Prices {
        Prices {
            import_t1: 200_000,
            import_t2: 300_000,
            export_t1: 0,
            export_t2: 100_000,
            gas_m3: 1_500_000,
            water_m3: 0,
            standing_per_day: 1_000_000,
        }
    }

    /// Writes the telegrams as details files (the second day gzipped), imports them, and returns the database.
    fn imported(dir: &Path) -> (Db, Imported) {
        let details = dir.join("data/meterkast/details");
        std::fs::create_dir_all(&details).expect("mkdir");
        // From local midnight 2026-06-01 (22:00 UTC the day before) for two days and one minute.
        let all = telegrams("2026-05-31T22:00:00Z", 48);
        let (a, b) = all.split_at(all.len() / 2);
        let text = |ms: &[TelegramMessage]| {
            let mut v = Vec::new();
            for m in ms {
                v.extend(encode(&Message::Telegram(Box::new(m.clone()))));
                v.push(b'\n');
            }
            v
        };
        std::fs::write(details.join("2026-06-01.jsonl"), [text(a), b"not json\n".to_vec()].concat()).expect("write");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &text(b)).expect("gzip");
        std::fs::write(details.join("2026-06-02.jsonl.gz"), gz.finish().expect("gzip")).expect("write");
        let mut db = Db::open(&dir.join("h.sqlite"), TimeZone::get("Europe/Amsterdam").expect("tz")).expect("open");
        let done = import(&mut db, &dir.join("data")).expect("import");
        (db, done)
    }

    #[test]
    fn import_fills_the_database_from_details_files_once() {
        let dir = tempdir();
        let (mut db, done) = imported(dir.path());
        assert_eq!(done, Imported { files: 2, telegrams: 48 * 360, skipped: 1, minutes: 48 * 60 });
        let count = |db: &Db| -> i64 {
            db.conn().query_row("SELECT sum(telegrams) FROM minute", [], |r| r.get(0)).expect("count")
        };
        assert_eq!(count(&db), 48 * 360);
        // Again: nothing is counted twice.
        let again = import(&mut db, &dir.path().join("data")).expect("import");
        assert_eq!(again.telegrams, 48 * 360);
        assert_eq!(count(&db), 48 * 360);
    }

    #[test]
    fn a_report_per_day_and_month_gives_usage_export_net_gas_and_cost() {
        let dir = tempdir();
        let (db, _) = imported(dir.path());
        let today: Date = "2026-06-02".parse().expect("date");
        let days = lines(&db, Per::Day, None, today).expect("report");
        let csv = render(&days, &prices(), Format::Csv);
        // Day 1 counts from the end of its first minute (the readings then: 6 telegrams in).
        // Night hours 00-07 and 23-24: 8 h x 360 Wh, less the first minute's 6; day hours 16 h x 360 Wh.
        // Export: 11-14 h, 180 per hour. Gas: 1 litre per 10 minutes, 144 a day, less the first minute's 1.
        // Cost day 1: 2.874 kWh x 0.2 + 5.760 x 0.3 - 0.540 x 0.1 + 0.143 m3 x 1.5 + 1 = 3.4633 -> 3.46; day 2:
        // 0.576 + 1.728 - 0.054 + 0.216 + 1 = 3.466 -> 3.47.
        assert_eq!(
            csv,
            "period,meter,days,import_t1_kwh,import_t2_kwh,export_t1_kwh,export_t2_kwh,import_kwh,export_kwh,net_kwh,\
             gas_m3,water_m3,cost\n\
             2026-06-01,meterkast,1,2.874,5.760,0.000,0.540,8.634,0.540,8.094,0.143,0.000,3.46\n\
             2026-06-02,meterkast,1,2.880,5.760,0.000,0.540,8.640,0.540,8.100,0.144,0.000,3.47\n"
        );
        let month = lines(&db, Per::Month, Some("meterkast"), today).expect("report");
        assert_eq!(month.len(), 1);
        assert_eq!(month[0].totals, [5754, 11520, 0, 1080, 287, 0]);
        // 1.1508 + 3.456 - 0.108 + 0.4305 + 2 = 6.9293.
        assert_eq!(money(month[0].cost_micro(&prices())), "6.93");
        let json: serde_json::Value = serde_json::from_str(&render(&month, &prices(), Format::Json)).expect("json");
        assert_eq!(json[0]["period"], "2026-06");
        assert_eq!(json[0]["net_kwh"].to_string(), "16.194");
        assert!(lines(&db, Per::Week, Some("other"), today).expect("report").is_empty());
        let table = render(&days, &prices(), Format::Table);
        assert!(table.lines().nth(1).is_some_and(|l| l.starts_with("2026-06-01  meterkast")), "{table}");
    }

    #[test]
    fn money_and_quantities_are_exact_decimals() {
        assert_eq!(thousandths(-1500), "-1.500");
        assert_eq!(thousandths(7), "0.007");
        assert_eq!(money(3_439_800), "3.44");
        assert_eq!(money(-5_000), "-0.01");
        assert_eq!(since(Per::Month, "2026-06-15".parse().expect("d")).to_string(), "2025-06-01");
        assert_eq!(key(Per::Week, "2026-01-01".parse().expect("d")), "2026-W01");
    }
}
