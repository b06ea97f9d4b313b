//! `mcp-webrtc relay`: the WebSocket signaling relay.

use std::time::Duration;

use mcp_webrtc::signaling::relay::{RelayConfig, RelayServer};
use tokio_util::sync::CancellationToken;

use crate::args::RelayArgs;
use crate::common::status;
use crate::error::CliError;

/// Tokens from a file: one a line, `#` starts a comment, blank lines skipped.
fn read_tokens(path: &std::path::Path) -> Result<Vec<String>, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Usage(format!("--token-file {}: {e}", path.display())))?;
    Ok(text
        .lines()
        .map(|line| line.split('#').next().unwrap_or("").trim().to_owned())
        .filter(|line| !line.is_empty())
        .collect())
}

pub(crate) async fn run(args: RelayArgs, stop: CancellationToken) -> Result<(), CliError> {
    let mut tokens: Vec<String> = args
        .tokens
        .iter()
        .filter(|t| !t.is_empty())
        .cloned()
        .collect();
    if let Some(path) = &args.token_file {
        tokens.extend(read_tokens(path)?);
    }
    if tokens.is_empty() && !args.allow_anonymous {
        return Err(CliError::Usage(
            "the relay needs tokens: give --token-file FILE (or MCP_WEBRTC_RELAY_TOKENS), or --allow-anonymous on a private network".into(),
        ));
    }
    let mut config = RelayConfig::with_tokens(tokens)
        .with_max_message_size(args.max_message_size)
        .with_idle_timeout(Duration::from_secs(args.idle_timeout))
        .with_max_rooms(args.max_rooms)
        .with_max_connections_per_ip(args.max_connections_per_ip)
        .with_host_connect_rate(args.host_connect_rate);
    config.allow_anonymous = args.allow_anonymous;
    let relay = RelayServer::bind(args.listen.as_str(), config)
        .await
        .map_err(|e| CliError::Other(format!("cannot start the relay on {}: {e}", args.listen)))?;
    status(
        args.log_level,
        &format!(
            "relay listening on {} (health: http://{}/healthz, metrics: http://{}/metrics)",
            relay.url(),
            relay.local_addr(),
            relay.local_addr()
        ),
    );
    stop.cancelled().await;
    status(args.log_level, "shutting down");
    relay.shutdown().await;
    Ok(())
}
