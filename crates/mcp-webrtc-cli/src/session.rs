//! One session of `mcp-webrtc serve`: pair, set up the channel, start the
//! child, bridge the two, and end both together.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mcp_webrtc::signaling::Signaling;
use tokio_util::sync::CancellationToken;

use crate::bridge::{LineReader, Stopped, lines_to_peer, peer_to_stream};
use crate::child::{self, describe_exit};
use crate::common::{connected_line, open, status};
use crate::error::{CliError, code, from_end};
use crate::serve::Settings;
use crate::signal::{Pairing, paired};

/// A counted place (a session setting up, or one running), given back when
/// dropped.
pub(crate) struct Slot<'a>(&'a AtomicUsize);

impl<'a> Slot<'a> {
    /// A place if fewer than `max` are taken.
    fn take_within(count: &'a AtomicUsize, max: usize) -> Option<Slot<'a>> {
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then(|| n.saturating_add(1))
            })
            .ok()
            .map(|_| Slot(count))
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Whether a set-up failed in pairing (a wrong code, say).
fn is_pairing_failure(e: &CliError) -> bool {
    matches!(e, CliError::Session { code: c, .. } if *c == code::PAIRING)
}

/// One session: set up the channel, start the child, bridge them, and end
/// both together.
pub(crate) async fn session(
    settings: Arc<Settings>,
    n: u64,
    sig: Box<dyn Signaling>,
    stop: CancellationToken,
) -> Result<(), CliError> {
    let common = &settings.args.common;
    let level = common.log_level;
    // The caller counted this set-up (`Settings::begin_setup`) before
    // starting it; the slot gives it back however the set-up ends.
    let setting_up = Slot(&settings.setting_up);
    let opened = tokio::select! {
        opened = async {
            let sig = paired(sig, &settings.pairing, settings.role, "this server", common.timeout()).await?;
            open(common, settings.role, sig, "this server").await
        } => opened,
        () = stop.cancelled() => return Err(CliError::Interrupted),
    };
    drop(setting_up);
    let (mut channel, took) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            status(level, &format!("session {n}: set-up failed: {e}"));
            if matches!(settings.pairing, Pairing::Code(_)) && is_pairing_failure(&e) {
                settings.wrong_code();
            }
            return Err(e);
        }
    };
    // Only paired, open sessions count against --max-sessions.
    let Some(_running) = Slot::take_within(&settings.running, settings.args.max_sessions) else {
        status(
            level,
            &format!("session {n}: closed at once: --max-sessions are running"),
        );
        channel.close().await;
        return Ok(());
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
        // The peer's end shows here first when a send fails as it goes.
        up = &mut upstream => match up {
            Ok(Stopped::SessionEnded) => Ended::Peer(Stopped::SessionEnded),
            _ => Ended::Child,
        },
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
