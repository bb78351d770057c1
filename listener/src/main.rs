//! `p1-listener`: parses flags, loads `p1.yml`, starts logging and runs the listener or one of its tools.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use p1_listener::cli::{Cli, Command};
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.print_default_config {
        print!("{}", shared::config::DEFAULT_CONFIG);
        return ExitCode::SUCCESS;
    }
    let (config, origin) = match cli.load_config() {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("p1-listener: configuration: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.check_config {
        let m = &config.multicast;
        if let Some(warning) = shared::netif::config_warning(&m.interface) {
            eprintln!("p1-listener: {warning}");
        }
        println!(
            "{origin}: OK (listener '{}', source {}, group {} via {})",
            config.name,
            p1_listener::source::describe(&config.listener.source),
            m.group,
            m.interface
        );
        return ExitCode::SUCCESS;
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();

    let result = match cli.command {
        Some(Command::Parse { path, stats, .. }) => {
            let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr());
            p1_listener::commands::parse(&path, &config, stats, &mut out, &mut err).map(drop).map_err(Into::into)
        }
        Some(Command::Capture { out, timeout, .. }) => runtime().and_then(|rt| {
            rt.block_on(p1_listener::commands::capture(&config, out, Duration::from_secs(timeout))).map(|c| {
                let source = p1_listener::source::describe(&config.listener.source);
                print!("{}", p1_listener::commands::describe(&c, &source));
            })
        }),
        None => runtime().and_then(|rt| {
            rt.block_on(async {
                let shutdown = CancellationToken::new();
                tokio::spawn(p1_listener::cancel_on_signals(shutdown.clone()));
                p1_listener::run(config, shutdown).await
            })
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("p1-listener: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// One thread is plenty for one port and one socket, and keeps the listener small on a Raspberry Pi.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}
