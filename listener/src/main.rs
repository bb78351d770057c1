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
    // A new key needs no configuration.
    if let Some(Command::Keygen { out }) = &cli.command {
        let (mut stdout, mut stderr) = (std::io::stdout().lock(), std::io::stderr());
        return match p1_listener::commands::keygen(out.as_deref(), &mut stdout, &mut stderr) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("p1-listener: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    let (mut config, origin) = match cli.load_config() {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("p1-listener: configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let key_warnings = match config.read_multicast_keys() {
        Ok(warnings) => warnings,
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
            "{origin}: OK (listener '{}', source {}, group {} via {}, {})",
            config.name,
            p1_listener::source::describe(&config.listener.source),
            m.group,
            m.interface,
            describe_security(m)
        );
        for w in &key_warnings {
            println!("warning: {w}");
        }
        return ExitCode::SUCCESS;
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only for people at a terminal: never into pipes, files or the journal.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
    for w in &key_warnings {
        tracing::warn!("{w}");
    }

    let result = match cli.command {
        Some(Command::Parse { path, stats, .. }) => {
            let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr());
            match p1_listener::commands::parse(&path, &config, stats, &mut out, &mut err) {
                Ok(_) => Ok(()),
                // Not a failure of the tool: the input holds no telegram. Say so, with exit code 1 (like grep).
                Err(e @ p1_listener::commands::ParseError::NothingFound { .. }) => {
                    eprintln!("p1-listener: {e}");
                    return ExitCode::from(1);
                }
                Err(e) => Err(e.into()),
            }
        }
        Some(Command::Capture { out, timeout, .. }) => runtime().and_then(|rt| {
            rt.block_on(p1_listener::commands::capture(&config, out, Duration::from_secs(timeout))).map(|c| {
                let source = p1_listener::source::describe(&config.listener.source);
                print!("{}", p1_listener::commands::describe(&c, &source));
            })
        }),
        Some(Command::Keygen { .. }) => Ok(()),
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

/// Whether datagrams are sealed and with which key ids (never the keys).
fn describe_security(m: &shared::config::Multicast) -> String {
    use shared::config::Security;
    match (m.security, m.keyring()) {
        (Security::Open, _) => "datagrams open (no key set)".to_owned(),
        (Security::Sealed, Some(ring)) => {
            let mut s = format!("datagrams sealed, key set (id {})", ring.current().id());
            if let Some(next) = ring.next() {
                s = format!("{s}, next key set (id {})", next.id());
            }
            if m.accept_open {
                s.push_str(", subscribers also accept open datagrams");
            }
            s
        }
        (Security::Sealed, None) => "datagrams sealed, key not read".to_owned(),
    }
}

/// One thread is plenty for one port and one socket, and keeps the listener small on a Raspberry Pi.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}
