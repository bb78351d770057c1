//! `p1-reader`: parses flags, loads the configuration, starts logging and runs the reader until a signal.

use std::process::ExitCode;

use clap::Parser;
use p1_reader::cli::{shutdown_signal, Args};
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
