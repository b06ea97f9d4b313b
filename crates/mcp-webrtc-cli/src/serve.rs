//! `mcp-webrtc serve`: a child MCP server for each WebRTC session; host
//! mode at a relay, or one session over other signaling.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use mcp_webrtc::Role;
use mcp_webrtc::signaling::{
    PairingCode, PairingSecret, RelayHost, Signaling, TcpSignaling, WebSocketSignaling,
};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::args::ServeArgs;
use crate::common::status;
use crate::error::{CliError, code, from_signaling};
use crate::session::session;
use crate::signal::{Pairing, Spec, join, pairing_url, ws_options};

/// Clients given a wrong pairing code before `serve` stops (with a code,
/// each attempt is one online guess).
const MAX_WRONG_CODES: u32 = 10;

/// What every session needs, and what they count together.
pub(crate) struct Settings {
    pub(crate) args: ServeArgs,
    pub(crate) pairing: Pairing,
    pub(crate) role: Role,
    /// Sessions pairing or setting up now.
    pub(crate) setting_up: AtomicUsize,
    /// Sessions open now (paired, with a child).
    pub(crate) running: AtomicUsize,
    /// Clients that gave a wrong pairing code.
    wrong_codes: AtomicU32,
    /// Cancelled once too many wrong codes were given.
    too_many_wrong: CancellationToken,
}

impl Settings {
    /// Count a set-up before it starts, so that a burst of clients cannot
    /// pass the budget check before any of them is counted; the session
    /// gives it back.
    pub(crate) fn begin_setup(&self) {
        self.setting_up.fetch_add(1, Ordering::AcqRel);
    }

    /// A set-up counted by [`Settings::begin_setup`] ended before it began
    /// (the client's room could not be joined).
    pub(crate) fn end_setup(&self) {
        let _ = self
            .setting_up
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// A client gave a wrong code.
    pub(crate) fn wrong_code(&self) {
        let n = self
            .wrong_codes
            .fetch_add(1, Ordering::AcqRel)
            .saturating_add(1);
        if n >= MAX_WRONG_CODES {
            self.too_many_wrong.cancel();
        }
    }
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
        setting_up: AtomicUsize::new(0),
        running: AtomicUsize::new(0),
        wrong_codes: AtomicU32::new(0),
        too_many_wrong: CancellationToken::new(),
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
            let url = format!("{base}{room}");
            print_line(&connect_line(&url, &settings.pairing));
            status(level, &format!("waiting for a peer in room {room}…"));
            let sig = join(&url, &room, options).await?;
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
    settings.begin_setup();
    let outcome = session(Arc::clone(&settings), 1, sig, stop.clone()).await;
    if settings.too_many_wrong.is_cancelled() {
        return Err(too_many_wrong());
    }
    if stop.is_cancelled() {
        return Err(CliError::Interrupted);
    }
    outcome
}

/// Host mode at a relay: each client gets a session and a child of its
/// own, up to `--max-sessions` at once.
/// Refused clients being told so at once, at most (each needs a join of
/// its room); beyond it, a refused client is dropped untold.
const MAX_REFUSALS_IN_FLIGHT: usize = 8;

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
    print_line(&line);
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
    let refusing = Arc::new(AtomicUsize::new(0));
    let mut next = 0u64;
    // Bounded: each pass accepts one client, reaps one session, or stops.
    let result = loop {
        tokio::select! {
            () = stop.cancelled() => break Err(CliError::Interrupted),
            () = settings.too_many_wrong.cancelled() => break Err(too_many_wrong()),
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            // Each client's room is joined on its own task, so that a burst
            // of clients does not outrun the relay's bounded queue of
            // announcements to this host.
            announced = relay.next_session() => {
                let pending = match announced {
                    Ok(pending) => pending,
                    Err(e) => break Err(from_signaling(&e, &name)),
                };
                next = next.saturating_add(1);
                let max = settings.args.max_sessions;
                // Open sessions count against --max-sessions; clients still
                // pairing or setting up have a budget of their own, so that
                // stalled set-ups cannot lock out paired clients.
                let refusal = if settings.running.load(Ordering::Acquire) >= max {
                    Some(format!("the server is busy: it serves at most {max} at once; try again later"))
                } else if settings.setting_up.load(Ordering::Acquire) >= max {
                    Some(format!("the server is busy: {max} clients are connecting; try again later"))
                } else {
                    None
                };
                if let Some(reason) = refusal {
                    // Telling a refused client joins its room: at most a
                    // few such joins at once, so that a flood of clients
                    // cannot hold a socket each (the relay caps them per
                    // address, and serve's own sessions need theirs).
                    if refusing.load(Ordering::Acquire) >= MAX_REFUSALS_IN_FLIGHT {
                        status(level, &format!("session {next}: refused without telling it ({MAX_REFUSALS_IN_FLIGHT} refusals on their way): {reason}"));
                        continue;
                    }
                    status(level, &format!("session {next}: refused: {reason}"));
                    refusing.fetch_add(1, Ordering::AcqRel);
                    let refusing = Arc::clone(&refusing);
                    tokio::spawn(async move {
                        if let Ok(sig) = pending.join().await {
                            let _ = sig.refuse(&reason).await;
                        }
                        refusing.fetch_sub(1, Ordering::AcqRel);
                    });
                    continue;
                }
                settings.begin_setup();
                let settings = Arc::clone(&settings);
                let stop = stop.clone();
                let n = next;
                sessions.spawn(async move {
                    let joined = tokio::select! {
                        joined = pending.join() => joined,
                        () = stop.cancelled() => {
                            settings.end_setup();
                            return;
                        }
                    };
                    let sig: WebSocketSignaling = match joined {
                        Ok(sig) => sig,
                        Err(e) => {
                            settings.end_setup();
                            status(settings.args.common.log_level, &format!("session {n}: could not join the client's room: {e}"));
                            return;
                        }
                    };
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

fn too_many_wrong() -> CliError {
    CliError::Session {
        message: format!(
            "pairing failed: {MAX_WRONG_CODES} clients gave a wrong pairing code; restart serve for a new code"
        ),
        code: code::PAIRING,
    }
}

/// The line the other side runs, for a room URL or other signaling.
fn connect_line(signal: &str, pairing: &Pairing) -> String {
    match pairing {
        Pairing::Secret(secret) => format!(
            "mcp-webrtc connect --signal '{signal}' --secret {}",
            secret.to_text()
        ),
        Pairing::Code(code) => format!(
            "mcp-webrtc connect --signal '{signal}' --code {}",
            code.to_text()
        ),
        Pairing::Off => format!("mcp-webrtc connect --signal '{signal}' --no-pairing"),
    }
}

/// What the other side needs, on stdout (the only thing `serve` writes
/// there).
fn print_line(line: &str) {
    #[allow(clippy::print_stdout)]
    {
        println!("{line}");
    }
}

fn random_name() -> Result<String, CliError> {
    let secret = PairingSecret::generate().map_err(|e| CliError::Other(e.to_string()))?;
    let text = secret.to_text();
    Ok(format!("mcp-{}", text.get(..12).unwrap_or(&text)))
}
