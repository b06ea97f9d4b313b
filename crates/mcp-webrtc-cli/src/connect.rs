//! `mcp-webrtc connect`: a stdio MCP server for a local host that forwards
//! every message to a remote WebRTC MCP peer. stdout carries protocol
//! messages only.

use mcp_webrtc::Role;
use mcp_webrtc::signaling::{PairingCode, PairingSecret, Signaling, TcpSignaling};
use tokio_util::sync::CancellationToken;

use crate::args::ConnectArgs;
use crate::bridge::{LineReader, Stopped, lines_to_peer, peer_to_stream, write_message};

/// How long answers to the host's last requests may take once it has
/// closed our stdin.
const LINGER: std::time::Duration = std::time::Duration::from_secs(10);
use crate::common::{connected_line, open, status};
use crate::error::{CliError, from_end, from_signaling};
use crate::signal::{Pairing, PairingUrl, Spec, join, paired, redact, ws_options};

/// Where to connect, and how to pair.
struct Target {
    signaling: Box<dyn Signaling>,
    pairing: Pairing,
    what: String,
}

async fn target(args: &ConnectArgs) -> Result<Target, CliError> {
    let common = &args.common;
    let level = common.log_level;
    let options = ws_options(common.token.as_deref(), common.timeout());
    let usage = |e: mcp_webrtc::signaling::Error| CliError::Usage(e.to_string());
    let from_flag = match &common.secret {
        Some(text) => Some(PairingSecret::parse(text).map_err(usage)?),
        None => None,
    };
    let code = match &common.code {
        Some(text) if text.is_empty() => {
            return Err(CliError::Usage(
                "--code needs the code `mcp-webrtc serve` printed".into(),
            ));
        }
        Some(text) => Some(PairingCode::parse(text).map_err(usage)?),
        None => None,
    };
    if let Some(url) = &args.url {
        if common.signal.is_some() {
            return Err(CliError::Usage(
                "give either a pairing URL or --signal, not both".into(),
            ));
        }
        let parsed = PairingUrl::parse(url)?;
        if parsed.secret.is_some() && code.is_some() {
            return Err(CliError::Usage(
                "the URL has a secret (after #) and --code gives a code: use one".into(),
            ));
        }
        let secret = from_flag.or(parsed.secret);
        if secret.is_none() && code.is_none() && !common.no_pairing {
            return Err(CliError::Usage(format!(
                "{}: no pairing secret (the part after #): use the whole line `mcp-webrtc serve` printed, --code, or --no-pairing",
                redact(url)
            )));
        }
        let client_url = mcp_webrtc::signaling::RelayHost::client_url(&parsed.base, &parsed.name);
        status(
            level,
            &format!(
                "connecting to {} through the relay at {}…",
                parsed.name, parsed.base
            ),
        );
        let sig = join(&client_url, &parsed.name, options).await?;
        return Ok(Target {
            signaling: Box::new(sig),
            pairing: pairing_of(secret, code),
            what: parsed.name,
        });
    }
    let Some(spec) = &common.signal else {
        return Err(CliError::Usage(
            "connect needs the pairing URL that `mcp-webrtc serve` printed, or --signal".into(),
        ));
    };
    let spec = Spec::parse(spec)?;
    let needs_secret = matches!(spec, Spec::Relay { .. });
    if needs_secret && from_flag.is_none() && code.is_none() && !common.no_pairing {
        return Err(CliError::Usage(
            "no pairing secret for the relay: give --secret (or MCP_WEBRTC_SECRET), --code, or --no-pairing".into(),
        ));
    }
    let (signaling, what): (Box<dyn Signaling>, String) = match spec {
        Spec::Relay { base, room } => {
            let (url, what) = match (room, &args.name) {
                (Some(room), _) => (format!("{base}{room}"), room),
                (None, Some(name)) => (
                    mcp_webrtc::signaling::RelayHost::client_url(&base, name),
                    name.clone(),
                ),
                (None, None) => {
                    return Err(CliError::Usage(
                        "--signal ws://… needs --name (the server's name at the relay) or a room path".into(),
                    ));
                }
            };
            status(
                level,
                &format!("connecting to {what} through the relay at {base}…"),
            );
            (Box::new(join(&url, &what, options).await?), what)
        }
        Spec::Tcp(addr) => {
            status(level, &format!("connecting to tcp://{addr}…"));
            let sig =
                TcpSignaling::connect(addr.as_str(), mcp_webrtc::signaling::Options::default())
                    .await
                    .map_err(|e| from_signaling(&e, &addr))?;
            (Box::new(sig), addr)
        }
        #[cfg(unix)]
        Spec::Unix(path) => {
            status(level, &format!("connecting to unix:{path}…"));
            let sig = mcp_webrtc::signaling::UnixSignaling::connect(
                path.as_str(),
                mcp_webrtc::signaling::Options::default(),
            )
            .await
            .map_err(|e| from_signaling(&e, &path))?;
            (Box::new(sig), path)
        }
        #[cfg(not(unix))]
        Spec::Unix(_) => {
            return Err(CliError::Usage(
                "unix: signaling needs a Unix platform".into(),
            ));
        }
        Spec::Stdio => {
            return Err(CliError::Usage(
                "connect cannot use stdio signaling: its stdin and stdout carry MCP; use a relay, tcp:// or unix:".into(),
            ));
        }
    };
    Ok(Target {
        signaling,
        pairing: pairing_of(from_flag, code),
        what,
    })
}

fn pairing_of(secret: Option<PairingSecret>, code: Option<PairingCode>) -> Pairing {
    match (secret, code) {
        (Some(secret), _) => Pairing::Secret(secret),
        (None, Some(code)) => Pairing::Code(code),
        (None, None) => Pairing::Off,
    }
}

pub(crate) async fn run(args: ConnectArgs, stop: CancellationToken) -> Result<(), CliError> {
    let common = &args.common;
    let level = common.log_level;
    // Check the WebRTC options before anything connects.
    let _checked = common.builder()?;
    let target = tokio::select! {
        target = target(&args) => target?,
        () = stop.cancelled() => return Err(CliError::Interrupted),
    };
    let what = target.what.clone();
    let (mut channel, took) = tokio::select! {
        opened = async {
            let role = common.role_or(Role::Answerer);
            let sig = paired(target.signaling, &target.pairing, role, &what, common.timeout()).await?;
            open(common, role, sig, &what).await
        } => opened?,
        () = stop.cancelled() => return Err(CliError::Interrupted),
    };
    status(level, &connected_line(&channel, took).await);
    let max_line = usize::try_from(common.max_message_size).unwrap_or(usize::MAX);
    let reader = LineReader::new(tokio::io::stdin(), max_line);
    let mut upstream = tokio::spawn(lines_to_peer(reader, channel.sender(), "the MCP host"));
    let handle = channel.handle();
    let mut stdout = tokio::io::stdout();
    let ended = tokio::select! {
        stopped = peer_to_stream(&mut channel, &mut stdout) => Some(stopped),
        stopped = &mut upstream => stopped.ok(),
        () = stop.cancelled() => None,
    };
    upstream.abort();
    match &ended {
        // The host closed our stdin but may still read stdout (`printf … |
        // mcp-webrtc connect`): let the answers to its requests out first.
        Some(Stopped::StreamEnded) => {
            let _ = tokio::time::timeout(LINGER, async {
                // Bounded by LINGER and by the session.
                while handle.stats().unanswered_requests > 0 {
                    let Some(message) = channel.receive().await else {
                        break;
                    };
                    if write_message(&mut stdout, &message).await.is_err() {
                        break;
                    }
                }
            })
            .await;
        }
        // A send failed as the session ended: what the peer sent before,
        // and the "peer gone" errors, still go to the host.
        Some(Stopped::SessionEnded) => {
            let _ = tokio::time::timeout(LINGER, peer_to_stream(&mut channel, &mut stdout)).await;
        }
        _ => {}
    }
    match ended {
        // The host closed our stdin (it is done), or stopped reading.
        Some(Stopped::StreamFailed(e)) => {
            channel.close().await;
            status(
                level,
                &format!("the MCP host's stdio failed ({e}); session closed"),
            );
            Ok(())
        }
        Some(Stopped::StreamEnded) => {
            channel.close().await;
            status(level, "the MCP host closed the connection; session closed");
            Ok(())
        }
        Some(Stopped::SessionEnded) => {
            let end = handle.end_reason();
            let why = end
                .as_ref()
                .map_or_else(|| "ended".to_owned(), ToString::to_string);
            status(level, &format!("session {why}"));
            from_end(end)
        }
        None => {
            channel.close().await;
            Err(CliError::Interrupted)
        }
    }
}
