//! `p1-dashboard`: parse the flags, load the configuration, start logging, run the dashboard.

use std::process::ExitCode;

use clap::Parser as _;
use p1_dashboard::cli::Args;
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let args = Args::parse();
    if args.print_default_config {
        print!("{}", shared::config::DEFAULT_CONFIG);
        return ExitCode::SUCCESS;
    }
    let (config, origin, warnings) = match args.load_config_with_warnings() {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("p1-dashboard: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check_config {
        if let Some(warning) = shared::netif::config_warning(&config.multicast.interface) {
            eprintln!("p1-dashboard: {warning}");
        }
        println!(
            "p1-dashboard: configuration ok ({origin}; {})",
            p1hub_subscriber::describe_security(&config.multicast)
        );
        for w in &warnings {
            println!("warning: {w}");
        }
        return ExitCode::SUCCESS;
    }
    // The terminal is about to belong to the dashboard: say it on stderr now, and in the log.
    for w in &warnings {
        eprintln!("p1-dashboard: warning: {w}");
    }
    if let Err(e) = p1_dashboard::init_logging(args.log.as_deref()) {
        eprintln!("p1-dashboard: {e:#}");
        return ExitCode::from(2);
    }
    for w in &warnings {
        tracing::warn!("{w}");
    }
    // One thread is plenty: the dashboard waits on three sources and draws; it never computes in parallel.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("p1-dashboard: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(p1_dashboard::cancel_on_signal(shutdown.clone()));
        p1_dashboard::start(&config, shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("p1-dashboard: {e:#}");
            ExitCode::FAILURE
        }
    }
}
