//! What `serve` and `connect` share: the transport's settings from the
//! command line, status lines, and how a connection is described.

use std::time::{Duration, Instant};

use mcp_webrtc::signaling::Signaling;
use mcp_webrtc::{Builder, IcePolicy, IceServer, MessageChannel, Role};

use crate::args::{Common, LogLevel, RoleArg};
use crate::error::{CliError, from_connect};

/// Print a status line on stderr (stdout may carry protocol messages).
pub(crate) fn status(level: LogLevel, line: &str) {
    if matches!(level, LogLevel::Info | LogLevel::Debug | LogLevel::Trace) {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("mcp-webrtc: {line}");
        }
    }
}

impl Common {
    /// The role to take, `default` unless `--role` says otherwise.
    pub(crate) fn role_or(&self, default: Role) -> Role {
        match self.role {
            Some(RoleArg::Offer) => Role::Offerer,
            Some(RoleArg::Answer) => Role::Answerer,
            None => default,
        }
    }

    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout.max(1))
    }

    /// The transport's builder, from the options.
    pub(crate) fn builder(&self) -> Result<Builder, CliError> {
        let mut builder = Builder::default()
            .handshake_timeout(self.timeout())
            .max_message_size(self.max_message_size);
        if !self.bind.is_empty() {
            builder = builder.bind(self.bind.clone());
        }
        for url in &self.ice_servers {
            let server = if url.starts_with("turn:") || url.starts_with("turns:") {
                let (Some(user), Some(credential)) = (&self.turn_username, &self.turn_credential)
                else {
                    return Err(CliError::Usage(format!(
                        "--ice-server {url} needs --turn-username and --turn-credential"
                    )));
                };
                IceServer::turn(url.clone(), user.clone(), credential.clone())
            } else if url.starts_with("stun:") {
                IceServer::stun(url.clone())
            } else {
                return Err(CliError::Usage(format!(
                    "--ice-server {url}: expected stun:HOST:PORT or turn:HOST:PORT"
                )));
            };
            builder = builder.ice_server(server);
        }
        if self.relay_only {
            if !self.ice_servers.iter().any(|u| u.starts_with("turn")) {
                return Err(CliError::Usage(
                    "--relay-only needs a TURN server: add --ice-server turn:HOST:PORT".into(),
                ));
            }
            builder = builder.ice_policy(IcePolicy::Relay);
        }
        Ok(builder)
    }
}

/// Set up one session over `signaling`, within the handshake timeout.
pub(crate) async fn open(
    common: &Common,
    role: Role,
    signaling: Box<dyn Signaling>,
    what: &str,
) -> Result<(MessageChannel, Duration), CliError> {
    let started = Instant::now();
    let builder = common.builder()?;
    let channel = builder
        .message_channel(role, signaling)
        .await
        .map_err(|e| from_connect(&e, what, common.timeout()))?;
    Ok((channel, started.elapsed()))
}

/// "127.0.0.1:5000 via host candidates", from the stack's selected pair
/// (`local ip:port (type) -> remote ip:port (type)`).
pub(crate) fn describe_pair(pair: Option<&str>) -> String {
    let Some(pair) = pair else {
        return "the peer".into();
    };
    let Some((local, remote)) = pair.split_once(" -> ") else {
        return pair.to_owned();
    };
    let kind = |side: &str| {
        side.rsplit_once('(')
            .map(|(_, k)| k.trim_end_matches(')').to_owned())
            .unwrap_or_default()
    };
    let addr = remote.split(' ').next().unwrap_or(remote);
    let (l, r) = (kind(local), kind(remote));
    if l == r {
        format!("{addr} via {l} candidates")
    } else {
        format!("{addr} via a {l}/{r} candidate pair")
    }
}

/// The status line for an open session.
pub(crate) async fn connected_line(channel: &MessageChannel, took: Duration) -> String {
    let stats = channel.handle().connection_stats().await;
    format!(
        "connected to {} in {} ms",
        describe_pair(stats.selected_pair.as_deref()),
        took.as_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::describe_pair;

    #[test]
    fn pairs_are_described_for_people() {
        assert_eq!(
            describe_pair(Some("127.0.0.1:1 (host) -> 127.0.0.1:2 (host)")),
            "127.0.0.1:2 via host candidates"
        );
        assert_eq!(
            describe_pair(Some("10.0.0.1:1 (relay) -> 1.2.3.4:2 (srflx)")),
            "1.2.3.4:2 via a relay/srflx candidate pair"
        );
        assert_eq!(describe_pair(None), "the peer");
    }
}
