//! Real stdio MCP servers that nobody here wrote, and our own, behind
//! `mcp-webrtc serve`, reached through `mcp-webrtc connect` by real hosts
//! (rmcp's child-process client and the Python SDK's stdio client), with
//! the relay on loopback. Every message crosses both bridges unchanged.
#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    // Sampling and roots are deprecated by the 2026 spec; a bridge must
    // still carry them for servers and hosts of the earlier revisions.
    deprecated
)]

#[path = "../../../examples/common/greeter.rs"]
mod greeter;
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientConfig, CreateMessageRequestParams,
    CreateMessageResult, ErrorData, ListRootsResult, NumberOrString, ProgressNotificationParam,
    ProgressToken, RequestMetaObject, Root, SamplingMessage,
};
use rmcp::service::{NotificationContext, RequestContext, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use support::{LIMIT, Relay, Serve, TOKEN, connect_args, deps, expect_gone, stdio_server};

/// A host: answers sampling and roots, and keeps the progress it is sent.
#[derive(Clone, Default)]
struct Host {
    progress: Arc<Mutex<Vec<f64>>>,
    sampled: Arc<Mutex<Vec<String>>>,
}

impl ClientHandler for Host {
    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        let asked = serde_json::to_string(&params.messages).unwrap();
        self.sampled.lock().unwrap().push(asked);
        Ok(CreateMessageResult::new(
            SamplingMessage::assistant_text("sampled by rmcp"),
            "test-model".into(),
        ))
    }

    async fn list_roots(
        &self,
        _context: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, ErrorData> {
        Ok(ListRootsResult::new(vec![Root::new(
            "file:///tmp/mcpw-root",
        )]))
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.progress.lock().unwrap().push(params.progress);
    }

    fn get_info(&self) -> ClientConfig {
        serde_json::from_value(serde_json::json!({
            "protocolVersion": "2025-06-18",
            "capabilities": {"sampling": {}, "roots": {"listChanged": true}},
            "clientInfo": {"name": "cli-test-host", "version": "1"}
        }))
        .unwrap()
    }
}

/// rmcp's child-process client, launching `mcp-webrtc connect URL` as its
/// stdio server.
async fn host_via_connect(url: &str, host: Host) -> RunningService<RoleClient, Host> {
    let mut cmd = tokio::process::Command::new(support::bin());
    cmd.args(connect_args(url)).env("MCP_WEBRTC_TOKEN", TOKEN);
    let (transport, _) = TokioChildProcess::builder(cmd)
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    tokio::time::timeout(LIMIT, host.serve(transport))
        .await
        .expect("initialize in time")
        .expect("initialize through both bridges")
}

/// The same host over `connect`'s pipes, built with rmcp's
/// `AsyncRwTransport` and a line limit raised to 64 MiB: rmcp's
/// child-process client drops any line over 16 MiB (its
/// `DEFAULT_MAX_LINE_LENGTH`), whatever carries it.
async fn host_via_connect_pipes(
    url: &str,
    host: Host,
) -> (RunningService<RoleClient, Host>, tokio::process::Child) {
    let mut cmd = tokio::process::Command::new(support::bin());
    cmd.args(connect_args(url))
        .env("MCP_WEBRTC_TOKEN", TOKEN)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let stdin = child.stdin.take().unwrap();
    let transport =
        rmcp::transport::async_rw::AsyncRwTransport::<RoleClient, _, _>::new(stdout, stdin)
            .with_max_line_length(64 << 20);
    let client = tokio::time::timeout(LIMIT, host.serve(transport))
        .await
        .expect("initialize in time")
        .expect("initialize through both bridges");
    (client, child)
}

async fn call(
    client: &RunningService<RoleClient, Host>,
    params: CallToolRequestParams,
) -> CallToolResult {
    tokio::time::timeout(LIMIT, client.call_tool(params))
        .await
        .expect("answered in time")
        .expect("call_tool")
}

fn args(value: serde_json::Value) -> rmcp::model::JsonObject {
    value.as_object().unwrap().clone()
}

fn text(result: &CallToolResult, i: usize) -> String {
    result.content[i].as_text().expect("text").text.clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn our_rmcp_server_through_both_bridges_with_a_20_mib_result_and_a_cancelled_call() {
    let relay = Relay::start();
    let server = stdio_server();
    let serve = Serve::start(
        &relay,
        &["--name", &support::unique("ours")],
        &[server.to_str().unwrap()],
    );
    let (client, mut connect) = host_via_connect_pipes(&serve.url, Host::default()).await;

    let tools = client.list_all_tools().await.unwrap();
    let mut names: Vec<_> = tools.iter().map(|t| t.name.to_string()).collect();
    names.sort();
    assert_eq!(names, ["blob", "echo", "greet", "sleep"]);
    let echoed = call(
        &client,
        CallToolRequestParams::new("echo")
            .with_arguments(args(serde_json::json!({"text": "über ✓ \"quoted\""}))),
    )
    .await;
    assert_eq!(text(&echoed, 0), "über ✓ \"quoted\"");

    // 20 MiB through connect → WebRTC (chunked) → serve → child and back.
    let size = 20 * 1024 * 1024;
    let blob = call(
        &client,
        CallToolRequestParams::new("blob")
            .with_arguments(args(serde_json::json!({"bytes": size, "seed": 7}))),
    )
    .await;
    let body = text(&blob, 0);
    assert_eq!(body.len(), size);
    let expected = greeter::sha256_hex(greeter::blob(size, 7).as_bytes());
    assert_eq!(greeter::sha256_hex(body.as_bytes()), expected);
    assert_eq!(text(&blob, 1), format!("sha256:{expected}"));

    // A call the host gives up on is cancelled at the server: rmcp sends
    // notifications/cancelled when the call's future is dropped.
    let slow =
        CallToolRequestParams::new("sleep").with_arguments(args(serde_json::json!({"ms": 30_000})));
    let gave_up = tokio::time::timeout(Duration::from_millis(500), client.call_tool(slow)).await;
    assert!(gave_up.is_err(), "the sleep should still be running");
    serve.proc.stderr.expect("[session 1]", LIMIT);
    serve.proc.stderr.expect("sleep cancelled", LIMIT);
    // And the session goes on.
    let after = call(
        &client,
        CallToolRequestParams::new("greet")
            .with_arguments(args(serde_json::json!({"name": "Ada"}))),
    )
    .await;
    assert_eq!(text(&after, 0), "Hello, Ada!");

    // The host leaves (closes `connect`'s stdin): `connect` exits 0, and
    // the child on the other side ends.
    let child = serve.wait_child(1);
    client.cancel().await.unwrap();
    let status = tokio::time::timeout(LIMIT, connect.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "connect exited with {status}");
    serve
        .proc
        .stderr
        .expect("session 1: closed by the peer", LIMIT);
    expect_gone(&[child], LIMIT);
}

#[tokio::test(flavor = "multi_thread")]
async fn server_everything_sends_progress_and_asks_the_host_for_roots_and_sampling() {
    let (node, entry) = deps::everything();
    let relay = Relay::start();
    let serve = Serve::start(
        &relay,
        &["--name", &support::unique("everything")],
        &[node.to_str().unwrap(), entry.to_str().unwrap(), "stdio"],
    );
    let host = Host::default();
    let client = host_via_connect(&serve.url, host.clone()).await;
    assert_eq!(
        client
            .peer_info()
            .unwrap()
            .server_info
            .as_ref()
            .unwrap()
            .name,
        "mcp-servers/everything"
    );
    // The tools that depend on the host's capabilities appear once the
    // server has seen them (it says so with tools/list_changed).
    let deadline = std::time::Instant::now() + LIMIT;
    let names = loop {
        let names: Vec<String> = client
            .list_all_tools()
            .await
            .unwrap()
            .iter()
            .map(|t| t.name.to_string())
            .collect();
        if names.iter().any(|n| n == "trigger-sampling-request")
            || std::time::Instant::now() > deadline
        {
            break names;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for tool in [
        "echo",
        "get-sum",
        "trigger-long-running-operation",
        "trigger-sampling-request",
        "get-roots-list",
    ] {
        assert!(
            names.iter().any(|n| n == tool),
            "{tool} missing from {names:?}"
        );
    }
    let sum = call(
        &client,
        CallToolRequestParams::new("get-sum")
            .with_arguments(args(serde_json::json!({"a": 2, "b": 40}))),
    )
    .await;
    assert!(text(&sum, 0).contains("42"), "{}", text(&sum, 0));

    // Progress notifications for a request cross back to the host.
    let mut long = CallToolRequestParams::new("trigger-long-running-operation")
        .with_arguments(args(serde_json::json!({"duration": 1, "steps": 4})));
    long.meta = Some(RequestMetaObject::with_progress_token(ProgressToken(
        NumberOrString::Number(77),
    )));
    let done = call(&client, long).await;
    assert!(text(&done, 0).contains("completed"), "{}", text(&done, 0));
    // rmcp runs notification handlers on tasks of their own, so the last
    // one may land just after the result: wait for it (bounded).
    let deadline = std::time::Instant::now() + LIMIT;
    while host.progress.lock().unwrap().len() < 4 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(*host.progress.lock().unwrap(), vec![1.0, 2.0, 3.0, 4.0]);

    // A server-to-client request: the server asks the host to sample.
    let sampled = call(
        &client,
        CallToolRequestParams::new("trigger-sampling-request").with_arguments(args(
            serde_json::json!({"prompt": "hello from the test", "maxTokens": 5}),
        )),
    )
    .await;
    assert!(
        text(&sampled, 0).contains("sampled by rmcp"),
        "{}",
        text(&sampled, 0)
    );
    assert!(host.sampled.lock().unwrap()[0].contains("hello from the test"));

    // Another: the server lists the host's roots.
    let roots = call(&client, CallToolRequestParams::new("get-roots-list")).await;
    let shown: String = roots
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect();
    assert!(shown.contains("file:///tmp/mcpw-root"), "{shown}");

    let child = serve.wait_child(1);
    client.cancel().await.unwrap();
    expect_gone(&[child], LIMIT);
}

/// The Python SDK's stdio client, launching `connect`; returns its summary.
fn python_client(
    url: &str,
    calls: &[(&str, serde_json::Value)],
    blob: Option<(&str, &str, usize)>,
) -> serde_json::Value {
    let python = deps::python_mcp2();
    let mut cmd = std::process::Command::new(&python);
    cmd.arg(deps::script("py_client.py"));
    for (name, arguments) in calls {
        cmd.args(["--call", name, &arguments.to_string()]);
    }
    if let Some((tool, field, size)) = blob {
        cmd.args(["--blob", tool, field, &size.to_string()]);
    }
    cmd.arg("--")
        .arg(support::bin())
        .args(connect_args(url))
        .env("MCP_WEBRTC_TOKEN", TOKEN);
    let mut proc = support::Proc::spawn("py-client", cmd);
    let status = proc
        .wait(LIMIT * 2)
        .expect("the Python client finished in time");
    assert!(
        status.success(),
        "python client failed: {}",
        proc.stderr.text()
    );
    let line = proc.stdout.all().last().cloned().expect("a summary line");
    serde_json::from_str(&line).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_sdk_as_host_and_as_server_through_both_bridges() {
    let python = deps::python_mcp2();
    let relay = Relay::start();
    let serve = Serve::start(
        &relay,
        &["--name", &support::unique("python")],
        &[
            python.to_str().unwrap(),
            deps::script("py_server.py").to_str().unwrap(),
        ],
    );
    let size = 20 * 1024 * 1024;
    let seen = tokio::task::spawn_blocking({
        let url = serve.url.clone();
        move || {
            python_client(
                &url,
                &[
                    ("echo", serde_json::json!({"text": "from python"})),
                    ("ask", serde_json::json!({"question": "are you there?"})),
                ],
                Some(("blob", "size", size)),
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(seen["server"], "py-mcp2-test-server");
    assert_eq!(
        seen["tools"],
        serde_json::json!(["ask", "blob", "echo", "slow"])
    );
    assert_eq!(
        seen["calls"][0]["texts"],
        serde_json::json!(["from python"])
    );
    // The Python server asked the Python host to sample, across both bridges.
    assert_eq!(
        seen["calls"][1]["texts"],
        serde_json::json!(["sampled by python"])
    );
    assert_eq!(
        seen["blobs"][0],
        serde_json::json!({"size": size, "intact": true})
    );
    let child = serve.wait_child(1);
    expect_gone(&[child], LIMIT);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_sdk_server_sees_a_cancelled_call_from_an_rmcp_host() {
    let python = deps::python_mcp2();
    let relay = Relay::start();
    let serve = Serve::start(
        &relay,
        &["--name", &support::unique("py-cancel")],
        &[
            python.to_str().unwrap(),
            deps::script("py_server.py").to_str().unwrap(),
        ],
    );
    let client = host_via_connect(&serve.url, Host::default()).await;
    let slow =
        CallToolRequestParams::new("slow").with_arguments(args(serde_json::json!({"ms": 30_000})));
    let gave_up = tokio::time::timeout(Duration::from_millis(800), client.call_tool(slow)).await;
    assert!(gave_up.is_err());
    serve
        .proc
        .stderr
        .expect("[session 1] slow cancelled", LIMIT);
    let echoed = call(
        &client,
        CallToolRequestParams::new("echo")
            .with_arguments(args(serde_json::json!({"text": "still here"}))),
    )
    .await;
    assert_eq!(text(&echoed, 0), "still here");
    let child = serve.wait_child(1);
    client.cancel().await.unwrap();
    expect_gone(&[child], LIMIT);
}
