//! The greeter's MCP client over WebRTC: answers the server's offer (or
//! offers, with `--offer`), lists the tools and calls `greet`.
//!
//! ```text
//! cargo run --example greeter_server -- --signal 127.0.0.1:9999
//! cargo run --example greeter_client -- --signal 127.0.0.1:9999 --name Ada
//! ```
//!
//! With `--blob BYTES` it also asks for a result of that size and checks its
//! SHA-256. With `--hold` it then stays until the server ends the session,
//! prints how it ended (`END …`), and exits 0 if cleanly, 3 if the server
//! went away. Python's `mcp-webrtc` server works as the other side.
#![allow(clippy::print_stdout)]

#[path = "common/greeter.rs"]
mod greeter;
#[path = "common/signal.rs"]
mod signal;

use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use mcp_webrtc::rmcp::model::CallToolRequestParams;
use mcp_webrtc::rmcp::service::RunningService;
use mcp_webrtc::rmcp::{RoleClient, ServiceExt};
use mcp_webrtc::{EndReason, WebRtcTransport};
use sha2::{Digest, Sha256};

/// Call the greeter over WebRTC.
#[derive(Debug, Parser)]
struct Args {
    #[command(flatten)]
    signal: signal::SignalArgs,
    /// Who to greet.
    #[arg(long, default_value = "world")]
    name: String,
    /// Local UDP addresses for WebRTC (repeatable). Default: loopback and
    /// every interface.
    #[arg(long)]
    bind: Vec<SocketAddr>,
    /// Offer (and create the channel) instead of answering, for a server
    /// with `initiator=False`.
    #[arg(long)]
    offer: bool,
    /// Also ask for a `blob` result of this many bytes and check its SHA-256.
    #[arg(long)]
    blob: Option<u64>,
    /// Afterwards, stay until the server ends the session (at most an hour).
    #[arg(long)]
    hold: bool,
    /// Instead of the checks, time ROUNDS small calls and a few result
    /// sizes, and print them as one `BENCH {json}` line.
    #[arg(long, value_name = "ROUNDS")]
    bench: Option<usize>,
    /// With --bench: the greeter in this process over rmcp's in-memory
    /// transport (the floor), no WebRTC.
    #[arg(long)]
    memory: bool,
}

/// Our warnings, but only the WebRTC stack's errors (it warns routinely).
const QUIET_STACK: &str = "warn,rtc=error,rtc_dtls=error,rtc_ice=error,rtc_sctp=error,webrtc=error";

fn arguments(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match value {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

#[tokio::main]
async fn main() -> Result<ExitCode, Box<dyn Error + Send + Sync>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| QUIET_STACK.into()),
        )
        .init();
    let args = Args::parse();
    let start = Instant::now();
    if let (Some(rounds), true) = (args.bench, args.memory) {
        let client = greeter::in_memory_client().await?;
        bench(&client, start, rounds).await;
        client.cancel().await?;
        return Ok(ExitCode::SUCCESS);
    }
    let signaling = signal::signaling(&args.signal, args.offer).await?;
    let mut builder = WebRtcTransport::builder().initiator(args.offer);
    if !args.bind.is_empty() {
        builder = builder.bind(args.bind);
    }
    let transport = builder.client(signaling).await?;
    let handle = transport.handle();
    let client = ().serve(transport).await?;
    if let Some(rounds) = args.bench {
        bench(&client, start, rounds).await;
        client.cancel().await?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "initialized in {:.1} ms",
        start.elapsed().as_secs_f64() * 1000.0
    );
    let tools = client.list_all_tools().await?;
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    println!("tools: {}", names.join(", "));
    let greet = CallToolRequestParams::new("greet")
        .with_arguments(arguments(serde_json::json!({ "name": args.name })));
    let result = client.call_tool(greet).await?;
    let text = result
        .content
        .first()
        .and_then(|c| c.as_text())
        .map(|t| t.text.clone())
        .ok_or("greet returned no text")?;
    println!("greet -> {text}");

    if let Some(bytes) = args.blob {
        let call = CallToolRequestParams::new("blob")
            .with_arguments(arguments(serde_json::json!({ "bytes": bytes, "seed": 5 })));
        let result = client.call_tool(call).await?;
        let texts: Vec<&str> = result
            .content
            .iter()
            .filter_map(|c| c.as_text())
            .map(|t| t.text.as_str())
            .collect();
        let [body, claimed] = texts[..] else {
            return Err(format!("blob returned {} text parts, expected 2", texts.len()).into());
        };
        let digest: String = Sha256::digest(body.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if body.len() as u64 != bytes || claimed != format!("sha256:{digest}") {
            return Err(format!("blob of {bytes} bytes arrived corrupted").into());
        }
        println!("blob -> {bytes} bytes, sha256 matches");
    }

    if !args.hold {
        client.cancel().await?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("HOLDING");
    let _ = tokio::time::timeout(Duration::from_secs(3600), client.waiting()).await;
    let end = handle.end_reason();
    println!(
        "END {}",
        end.as_ref()
            .map_or_else(|| "-".to_owned(), ToString::to_string)
    );
    Ok(match end {
        Some(EndReason::PeerGone { .. } | EndReason::SendFailed { .. }) => ExitCode::from(3),
        _ => ExitCode::SUCCESS,
    })
}

type Client = RunningService<RoleClient, ()>;

/// The same measurements as `xtask/interop/mcp_peer.py --bench`.
async fn bench(client: &Client, start: Instant, rounds: usize) {
    let init_ms = start.elapsed().as_secs_f64() * 1000.0;
    let call = |name: &str, args: serde_json::Value| {
        let params = CallToolRequestParams::new(name.to_owned()).with_arguments(arguments(args));
        tokio::time::timeout(Duration::from_secs(30), client.call_tool(params))
    };
    for _ in 0..20 {
        let _ = call("echo", serde_json::json!({"text": "warm"})).await;
    }
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        if !matches!(
            call("echo", serde_json::json!({"text": "ping"})).await,
            Ok(Ok(_))
        ) {
            break;
        }
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    samples.sort_by(f64::total_cmp);
    // Nearest-rank percentile: index = round((n - 1) * p / 100).
    let pick = |percent: usize| {
        let last = samples.len().saturating_sub(1);
        samples
            .get(last.saturating_mul(percent).saturating_add(50) / 100)
            .copied()
    };
    let mut out = serde_json::Map::new();
    let fixed = serde_json::json!({
        "init_ms": init_ms,
        "call_median_us": pick(50),
        "call_p99_us": pick(99),
    });
    if let serde_json::Value::Object(fixed) = fixed {
        out.extend(fixed);
    }
    for (name, size) in [
        ("10KiB", 10 * 1024),
        ("100KiB", 100 * 1024),
        ("256KiB", 256 * 1000),
        ("10MiB", 10 << 20),
    ] {
        let mut times = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let args = serde_json::json!({"bytes": size, "hash": false});
            match call("blob", args).await {
                Ok(Ok(result))
                    if result
                        .content
                        .first()
                        .and_then(|c| c.as_text())
                        .is_some_and(|t| t.text.len() == size) =>
                {
                    times.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                _ => break,
            }
        }
        times.sort_by(f64::total_cmp);
        let median = (times.len() == 5).then(|| times.get(2).copied()).flatten();
        out.insert(format!("result_{name}_ms"), median.into());
    }
    println!("BENCH {}", serde_json::Value::Object(out));
}
