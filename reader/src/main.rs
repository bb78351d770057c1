//! `p1-reader`: parses flags, loads the configuration, starts logging and runs the reader until a signal.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use p1_reader::cli::{shutdown_signal, Args, Command};
use p1_reader::history::{Db, HistoryError, Target};
use p1_reader::report::{self, Format, Per};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let args = Args::parse();
    if args.print_default_config {
        print!("{}", shared::config::DEFAULT_CONFIG);
        return ExitCode::SUCCESS;
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let (config, origin, warnings) = match args.load() {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("p1-reader: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check_config {
        if let Some(warning) = shared::netif::config_warning(&config.multicast.interface) {
            eprintln!("p1-reader: {warning}");
        }
        println!("{origin}: ok ({})", p1hub_subscriber::describe_security(&config.multicast));
        for w in &warnings {
            println!("warning: {w}");
        }
        return ExitCode::SUCCESS;
    }
    for w in &warnings {
        tracing::warn!("{w}");
    }
    if let Some(command) = &args.command {
        return match history_command(command, &config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("p1-reader: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    let result = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(p1_reader::run(config, shutdown_signal())).map_err(anyhow::Error::from));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("p1-reader: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// `report` and `import`: one pass over the history database.
fn history_command(command: &Command, config: &shared::config::Config) -> anyhow::Result<()> {
    if let Command::Graph { meter, week, month, year, out, .. } = command {
        return graph(config, meter.as_deref(), (*week, *month, *year), out.as_deref());
    }
    let path = match Target::of(&config.reader) {
        Target::Sqlite(path) => path,
        Target::Off => return Err(HistoryError::Off.into()),
        Target::Postgres(_) => return Err(HistoryError::PostgresUnsupported.into()),
    };
    let tz = config.timezone.clone();
    match command {
        Command::Report { week, month, year, meter, csv, json, .. } => {
            let per = if *week {
                Per::Week
            } else if *month {
                Per::Month
            } else if *year {
                Per::Year
            } else {
                Per::Day
            };
            let format = if *csv {
                Format::Csv
            } else if *json {
                Format::Json
            } else {
                Format::Table
            };
            let db = report::open_existing(&path, tz.clone())?;
            let today = jiff::Timestamp::now().to_zoned(tz).date();
            let lines = report::lines(&db, per, meter.as_deref(), today)?;
            print!("{}", report::render(&lines, &config.reader.prices, format));
        }
        Command::Graph { .. } => {}
        Command::Import { dir } => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
            }
            let mut db = Db::open(&path, tz)?;
            let done = report::import(&mut db, dir)?;
            println!(
                "{}: {} files, {} telegrams, {} minute rows offered (minutes already there kept), {} lines skipped",
                path.display(),
                done.files,
                done.telegrams,
                done.minutes,
                done.skipped
            );
        }
    }
    Ok(())
}

/// `graph`: one PNG from a meter's `RRD`.
fn graph(
    config: &shared::config::Config,
    meter: Option<&str>,
    (week, month, year): (bool, bool, bool),
    out: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let dir = config.reader.dir.join("rrd");
    let meter = if let Some(m) = meter {
        m.to_owned()
    } else {
        let names: Vec<String> = std::fs::read_dir(&dir)
            .with_context(|| format!("reader.rrd: no RRDs in {}", dir.display()))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok()?.strip_suffix(".rrd").map(str::to_owned))
            .collect();
        match names.as_slice() {
            [one] => one.clone(),
            _ => anyhow::bail!("reader.rrd: {} RRDs in {}; choose one with --meter", names.len(), dir.display()),
        }
    };
    let (span, name) = if week {
        ("1w", "week")
    } else if month {
        ("1m", "month")
    } else if year {
        ("1y", "year")
    } else {
        ("1d", "day")
    };
    let out = out.map_or_else(|| std::path::PathBuf::from(format!("{meter}-{name}.png")), std::path::Path::to_owned);
    p1_reader::rrd::Rrd::new(dir).with_tz(&config.timezone_name).graph(
        &meter,
        span,
        jiff::Timestamp::now().as_second(),
        &out,
    )?;
    println!("{}", out.display());
    Ok(())
}
