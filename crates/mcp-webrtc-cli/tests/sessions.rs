//! `serve`'s sessions and their child processes: several at once, the
//! session limit, and every way a session ends, with no process left
//! behind.
#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod support;

use std::time::Duration;

use nix::sys::signal::Signal;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use support::{LIMIT, Relay, Serve, TOKEN, connect, connect_args, expect_gone, stdio_server};

/// rmcp's child-process client on `connect URL`, and `connect`'s pid.
async fn host(url: &str) -> (RunningService<RoleClient, ()>, u32) {
    let mut cmd = tokio::process::Command::new(support::bin());
    cmd.args(connect_args(url)).env("MCP_WEBRTC_TOKEN", TOKEN);
    let (transport, _) = TokioChildProcess::builder(cmd)
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let pid = transport.id().unwrap();
    let client = tokio::time::timeout(LIMIT, ().serve(transport))
        .await
        .expect("initialize in time")
        .expect("initialize");
    (client, pid)
}

async fn greet(client: &RunningService<RoleClient, ()>, name: &str) -> String {
    let params = CallToolRequestParams::new("greet").with_arguments(
        serde_json::json!({"name": name})
            .as_object()
            .unwrap()
            .clone(),
    );
    let result: CallToolResult = tokio::time::timeout(LIMIT, client.call_tool(params))
        .await
        .expect("answered in time")
        .expect("call_tool");
    result.content[0].as_text().unwrap().text.clone()
}

fn serve_ours(relay: &Relay, extra: &[&str]) -> Serve {
    let name = support::unique("sessions");
    let mut args = vec!["--name", name.as_str()];
    args.extend_from_slice(extra);
    let server = stdio_server();
    Serve::start(relay, &args, &[server.to_str().unwrap()])
}

fn kill(pid: u32, signal: Signal) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()),
        signal,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_clients_are_served_at_once_each_by_a_child_of_its_own() {
    let relay = Relay::start();
    let serve = serve_ours(&relay, &[]);
    let (a, _) = host(&serve.url).await;
    let (b, _) = host(&serve.url).await;
    assert_eq!(greet(&a, "A").await, "Hello, A!");
    assert_eq!(greet(&b, "B").await, "Hello, B!");
    let (first, second) = (serve.wait_child(1), serve.wait_child(2));
    assert_ne!(first, second);
    assert!(support::alive(first) && support::alive(second));
    // Interleaved calls stay on their own sessions.
    let (x, y) = tokio::join!(greet(&a, "again A"), greet(&b, "again B"));
    assert_eq!(
        (x.as_str(), y.as_str()),
        ("Hello, again A!", "Hello, again B!")
    );
    a.cancel().await.unwrap();
    expect_gone(&[first], LIMIT);
    assert!(
        support::alive(second),
        "the other session's child must stay"
    );
    assert_eq!(greet(&b, "still").await, "Hello, still!");
    b.cancel().await.unwrap();
    expect_gone(&[second], LIMIT);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_beyond_max_sessions_is_refused_with_a_clear_message() {
    let relay = Relay::start();
    let serve = serve_ours(&relay, &["--max-sessions", "1"]);
    let (a, _) = host(&serve.url).await;
    assert_eq!(greet(&a, "A").await, "Hello, A!");
    let mut refused = connect(&serve.url, TOKEN);
    let status = refused.wait(LIMIT).expect("the refused client exits");
    assert_eq!(status.code(), Some(7), "{}", refused.stderr.text());
    refused.stderr.expect(
        "the server refused the session: the server is busy: it serves at most 1 at once",
        LIMIT,
    );
    serve
        .proc
        .stderr
        .expect("session 2: refused: the server is busy", LIMIT);
    assert_eq!(serve.child_pids().len(), 1, "no child for a refused client");
    // The first session is untouched, and once it ends there is room again.
    assert_eq!(greet(&a, "A").await, "Hello, A!");
    let first = serve.wait_child(1);
    a.cancel().await.unwrap();
    expect_gone(&[first], LIMIT);
    serve
        .proc
        .stderr
        .expect("session 1: closed by the peer", LIMIT);
    let (c, _) = host(&serve.url).await;
    assert_eq!(greet(&c, "C").await, "Hello, C!");
    let third = serve.wait_child(2);
    c.cancel().await.unwrap();
    expect_gone(&[third], LIMIT);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_child_ends_the_remote_session_cleanly() {
    let relay = Relay::start();
    let serve = serve_ours(&relay, &[]);
    let mut cmd = std::process::Command::new(support::bin());
    cmd.args(connect_args(&serve.url))
        .env("MCP_WEBRTC_TOKEN", TOKEN);
    // `connect` with its stdin held open (the host is still there).
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stdin = child.stdin.take();
    let stderr = child.stderr.take().unwrap();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut { stderr }, &mut text);
        sink.lock().unwrap().push_str(&text);
    });
    let server = serve.wait_child(1);
    kill(server, Signal::SIGKILL);
    serve.proc.stderr.expect(
        "session 1: the MCP server was killed by signal 9; session closed",
        LIMIT,
    );
    let deadline = std::time::Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "connect did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(stdin);
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        status.success(),
        "a clean close should exit 0: {status}, {}",
        lines.lock().unwrap()
    );
    assert!(
        lines.lock().unwrap().contains("session closed by the peer"),
        "{}",
        lines.lock().unwrap()
    );
    expect_gone(&[server], LIMIT);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_connect_ends_the_child_on_the_other_side() {
    let relay = Relay::start();
    let serve = serve_ours(&relay, &[]);
    let (client, connect_pid) = host(&serve.url).await;
    assert_eq!(greet(&client, "A").await, "Hello, A!");
    let server = serve.wait_child(1);
    kill(connect_pid, Signal::SIGKILL);
    // The dead-peer timeout is 5 s; SIGTERM's grace is 5 s more at most.
    serve
        .proc
        .stderr
        .expect("session 1: peer gone", Duration::from_secs(20));
    expect_gone(&[server], Duration::from_secs(20));
    drop(client);
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_to_serve_ends_every_child_and_session() {
    let relay = Relay::start();
    let mut serve = serve_ours(&relay, &[]);
    let (a, _) = host(&serve.url).await;
    let (b, _) = host(&serve.url).await;
    assert_eq!(greet(&a, "A").await, "Hello, A!");
    assert_eq!(greet(&b, "B").await, "Hello, B!");
    let children = [serve.wait_child(1), serve.wait_child(2)];
    serve.proc.signal(Signal::SIGINT);
    let status = serve.proc.wait(LIMIT).expect("serve exits on Ctrl-C");
    assert_eq!(status.code(), Some(130), "{}", serve.proc.stderr.text());
    expect_gone(&children, LIMIT);
    // Both hosts see their sessions end.
    for client in [a, b] {
        let quit = tokio::time::timeout(LIMIT, client.waiting())
            .await
            .expect("the session ends");
        assert!(quit.is_ok());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_to_connect_closes_the_session_and_ends_the_remote_child() {
    let relay = Relay::start();
    let serve = serve_ours(&relay, &[]);
    let (client, connect_pid) = host(&serve.url).await;
    assert_eq!(greet(&client, "A").await, "Hello, A!");
    let server = serve.wait_child(1);
    kill(connect_pid, Signal::SIGINT);
    serve
        .proc
        .stderr
        .expect("session 1: closed by the peer", LIMIT);
    expect_gone(&[server], LIMIT);
    drop(client);
}
