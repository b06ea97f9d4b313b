//! `mcp-webrtc serve`: a child MCP server for each WebRTC session.

use std::sync::Arc;
use std::time::Duration;

use mcp_webrtc::Role;
use mcp_webrtc::signaling::{
    PairingCode, PairingSecret, RelayHost, Signaling, TcpSignaling, WebSocketSignaling,
};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::args::ServeArgs;
use crate::bridge::{LineReader, Stopped, lines_to_peer, peer_to_stream};
use crate::child::{self, describe_exit};
use crate::common::{connected_line, open, status};
use crate::error::{CliError, code, from_end, from_signaling};
use crate::signal::{Pairing, Spec, join, paired, pairing_url, ws_options};

/// What every session needs from the command line.
struct Settings {
    args: ServeArgs,
    pairing: Pairing,
    role: Role,
}

pub(crate) async fn run(args: ServeArgs, stop: CancellationToken) -> Result<(), CliError> {
    let spec = Spec::parse(args.common.signal.as_deref().ok_or_else(|| {
        CliError::Usage(
            "serve needs --signal (ws://RELAY:PORT, tcp://…, unix:PATH or stdio)".into(),
        )
    })?)?;
    // Check the WebRTC options before anything connects.
    let _checked = args.common.builder()?;
    if args.max_sessions == 0 {
        return Err(CliError::Usage("--max-sessions must be at least 1".into()));
    }
    let usage = |e: mcp_webrtc::signaling::Error| CliError::Usage(e.to_string());
    let pairing = match (
        &args.common.secret,
        &args.common.code,
        args.common.no_pairing,
        &spec,
    ) {
        (Some(text), _, _, _) => Pairing::Secret(PairingSecret::parse(text).map_err(usage)?),
        (None, Some(text), _, _) if text.is_empty() => {
            Pairing::Code(PairingCode::generate().map_err(|e| CliError::Other(e.to_string()))?)
        }
        (None, Some(text), _, _) => Pairing::Code(PairingCode::parse(text).map_err(usage)?),
        (None, None, false, Spec::Relay { .. }) => {
            Pairing::Secret(PairingSecret::generate().map_err(|e| CliError::Other(e.to_string()))?)
        }
        _ => Pairing::Off,
    };
    let role = args.common.role_or(Role::Offerer);
    let level = args.common.log_level;
    let settings = Arc::new(Settings {
        args,
        pairing,
        role,
    });
    match spec {
        Spec::Relay { base, room: None } => host(settings, &base, stop).await,
        Spec::Relay {
            base,
            room: Some(room),
        } => {
            let options = ws_options(
                settings.args.common.token.as_deref(),
                settings.args.common.timeout(),
            );
            status(level, &format!("waiting for a peer in room {room}…"));
            let sig = join(&format!("{base}{room}"), &room, options).await?;
            one(settings, Box::new(sig), stop).await
        }
        Spec::Tcp(addr) => {
            status(level, &format!("waiting for a peer on tcp://{addr}…"));
            let sig = tokio::select! {
                sig = TcpSignaling::listen(addr.as_str()) => sig.map_err(|e| from_signaling(&e, &addr))?,
                () = stop.cancelled() => return Err(CliError::Interrupted),
            };
            one(settings, Box::new(sig), stop).await
        }
        #[cfg(unix)]
        Spec::Unix(path) => {
            status(level, &format!("waiting for a peer on unix:{path}…"));
            let sig = tokio::select! {
                sig = mcp_webrtc::signaling::UnixSignaling::listen(path.as_str()) => sig.map_err(|e| from_signaling(&e, &path))?,
                () = stop.cancelled() => return Err(CliError::Interrupted),
            };
            one(settings, Box::new(sig), stop).await
        }
        #[cfg(not(unix))]
        Spec::Unix(_) => Err(CliError::Usage(
            "unix: signaling needs a Unix platform".into(),
        )),
        Spec::Stdio => {
            status(
                level,
                "copy-and-paste signaling: paste the peer's messages below",
            );
            let sig = mcp_webrtc::signaling::CopyPasteSignaling::stdio();
            one(settings, Box::new(sig), stop).await
        }
    }
}

/// One session over `sig`, then exit with how it ended.
async fn one(
    settings: Arc<Settings>,
    sig: Box<dyn Signaling>,
    stop: CancellationToken,
) -> Result<(), CliError> {
    let outcome = session(Arc::clone(&settings), 1, sig, stop.clone()).await;
    if stop.is_cancelled() {
        return Err(CliError::Interrupted);
    }
    outcome
}

/// Host mode at a relay: each client gets a session and a child of its
/// own, up to `--max-sessions` at once.
async fn host(
    settings: Arc<Settings>,
    base: &str,
    stop: CancellationToken,
) -> Result<(), CliError> {
    let common = &settings.args.common;
    let level = common.log_level;
    let name = match &settings.args.name {
        Some(name) => name.clone(),
        None => random_name()?,
    };
    if !mcp_webrtc::signaling::relay_protocol::valid_host(&name) {
        return Err(CliError::Usage(format!(
            "--name {name}: use letters, digits, '-', '_', '.' or '~'"
        )));
    }
    let options = ws_options(common.token.as_deref(), common.timeout());
    let mut relay = RelayHost::register(base, &name, options)
        .await
        .map_err(|e| from_signaling(&e, &name))?;
    let line = match &settings.pairing {
        Pairing::Secret(secret) => format!(
            "mcp-webrtc connect '{}'",
            pairing_url(base, &name, Some(secret))
        ),
        Pairing::Code(code) => format!(
            "mcp-webrtc connect '{}' --code {}",
            pairing_url(base, &name, None),
            code.to_text()
        ),
        Pairing::Off => format!(
            "mcp-webrtc connect '{}' --no-pairing",
            pairing_url(base, &name, None)
        ),
    };
    #[allow(clippy::print_stdout)]
    {
        println!("{line}");
    }
    if matches!(settings.pairing, Pairing::Off) {
        status(
            level,
            "pairing is off (--no-pairing): any client the relay lets in is served",
        );
    }
    status(
        level,
        &format!(
            "waiting for a peer in room {name} at {base} (up to {} sessions at once)…",
            settings.args.max_sessions
        ),
    );
    let mut sessions = JoinSet::new();
    let mut next = 0u64;
    // Bounded: each pass accepts one client, reaps one session, or stops.
    let result = loop {
        tokio::select! {
            () = stop.cancelled() => break Err(CliError::Interrupted),
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            accepted = relay.accept() => {
                let sig: WebSocketSignaling = match accepted {
                    Ok(sig) => sig,
                    Err(e) => break Err(from_signaling(&e, &name)),
                };
                next = next.saturating_add(1);
                if sessions.len() >= settings.args.max_sessions {
                    let max = settings.args.max_sessions;
                    status(level, &format!("session {next}: refused, {max} sessions are running"));
                    let reason = format!("the server is busy: it serves {max} sessions at most; try again later");
                    tokio::spawn(async move { let _ = sig.refuse(&reason).await; });
                    continue;
                }
                let settings = Arc::clone(&settings);
                let stop = stop.clone();
                let n = next;
                sessions.spawn(async move {
                    if let Err(e) = session(settings, n, Box::new(sig), stop).await {
                        tracing::warn!("session {n}: {e}");
                    }
                });
            }
        }
    };
    stop.cancel();
    // Every session sees `stop`, ends its child within the grace period,
    // and closes its channel.
    let grace = Duration::from_secs(settings.args.grace).saturating_add(Duration::from_secs(10));
    let _ = tokio::time::timeout(grace, async {
        while sessions.join_next().await.is_some() {}
    })
    .await;
    sessions.abort_all();
    result
}

fn random_name() -> Result<String, CliError> {
    let secret = PairingSecret::generate().map_err(|e| CliError::Other(e.to_string()))?;
    let text = secret.to_text();
    Ok(format!("mcp-{}", text.get(..12).unwrap_or(&text)))
}

/// One session: set up the channel, start the child, bridge them, and end
/// both together.
async fn session(
    settings: Arc<Settings>,
    n: u64,
    sig: Box<dyn Signaling>,
    stop: CancellationToken,
) -> Result<(), CliError> {
    let common = &settings.args.common;
    let level = common.log_level;
    let opened = tokio::select! {
        opened = async {
            let sig = paired(sig, &settings.pairing, "this server", common.timeout()).await?;
            open(common, settings.role, sig, "this server").await
        } => opened,
        () = stop.cancelled() => return Err(CliError::Interrupted),
    };
    let (mut channel, took) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            status(level, &format!("session {n}: set-up failed: {e}"));
            return Err(e);
        }
    };
    status(
        level,
        &format!("session {n}: {}", connected_line(&channel, took).await),
    );
    let mut server = match child::spawn(&settings.args.command, format!("[session {n}]")) {
        Ok(server) => server,
        Err(e) => {
            status(level, &format!("session {n}: {e}"));
            channel.close().await;
            return Err(e);
        }
    };
    status(
        level,
        &format!(
            "session {n}: started `{}` (pid {})",
            settings.args.command.join(" "),
            server.pid.unwrap_or(0)
        ),
    );
    let sender = channel.sender();
    let stdout = server.stdout.take();
    let max_line = usize::try_from(common.max_message_size).unwrap_or(usize::MAX);
    let mut upstream = tokio::spawn(async move {
        match stdout {
            Some(stdout) => {
                let reader = LineReader::new(stdout, max_line);
                lines_to_peer(reader, sender, "the MCP server").await
            }
            None => Stopped::StreamEnded,
        }
    });
    let mut stdin = server.stdin.take();
    let grace = Duration::from_secs(settings.args.grace);
    let handle = channel.handle();
    let downstream = async {
        match stdin.as_mut() {
            Some(stdin) => peer_to_stream(&mut channel, stdin).await,
            None => Stopped::StreamEnded,
        }
    };
    let ended = tokio::select! {
        stopped = downstream => Ended::Peer(stopped),
        _ = &mut upstream => Ended::Child,
        status = server.child.wait() => Ended::ChildExited(status.ok()),
        () = stop.cancelled() => Ended::Stopped,
    };
    drop(stdin);
    let result = match ended {
        Ended::Peer(stopped) => {
            if let Stopped::StreamFailed(e) = stopped {
                tracing::warn!("session {n}: the MCP server stopped reading its stdin: {e}");
            }
            let exit = server.terminate(grace).await;
            let end = handle.end_reason();
            let why = end
                .as_ref()
                .map_or_else(|| "ended".to_owned(), ToString::to_string);
            status(
                level,
                &format!("session {n}: {why}; the MCP server {}", describe_exit(exit)),
            );
            from_end(end)
        }
        Ended::Child | Ended::ChildExited(_) => {
            let exit = match ended {
                Ended::ChildExited(status) => {
                    // Let what the child wrote last reach the peer.
                    let _ = tokio::time::timeout(Duration::from_secs(2), &mut upstream).await;
                    status
                }
                _ => server.terminate(grace).await,
            };
            server.kill_group();
            channel.close().await;
            status(
                level,
                &format!(
                    "session {n}: the MCP server {}; session closed",
                    describe_exit(exit)
                ),
            );
            Ok(())
        }
        Ended::Stopped => {
            let exit = server.terminate(grace).await;
            channel.close().await;
            status(
                level,
                &format!(
                    "session {n}: stopped; the MCP server {}",
                    describe_exit(exit)
                ),
            );
            Err(CliError::Interrupted)
        }
    };
    upstream.abort();
    result.map_err(|e| match e {
        CliError::Session { message, .. } => CliError::Session {
            message,
            code: code::PEER_GONE,
        },
        other => other,
    })
}

/// Which side ended a session first.
enum Ended {
    /// The peer (the session ended, or it stopped reading).
    Peer(Stopped),
    /// The child closed its stdout.
    Child,
    /// The child exited.
    ChildExited(Option<std::process::ExitStatus>),
    /// `serve` is stopping.
    Stopped,
}
