//! `mcp-webrtc`: any stdio MCP server reachable over WebRTC, no code.
//!
//! - `mcp-webrtc serve [options] -- COMMAND [ARGS…]` runs the stdio MCP
//!   server `COMMAND` for each WebRTC session and bridges the two.
//! - `mcp-webrtc connect URL` is a stdio MCP server for a local host (a
//!   desktop app launches it) that forwards to the remote peer.
//! - `mcp-webrtc relay` runs the WebSocket signaling relay.
//!
//! Every JSON-RPC message crosses unchanged, in both directions: the bridge
//! never parses messages into a typed model. See `docs/cli.md` for every
//! option and the exit codes.
#![forbid(unsafe_code)]

mod args;
mod bridge;
mod child;
mod common;
mod connect;
mod error;
mod relay;
mod serve;
mod session;
mod signal;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tokio_util::sync::CancellationToken;

use args::{Cli, Command, LogLevel};
use error::CliError;

/// Log on stderr at `level` for this project's crates (the WebRTC stack's
/// own logs only from `debug` on). `RUST_LOG` overrides it.
fn init_logging(level: LogLevel) {
    let l = level.as_str();
    let filter = match level {
        LogLevel::Debug | LogLevel::Trace => l.to_owned(),
        // The stack warns routinely about things that are not problems
        // (a DTLS server name, early ICE pings): its errors only.
        _ => format!(
            "warn,rtc=error,rtc_dtls=error,rtc_ice=error,rtc_sctp=error,webrtc=error,\
             mcp_webrtc={l},mcp_webrtc_cli={l},mcp_webrtc_rtc={l},mcp_webrtc_signaling={l},mcp_webrtc_core={l}"
        ),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Cancel `stop` on SIGINT or SIGTERM.
async fn watch_signals(stop: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
    stop.cancel();
}

async fn run(cli: Cli, stop: CancellationToken) -> Result<(), CliError> {
    tokio::spawn(watch_signals(stop.clone()));
    match cli.command {
        Command::Serve(args) => serve::run(args, stop).await,
        Command::Connect(args) => connect::run(args, stop).await,
        Command::Relay(args) => relay::run(args, stop).await,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match &cli.command {
        Command::Serve(a) => a.common.log_level,
        Command::Connect(a) => a.common.log_level,
        Command::Relay(a) => a.log_level,
    };
    init_logging(level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stop = CancellationToken::new();
    let result = runtime.block_on(run(cli, stop));
    // stdin is read on a blocking thread that may never return: do not wait
    // for it.
    runtime.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("mcp-webrtc: error: {e}");
            }
            e.exit_code()
        }
    }
}
