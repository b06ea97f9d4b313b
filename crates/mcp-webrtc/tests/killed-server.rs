//! A server process killed with SIGKILL mid-call: the client's pending call
//! and new calls fail fast with a clear error. A real second process over a
//! real peer connection on loopback.
//!
//! This binary has its own `main` (no libtest harness): run with
//! `MCP_WEBRTC_KILLED_SERVER_CHILD` set, it is the server process the test
//! starts and kills; otherwise it is the test.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::print_stdout
)]

#[path = "../../../examples/common/greeter.rs"]
mod greeter;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use greeter::Greeter;
use mcp_webrtc::rmcp::ServiceExt;
use mcp_webrtc::rmcp::model::CallToolRequestParams;
use mcp_webrtc::signaling::{Options, TcpSignaling};
use mcp_webrtc::{EndReason, WebRtcTransport};
use serde_json::{Value, json};

/// Set in the child's environment: be the server.
const CHILD: &str = "MCP_WEBRTC_KILLED_SERVER_CHILD";

fn loopback() -> Vec<SocketAddr> {
    vec![SocketAddr::from(([127, 0, 0, 1], 0))]
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() -> ExitCode {
    // RUST_LOG=… shows the stack's log on stderr (both processes), to
    // diagnose a failing run.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if std::env::var_os(CHILD).is_some() {
        runtime.block_on(greeter_server_process());
    } else {
        // A failed assertion panics, and the non-zero exit fails `cargo test`.
        runtime.block_on(a_killed_server_fails_pending_and_new_calls_fast());
        println!("test a_killed_server_fails_pending_and_new_calls_fast ... ok");
    }
    ExitCode::SUCCESS
}

/// The server process the test kills: a greeter on TCP signaling that
/// prints its port and serves until killed.
async fn greeter_server_process() {
    let listener = TcpSignaling::bind("127.0.0.1:0", Options::default())
        .await
        .unwrap();
    println!("PORT {}", listener.local_addr().unwrap().port());
    let signaling = listener.accept().await.unwrap();
    let transport = WebRtcTransport::builder()
        .bind(loopback())
        .server(signaling)
        .await
        .unwrap();
    let running = Greeter::default().serve(transport).await.unwrap();
    running.waiting().await.unwrap();
}

async fn a_killed_server_fails_pending_and_new_calls_fast() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD, "1")
        .stdout(Stdio::piped())
        .stderr(if std::env::var_os("RUST_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // Should an assertion fail before the kill, the server still goes.
    let mut child = KillOnDrop(child);
    let port = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|line| {
                line.strip_prefix("PORT ")
                    .map(|p| p.parse::<u16>().unwrap())
            })
    })
    .await
    .unwrap()
    .expect("the server process printed its port");

    let dead_peer_timeout = Duration::from_secs(5);
    let signaling =
        TcpSignaling::connect(SocketAddr::from(([127, 0, 0, 1], port)), Options::default())
            .await
            .unwrap();
    let transport = WebRtcTransport::builder()
        .bind(loopback())
        .dead_peer_timeout(dead_peer_timeout)
        .client(signaling)
        .await
        .unwrap();
    let handle = transport.handle();
    let client = ().serve(transport).await.unwrap();
    let call = |name: &str, args: Value| {
        let Value::Object(args) = args else { panic!() };
        client.call_tool(CallToolRequestParams::new(name.to_owned()).with_arguments(args))
    };
    let greeting = call("greet", json!({"name": "x"})).await.unwrap();
    assert_eq!(greeting.content[0].as_text().unwrap().text, "Hello, x!");

    // A call the server will never answer, then SIGKILL.
    let pending = tokio::spawn({
        let peer = client.peer().clone();
        async move {
            peer.call_tool(
                CallToolRequestParams::new("sleep")
                    .with_arguments(json!({"ms": 60_000}).as_object().unwrap().clone()),
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.0.kill().unwrap(); // SIGKILL
    let killed = Instant::now();
    child.0.wait().unwrap();

    // Scheduling slack on a loaded machine, beyond the timeout itself.
    let bound = dead_peer_timeout + Duration::from_millis(1500);
    let pending = tokio::time::timeout(bound, pending)
        .await
        .expect("the pending call failed within the dead-peer timeout")
        .unwrap();
    let error = pending
        .expect_err("a dead server cannot answer")
        .to_string();
    assert!(error.contains("peer gone"), "{error}");
    println!("pending call failed after {:?}: {error}", killed.elapsed());

    // New calls fail at once, without hanging.
    let new_call =
        tokio::time::timeout(Duration::from_secs(2), call("greet", json!({"name": "y"})))
            .await
            .expect("a new call fails fast");
    assert!(new_call.is_err());
    assert!(
        matches!(handle.end_reason(), Some(EndReason::PeerGone { .. })),
        "{:?}",
        handle.end_reason()
    );
}
