//! The demo MCP server shared by the examples and the end-to-end tests: a
//! greeter with a few tools, one of which returns results of any size.

#![allow(dead_code)] // each includer uses a different part

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::{ErrorData, ServerHandler, schemars, tool, tool_handler, tool_router};
use sha2::{Digest, Sha256};

/// The largest result `blob` makes: 512 MiB.
pub(crate) const MAX_BLOB: u64 = 512 * 1024 * 1024;

/// The demo server.
#[derive(Debug, Clone)]
pub(crate) struct Greeter {
    #[allow(dead_code)] // read by the #[tool_handler] macro
    tool_router: ToolRouter<Greeter>,
}

impl Default for Greeter {
    fn default() -> Self {
        Greeter {
            tool_router: Greeter::tool_router(),
        }
    }
}

/// Arguments of `greet`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub(crate) struct GreetArgs {
    /// Who to greet.
    pub(crate) name: String,
}

/// Arguments of `echo`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub(crate) struct EchoArgs {
    /// Returned as is.
    pub(crate) text: String,
}

/// Arguments of `blob`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub(crate) struct BlobArgs {
    /// Size of the text result, in bytes.
    pub(crate) bytes: u64,
    /// Varies the content.
    #[serde(default)]
    pub(crate) seed: u64,
    /// Append the SHA-256 (default `true`; benchmarks turn it off).
    #[serde(default = "yes")]
    pub(crate) hash: bool,
}

fn yes() -> bool {
    true
}

/// Arguments of `sleep`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub(crate) struct SleepArgs {
    /// How long, in milliseconds (at most 600000).
    pub(crate) ms: u64,
}

#[tool_router]
impl Greeter {
    /// Say hello.
    #[tool(description = "Greet someone by name")]
    async fn greet(&self, Parameters(GreetArgs { name }): Parameters<GreetArgs>) -> String {
        format!("Hello, {name}!")
    }

    /// Return the text.
    #[tool(description = "Return the text unchanged")]
    async fn echo(&self, Parameters(EchoArgs { text }): Parameters<EchoArgs>) -> String {
        text
    }

    /// A deterministic text of the given size, and its SHA-256.
    #[tool(description = "Return `bytes` bytes of text, then its SHA-256 as `sha256:<hex>`")]
    async fn blob(
        &self,
        Parameters(BlobArgs { bytes, seed, hash }): Parameters<BlobArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        if bytes > MAX_BLOB {
            return Err(ErrorData::invalid_params(
                format!("bytes must be at most {MAX_BLOB}"),
                None,
            ));
        }
        let text = blob(usize::try_from(bytes).unwrap_or(usize::MAX), seed);
        if !hash {
            return Ok(CallToolResult::success(vec![ContentBlock::text(text)]));
        }
        let hash = sha256_hex(text.as_bytes());
        Ok(CallToolResult::success(vec![
            ContentBlock::text(text),
            ContentBlock::text(format!("sha256:{hash}")),
        ]))
    }

    /// Wait, then answer; a cancelled call stops at once, and says so in
    /// the server's log.
    #[tool(description = "Wait `ms` milliseconds, then answer")]
    async fn sleep(
        &self,
        ct: tokio_util::sync::CancellationToken,
        Parameters(SleepArgs { ms }): Parameters<SleepArgs>,
    ) -> String {
        let started = std::time::Instant::now();
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_millis(ms.min(600_000))) => {
                format!("slept {ms} ms")
            }
            () = ct.cancelled() => {
                tracing::warn!("sleep cancelled after {} ms", started.elapsed().as_millis());
                "cancelled".to_owned()
            }
        }
    }
}

#[tool_handler]
impl ServerHandler for Greeter {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_instructions("A greeter over WebRTC: greet, echo, blob, sleep.")
    }
}

/// An rmcp client of the greeter served in this process over rmcp's own
/// transport on an in-memory pipe: the floor the benchmarks compare with.
/// Its line limit (16 MiB by default) is raised to carry 256 MiB results.
pub(crate) async fn in_memory_client()
-> Result<rmcp::service::RunningService<rmcp::RoleClient, ()>, rmcp::service::ClientInitializeError>
{
    use rmcp::ServiceExt;
    use rmcp::transport::async_rw::AsyncRwTransport;
    const LINE: usize = 256 << 20;
    let (a, b) = tokio::io::duplex(1 << 20);
    tokio::spawn(async move {
        let (read, write) = tokio::io::split(a);
        let transport = AsyncRwTransport::new_server(read, write).with_max_line_length(LINE);
        if let Ok(running) = Greeter::default().serve(transport).await {
            let _ = running.waiting().await;
        }
    });
    let (read, write) = tokio::io::split(b);
    let transport = AsyncRwTransport::new_client(read, write).with_max_line_length(LINE);
    ().serve(transport).await
}

/// `bytes` bytes of printable ASCII, varying with `seed`.
#[must_use]
pub(crate) fn blob(bytes: usize, seed: u64) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let start = usize::try_from(seed % 64).unwrap_or(0);
    let pattern: Vec<u8> = ALPHABET
        .iter()
        .cycle()
        .skip(start)
        .take(4096)
        .copied()
        .collect();
    let out: Vec<u8> = pattern.iter().copied().cycle().take(bytes).collect();
    String::from_utf8(out).unwrap_or_default()
}

/// Lower-case hex SHA-256.
#[must_use]
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
