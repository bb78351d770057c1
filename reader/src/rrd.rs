//! `RRDtool` files (`reader.rrd`), through the `rrdtool` command: one `RRD` per meter, updated with each minute row.
//!
//! Data sources (step 60 s): `imp_w`, `exp_w` (average power import and export in the minute, W, GAUGE) and the
//! registers `imp_t1`, `imp_t2`, `exp_t1`, `exp_t2` (Wh), `gas`, `water` (litres) as DERIVE (so an `RRD` shows
//! their rate: Wh/s, l/s). Archives, AVERAGE and MAX: 1 min for 2 days, 5 min for 2 weeks, 1 h for 2 years, 1 day
//! for 10 years.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::history::MinuteRow;

/// Data source names, in update order.
pub const SOURCES: [&str; 8] = ["imp_w", "exp_w", "imp_t1", "imp_t2", "exp_t1", "exp_t2", "gas", "water"];
/// (steps per row, rows): 1 min x 2 days, 5 min x 2 weeks, 1 h x 2 years, 1 day x 10 years.
pub const ARCHIVES: [(u32, u32); 4] = [(1, 2880), (5, 4032), (60, 17_520), (1440, 3653)];

/// Why an `RRD` could not be written or drawn.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RrdError {
    /// The command could not run (not installed?).
    #[error("reader.rrd: cannot run rrdtool (install the rrdtool package): {0}")]
    Spawn(#[source] std::io::Error),
    /// rrdtool said no.
    #[error("reader.rrd: rrdtool {what} {path}: {message}")]
    Failed {
        /// The subcommand.
        what: String,
        /// The file.
        path: PathBuf,
        /// rrdtool's message.
        message: String,
    },
    /// A meter name that cannot be a file name.
    #[error("reader.rrd: meter name {0:?} cannot be a file name")]
    Name(String),
}

fn rrdtool(what: &str, path: &Path, args: &[String]) -> Result<String, RrdError> {
    let out = Command::new("rrdtool").arg(what).arg(path).args(args).output().map_err(RrdError::Spawn)?;
    if !out.status.success() {
        return Err(RrdError::Failed {
            what: what.into(),
            path: path.to_owned(),
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The `RRD` directory and the last update time of each file.
#[derive(Clone, Debug)]
pub struct Rrd {
    dir: PathBuf,
    last: HashMap<String, i64>,
    tz: Option<String>,
}

impl Rrd {
    /// `RRDs` in `dir` (created when needed).
    #[must_use]
    pub fn new(dir: PathBuf) -> Rrd {
        Rrd { dir, last: HashMap::new(), tz: None }
    }

    /// Graphs label their time axis in this IANA time zone (`timezone` in `p1.yml`).
    #[must_use]
    pub fn with_tz(mut self, tz: &str) -> Rrd {
        self.tz = Some(tz.to_owned());
        self
    }

    /// The file of `meter`.
    pub fn path(&self, meter: &str) -> Result<PathBuf, RrdError> {
        if meter.is_empty() || meter.contains(['/', '\0']) || meter.starts_with('.') || meter.contains(':') {
            return Err(RrdError::Name(meter.to_owned()));
        }
        Ok(self.dir.join(format!("{meter}.rrd")))
    }

    /// Adds the rows (a minute already in the file, or older, is skipped: an `RRD` only goes forward).
    pub fn update(&mut self, rows: &[MinuteRow]) -> Result<usize, RrdError> {
        let mut per: HashMap<&str, Vec<&MinuteRow>> = HashMap::new();
        for r in rows {
            per.entry(r.meter.as_str()).or_default().push(r);
        }
        let mut n = 0;
        for (meter, mut rows) in per {
            rows.sort_by_key(|r| r.t);
            let path = self.path(meter)?;
            let last = match self.last.get(meter) {
                Some(&l) => l,
                None if path.exists() => rrdtool("last", &path, &[])?.trim().parse().unwrap_or(0),
                None => {
                    std::fs::create_dir_all(&self.dir).map_err(RrdError::Spawn)?;
                    let start = rows.first().map_or(0, |r| r.t);
                    Rrd::create(&path, start)?;
                    start
                }
            };
            let mut args = Vec::new();
            let mut newest = last;
            for r in rows {
                // A minute's values are stamped at its end.
                let at = r.t + 60;
                if at <= newest {
                    continue;
                }
                newest = at;
                let v = |x: Option<String>| x.unwrap_or_else(|| "U".into());
                let mut fields = vec![at.to_string()];
                fields.push(v(r.power_avg(0).map(|w| format!("{w:.1}"))));
                fields.push(v(r.power_avg(1).map(|w| format!("{w:.1}"))));
                fields.extend(r.registers.iter().map(|x| v(x.map(|x| x.to_string()))));
                args.push(fields.join(":"));
            }
            if !args.is_empty() {
                n += args.len();
                rrdtool("update", &path, &args)?;
            }
            self.last.insert(meter.to_owned(), newest);
        }
        Ok(n)
    }

    fn create(path: &Path, start: i64) -> Result<(), RrdError> {
        let mut args = vec!["--step".to_owned(), "60".into(), "--start".into(), start.to_string()];
        for (i, ds) in SOURCES.iter().enumerate() {
            let kind = if i < 2 { "GAUGE" } else { "DERIVE" };
            args.push(format!("DS:{ds}:{kind}:180:0:U"));
        }
        for cf in ["AVERAGE", "MAX"] {
            for (steps, rows) in ARCHIVES {
                args.push(format!("RRA:{cf}:0.5:{steps}:{rows}"));
            }
        }
        rrdtool("create", path, &args).map(|_| ())
    }

    /// Draws the power of `meter` over `span` (`1d`, `1w`, `1m`, `1y`) up to `end` (Unix seconds) into `out` (PNG).
    pub fn graph(&self, meter: &str, span: &str, end: i64, out: &Path) -> Result<(), RrdError> {
        let rrd = self.path(meter)?;
        if !rrd.exists() {
            return Err(RrdError::Failed {
                what: "graph".into(),
                path: rrd,
                message: "no RRD for this meter yet".into(),
            });
        }
        let f = rrd.display().to_string().replace(':', "\\:");
        let args: Vec<String> = [
            "--start".to_owned(),
            format!("end-{span}"),
            "--end".into(),
            end.to_string(),
            "--title".into(),
            format!("{meter}: power (W), last {span}"),
            "--vertical-label".into(),
            "W".into(),
            "--width".into(),
            "800".into(),
            "--height".into(),
            "250".into(),
            "--imgformat".into(),
            "PNG".into(),
            format!("DEF:imp={f}:imp_w:AVERAGE"),
            format!("DEF:exp={f}:exp_w:AVERAGE"),
            format!("DEF:impmax={f}:imp_w:MAX"),
            "CDEF:expneg=exp,-1,*".into(),
            "AREA:imp#d9534f:import".into(),
            "LINE1:impmax#8b1a1a:import max".into(),
            "AREA:expneg#5cb85c:export".into(),
            "GPRINT:imp:AVERAGE:import avg %.0lf W".into(),
            "GPRINT:impmax:MAX:max %.0lf W".into(),
        ]
        .into();
        let out_args: Vec<String> = std::iter::once(out.display().to_string()).chain(args).collect();
        let mut cmd = Command::new("rrdtool");
        if let Some(tz) = &self.tz {
            cmd.env("TZ", tz);
        }
        let status = cmd.arg("graph").args(&out_args).output().map_err(RrdError::Spawn)?;
        if !status.status.success() {
            return Err(RrdError::Failed {
                what: "graph".into(),
                path: out.to_owned(),
                message: String::from_utf8_lossy(&status.stderr).trim().to_owned(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use jiff::{SignedDuration, Timestamp};
    use shared::decimal::Decimal;

    use super::*;
    use crate::history::Minutes;
    use crate::testutil::{telegram, tempdir};

    /// Three hours of a telegram every 10 s: 1 200 W import, the tariff 1 register counting 1 Wh per telegram
    /// (360 Wh an hour = 0.1 Wh/s), gas 1 litre a minute.
    fn rows(from: Timestamp) -> Vec<MinuteRow> {
        let mut m = Minutes::default();
        let mut out = Vec::new();
        for i in 0..3 * 360 {
            let at = from + SignedDuration::from_secs(i * 10);
            let mut t = telegram("meterkast", "b", i as u64 + 1, "2026-01-01T00:00:00Z");
            t.values.power_import_kw = Some(Decimal::new(1200, 3));
            t.values.power_export_kw = Some(Decimal::new(0, 3));
            t.values.energy_import_t1_kwh = Some(Decimal::new(1_000_000 + i, 3));
            t.values.gas_m3 = Some(Decimal::new(50_000 + i / 6, 3));
            m.add(&t, at, at, &mut out);
        }
        m.close_all(&mut out);
        out
    }

    #[test]
    fn rrdtool_info_and_fetch_show_the_sources_archives_and_values() {
        let dir = tempdir();
        let mut rrd = Rrd::new(dir.path().join("rrd")).with_tz("Europe/Amsterdam");
        let from: Timestamp = "2026-06-01T10:00:00Z".parse().expect("t");
        let rows = rows(from);
        assert_eq!(rrd.update(&rows[..90]).expect("update"), 90);
        // A restart: the same minutes again are skipped, the new ones added (with a fresh Rrd reading `last`).
        let mut again = Rrd::new(dir.path().join("rrd"));
        assert_eq!(again.update(&rows[80..]).expect("update"), 90);
        let path = rrd.path("meterkast").expect("path");
        let info = rrdtool("info", &path, &[]).expect("info");
        for ds in SOURCES {
            assert!(info.contains(&format!("ds[{ds}].index")), "{ds} missing: {info}");
        }
        assert!(info.contains("step = 60"));
        for (i, (steps, rows)) in ARCHIVES.iter().enumerate() {
            assert!(info.contains(&format!("rra[{i}].pdp_per_row = {steps}")), "{info}");
            assert!(info.contains(&format!("rra[{i}].rows = {rows}")), "{info}");
        }
        assert!(info.contains("ds[imp_t1].type = \"DERIVE\"") && info.contains("ds[imp_w].type = \"GAUGE\""));
        let last = (from + SignedDuration::from_hours(3)).as_second();
        assert!(info.contains(&format!("last_update = {last}")), "{info}");
        // Minute averages of the last hour: 1200 W; tariff 1 at 6 Wh a minute = 0.1 Wh/s; gas 1 l/min.
        let fetch = rrdtool(
            "fetch",
            &path,
            &[
                "AVERAGE".into(),
                "-r".into(),
                "60".into(),
                "-s".into(),
                (last - 3600).to_string(),
                "-e".into(),
                (last - 60).to_string(),
            ],
        )
        .expect("fetch");
        let mut seen = 0;
        for line in fetch.lines().filter(|l| l.contains(": ")) {
            let v: Vec<f64> = line.split_whitespace().skip(1).map(|x| x.parse().unwrap_or(f64::NAN)).collect();
            assert!((v[0] - 1200.0).abs() < 1e-6, "imp_w: {line}");
            assert!((v[2] - 0.1).abs() < 1e-9, "imp_t1 Wh/s: {line}");
            assert!((v[6] - 1.0 / 60.0).abs() < 1e-9, "gas l/s: {line}");
            seen += 1;
        }
        assert!(seen >= 59, "{fetch}");
        // A graph: a PNG (looked at by hand: docs/rrd-graph.png).
        let png = dir.path().join("g.png");
        let e = rrd.graph("nobody", "1d", last, &png).expect_err("no RRD");
        assert!(e.to_string().contains("no RRD for this meter"), "{e}");
        rrd.graph("meterkast", "1d", last, &png).expect("graph");
        if let Ok(keep) = std::env::var("P1_RRD_PNG") {
            std::fs::copy(&png, keep).expect("keep the PNG");
        }
        let bytes = std::fs::read(&png).expect("png");
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 2000);
        assert!(matches!(rrd.path("../x"), Err(RrdError::Name(_))));
    }
}
