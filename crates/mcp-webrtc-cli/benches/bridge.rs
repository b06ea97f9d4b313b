//! `call_tool` round trips through the whole bridge (host → `connect` →
//! WebRTC → `serve` → child) against the same child over plain stdio, in
//! the same run. Each round trip is timed on its own; medians and p99 are
//! of those, not means.
//!
//! Run by `cargo xtask bench`, which builds the release `stdio_server`
//! example first and writes the figures into `docs/performance.md`. It
//! prints one line, `BENCH {json}`.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::async_rw::AsyncRwTransport;
use rmcp::{RoleClient, ServiceExt};

const WARMUP: usize = 200;
const ROUNDS: usize = 2000;

fn stdio_server() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_mcp-webrtc"));
    let path = bin.parent().unwrap().join("examples").join("stdio_server");
    assert!(
        path.exists(),
        "{} is missing: `cargo build --release -p mcp-webrtc-cli --example stdio_server` (cargo xtask bench does)",
        path.display()
    );
    path
}

/// An rmcp client over a child's stdio.
async fn client(
    mut cmd: tokio::process::Command,
) -> (RunningService<RoleClient, ()>, tokio::process::Child) {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let transport = AsyncRwTransport::<RoleClient, _, _>::new(
        child.stdout.take().unwrap(),
        child.stdin.take().unwrap(),
    );
    let running = tokio::time::timeout(Duration::from_secs(60), ().serve(transport))
        .await
        .expect("initialize in time")
        .expect("initialize");
    (running, child)
}

/// Round trips of `greet`, each timed, in microseconds, sorted.
async fn round_trips(client: &RunningService<RoleClient, ()>) -> Vec<f64> {
    let params = || {
        CallToolRequestParams::new("greet").with_arguments(
            serde_json::json!({"name": "bench"})
                .as_object()
                .unwrap()
                .clone(),
        )
    };
    for _ in 0..WARMUP {
        client.call_tool(params()).await.unwrap();
    }
    let mut times = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let start = Instant::now();
        client.call_tool(params()).await.unwrap();
        times.push(start.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    times
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

/// A process whose stderr is read for a line; ended when dropped.
struct Bg(std::process::Child);

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_waiting(
    cmd: &mut std::process::Command,
    stream_stdout: bool,
    pick: impl Fn(&str) -> Option<String> + Send + 'static,
) -> (Bg, String) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let reader: Box<dyn std::io::Read + Send> = if stream_stdout {
        Box::new(child.stdout.take().unwrap())
    } else {
        Box::new(child.stderr.take().unwrap())
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            if let Some(found) = pick(&line) {
                let _ = tx.send(found);
            }
        }
    });
    let found = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the process started");
    (Bg(child), found)
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken.
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_mcp-webrtc"));
    let server = stdio_server();

    let (direct, mut direct_child) = client(tokio::process::Command::new(&server)).await;
    let plain = round_trips(&direct).await;
    direct.cancel().await.unwrap();
    let _ = direct_child.wait().await;

    let (_relay, url) = spawn_waiting(
        std::process::Command::new(&bin).args([
            "relay",
            "--listen",
            "127.0.0.1:0",
            "--allow-anonymous",
        ]),
        false,
        |l| {
            l.split("relay listening on ")
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .map(str::to_owned)
        },
    );
    let (_serve, pairing) = spawn_waiting(
        std::process::Command::new(&bin)
            .args([
                "serve",
                "--signal",
                &url,
                "--name",
                "bench",
                "--bind",
                "127.0.0.1:0",
                "--log-level",
                "warn",
                "--",
            ])
            .arg(&server),
        true,
        |l| {
            l.strip_prefix("mcp-webrtc connect '")
                .and_then(|r| r.strip_suffix('\''))
                .map(str::to_owned)
        },
    );
    let mut connect = tokio::process::Command::new(&bin);
    connect.args([
        "connect",
        &pairing,
        "--bind",
        "127.0.0.1:0",
        "--log-level",
        "warn",
    ]);
    let (bridged_client, mut connect_child) = client(connect).await;
    let bridged = round_trips(&bridged_client).await;
    bridged_client.cancel().await.unwrap();
    let _ = connect_child.wait().await;

    let figures = serde_json::json!({
        "rounds": ROUNDS,
        "stdio_p50_us": quantile(&plain, 0.5),
        "stdio_p99_us": quantile(&plain, 0.99),
        "bridge_p50_us": quantile(&bridged, 0.5),
        "bridge_p99_us": quantile(&bridged, 0.99),
    });
    println!("BENCH {figures}");
}
