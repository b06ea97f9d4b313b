//! The command line: subcommands and their options.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Any stdio MCP server reachable over WebRTC: peer to peer through NAT,
/// paired end to end.
///
/// `serve` runs a stdio MCP server for each remote client; `connect` is a
/// stdio MCP server for a local host that forwards to a remote peer;
/// `relay` runs the WebSocket signaling relay both can meet at.
#[derive(Parser, Debug)]
#[command(name = "mcp-webrtc", version, max_term_width = 100)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Serve a stdio MCP server over WebRTC: one child process per session
    Serve(ServeArgs),
    /// Be a stdio MCP server for a local host, forwarding to a remote peer
    Connect(ConnectArgs),
    /// Run the WebSocket signaling relay
    Relay(RelayArgs),
}

/// Who sends the WebRTC offer.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RoleArg {
    /// Send the offer (the MCP server's side in the reference packages)
    Offer,
    /// Answer the peer's offer
    Answer,
}

/// How much to log on stderr.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogLevel {
    /// Errors only
    Error,
    /// Errors and warnings
    Warn,
    /// Status lines, errors and warnings
    Info,
    /// Everything, for debugging
    Debug,
    /// Even more
    Trace,
}

impl LogLevel {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

/// Options shared by `serve` and `connect`.
#[derive(Args, Debug, Clone)]
pub(crate) struct Common {
    /// Where signaling goes: ws://HOST:PORT or wss://… (a relay), tcp://HOST:PORT, unix:PATH, or
    /// stdio (copy and paste)
    #[arg(long, value_name = "SPEC")]
    pub(crate) signal: Option<String>,
    /// Token for the relay
    #[arg(long, env = "MCP_WEBRTC_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// Pairing secret shared with the peer, in hex (never sent to the relay)
    #[arg(long, env = "MCP_WEBRTC_SECRET", hide_env_values = true)]
    pub(crate) secret: Option<String>,
    /// Pair with a short code a person can read aloud (SPAKE2) instead of a secret; serve makes
    /// one when none is given
    #[arg(
        long,
        value_name = "CODE",
        env = "MCP_WEBRTC_CODE",
        hide_env_values = true,
        num_args = 0..=1,
        default_missing_value = "",
        conflicts_with = "secret"
    )]
    pub(crate) code: Option<String>,
    /// Do not pair: accept any peer the signaling brings (for the reference packages)
    #[arg(long, conflicts_with_all = ["secret", "code"])]
    pub(crate) no_pairing: bool,
    /// STUN or TURN server (stun:HOST:PORT, turn:HOST:PORT, turn:HOST:PORT?transport=tcp); repeat for more. None by default
    #[arg(long = "ice-server", value_name = "URL")]
    pub(crate) ice_servers: Vec<String>,
    /// Username for the TURN servers
    #[arg(long, value_name = "NAME")]
    pub(crate) turn_username: Option<String>,
    /// Credential for the TURN servers
    #[arg(
        long,
        value_name = "SECRET",
        env = "MCP_WEBRTC_TURN_CREDENTIAL",
        hide_env_values = true
    )]
    pub(crate) turn_credential: Option<String>,
    /// Use only TURN relay candidates
    #[arg(long)]
    pub(crate) relay_only: bool,
    /// Who sends the WebRTC offer [default: offer for serve, answer for connect]
    #[arg(long, value_enum)]
    pub(crate) role: Option<RoleArg>,
    /// Seconds to wait for the peer and the connection
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub(crate) timeout: u64,
    /// Local UDP address for WebRTC; repeat for more [default: 127.0.0.1:0 and 0.0.0.0:0]
    #[arg(long, value_name = "ADDR")]
    pub(crate) bind: Vec<SocketAddr>,
    /// Largest JSON-RPC message, in bytes, either way
    #[arg(long, value_name = "BYTES", default_value_t = 128 * 1024 * 1024)]
    pub(crate) max_message_size: u64,
    /// How much to log on stderr
    #[arg(long, value_enum, default_value = "info")]
    pub(crate) log_level: LogLevel,
}

/// `mcp-webrtc serve`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  mcp-webrtc serve --signal ws://relay.example:8787 --name desktop -- npx -y @modelcontextprotocol/server-filesystem ~/Documents
  mcp-webrtc serve --signal tcp://127.0.0.1:9999 --no-pairing -- python3 server.py")]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub(crate) common: Common,
    /// The name this server registers at the relay [default: a random one]
    #[arg(long, value_name = "NAME")]
    pub(crate) name: Option<String>,
    /// Sessions served at once; a client beyond them is refused
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub(crate) max_sessions: usize,
    /// Seconds a child has to exit after SIGTERM before it is killed
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub(crate) grace: u64,
    /// The stdio MCP server to run for each session, and its arguments
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub(crate) command: Vec<String>,
}

/// `mcp-webrtc connect`.
#[derive(Args, Debug)]
#[command(after_help = "Example, as printed by `mcp-webrtc serve`:
  mcp-webrtc connect 'mcpw://relay.example:8787/desktop#3f2a…'

stdout carries MCP messages only; status and logs go to stderr.")]
pub(crate) struct ConnectArgs {
    /// The server to reach: mcpw://RELAY:PORT/NAME#SECRET (mcpws:// for wss), as `serve` prints
    #[arg(value_name = "URL")]
    pub(crate) url: Option<String>,
    /// The server's name at the relay given with --signal ws://…
    #[arg(long, value_name = "NAME")]
    pub(crate) name: Option<String>,
    #[command(flatten)]
    pub(crate) common: Common,
}

/// `mcp-webrtc relay`.
#[derive(Args, Debug)]
pub(crate) struct RelayArgs {
    /// Address to listen on
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8787")]
    pub(crate) listen: String,
    /// File of accepted tokens, one a line (`#` starts a comment)
    #[arg(long, value_name = "FILE")]
    pub(crate) token_file: Option<PathBuf>,
    /// Comma-separated accepted tokens (prefer --token-file: these show in the environment)
    #[arg(
        long,
        env = "MCP_WEBRTC_RELAY_TOKENS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub(crate) tokens: Vec<String>,
    /// Accept clients with no token (only on a private network)
    #[arg(long)]
    pub(crate) allow_anonymous: bool,
    /// Largest signaling message forwarded, in bytes
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024)]
    pub(crate) max_message_size: usize,
    /// Seconds a peer may stay silent before it is closed
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    pub(crate) idle_timeout: u64,
    /// Rooms open at once
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub(crate) max_rooms: usize,
    /// Connections open at once from one IP address
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub(crate) max_connections_per_ip: usize,
    /// Client connections per second one host accepts (bursts of twice that)
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub(crate) host_connect_rate: u32,
    /// How much to log on stderr
    #[arg(long, value_enum, default_value = "info")]
    pub(crate) log_level: LogLevel,
}
