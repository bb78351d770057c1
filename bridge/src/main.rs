//! `p1-bridge`: parses flags, loads `p1.yml`, starts logging and runs the bridge until a signal.

use std::process::ExitCode;

use clap::Parser;
use p1_bridge::cli::Args;
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let args = Args::parse();
    if args.print_default_config {
        print!("{}", shared::config::DEFAULT_CONFIG);
        return ExitCode::SUCCESS;
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only on a terminal: escape codes have no place in a pipe, a file or the journal.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
    let (config, origin) = match args.load() {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("p1-bridge: configuration: {e}");
            return ExitCode::from(2);
        }
    };
    // The password file, the CA and the client certificate are read here, so --check-config reports them too.
    let bridge = match p1_bridge::Bridge::new(&config) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("p1-bridge: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check_config {
        // Like the other programs: an interface that is not on this host (yet) is a warning, not an error.
        if let Some(warning) = shared::netif::config_warning(&config.multicast.interface) {
            eprintln!("p1-bridge: {warning}");
        }
        println!("{origin}: OK ({})", bridge.describe());
        return ExitCode::SUCCESS;
    }
    let result =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(anyhow::Error::from).and_then(
            |rt| {
                rt.block_on(async {
                    let shutdown = CancellationToken::new();
                    tokio::spawn(p1_bridge::cancel_on_signals(shutdown.clone()));
                    bridge.run(shutdown).await.map_err(anyhow::Error::from)
                })
            },
        );
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("p1-bridge: {e:#}");
            ExitCode::from(2)
        }
    }
}
