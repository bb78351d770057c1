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
    let (config, origin) = match args.load() {
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
        println!("{origin}: ok");
        return ExitCode::SUCCESS;
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
