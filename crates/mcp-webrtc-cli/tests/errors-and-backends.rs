//! The other signaling backends through the CLI (aiortc-dialect TCP and Unix
//! sockets, with and without a secret), and the messages a person reads
//! when something is wrong, with their exit codes.
#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::indexing_slicing
)]

mod support;

use std::process::Command;

use support::{LIMIT, Proc, Relay, TOKEN, expect_gone, stdio_server};

/// `connect ARGS` with a host that lists the tools, holding stdin 3 s.
fn connect_listing(args: &[&str]) -> Proc {
    support::cli_with_host(args, 3)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn serve_on(signal: &str, extra: &[&str]) -> Proc {
    let server = stdio_server();
    let mut cmd = Command::new(support::bin());
    cmd.args(["serve", "--signal", signal, "--bind", "127.0.0.1:0"])
        .args(extra)
        .arg("--")
        .arg(&server);
    let serve = Proc::spawn("serve", cmd);
    serve.stderr.expect("waiting for a peer on", LIMIT);
    serve
}

#[test]
fn tcp_signaling_serves_one_session_with_or_without_a_secret() {
    for extra in [
        &[][..],
        &["--secret", "00112233445566778899aabbccddeeff"][..],
    ] {
        let signal = format!("tcp://127.0.0.1:{}", free_port());
        let mut serve = serve_on(&signal, extra);
        let mut args = vec!["connect", "--signal", &signal, "--bind", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut client = connect_listing(&args);
        client.stdout.expect("\"greet\"", LIMIT);
        assert!(client.wait(LIMIT).expect("connect exits").success());
        // One session over aiortc signaling: serve exits with it.
        let status = serve.wait(LIMIT).expect("serve exits after its session");
        assert!(status.success(), "{}", serve.stderr.text());
        let child: Vec<u32> = serve
            .stderr
            .all()
            .iter()
            .filter_map(|l| l.split("(pid ").nth(1)?.strip_suffix(')')?.parse().ok())
            .collect();
        assert_eq!(child.len(), 1);
        expect_gone(&child, LIMIT);
    }
}

#[test]
fn over_tcp_a_secret_on_one_side_only_is_refused() {
    let signal = format!("tcp://127.0.0.1:{}", free_port());
    let _serve = serve_on(&signal, &["--secret", "00112233445566778899aabbccddeeff"]);
    let mut client = connect_listing(&["connect", "--signal", &signal, "--bind", "127.0.0.1:0"]);
    let status = client.wait(LIMIT).expect("exits");
    assert_eq!(status.code(), Some(4), "{}", client.stderr.text());
    client.stderr.expect("pairing failed", LIMIT);
}

#[test]
fn unix_socket_signaling_serves_a_session() {
    let path = std::env::temp_dir().join(format!("{}.sock", support::unique("mcpw")));
    let signal = format!("unix:{}", path.display());
    let mut serve = serve_on(&signal, &[]);
    let mut client = connect_listing(&["connect", "--signal", &signal, "--bind", "127.0.0.1:0"]);
    client.stdout.expect("\"greet\"", LIMIT);
    assert!(client.wait(LIMIT).expect("connect exits").success());
    assert!(serve.wait(LIMIT).expect("serve exits").success());
}

#[test]
fn a_peer_that_never_answers_is_reported_with_the_timeout() {
    let relay = Relay::start();
    let room = format!("{}/v1/room/{}", relay.url, support::unique("empty"));
    let mut cmd = Command::new(support::bin());
    cmd.args([
        "connect",
        "--signal",
        &room,
        "--no-pairing",
        "--timeout",
        "2",
        "--bind",
        "127.0.0.1:0",
    ])
    .env("MCP_WEBRTC_TOKEN", TOKEN);
    let mut client = Proc::spawn("connect", cmd);
    let status = client.wait(LIMIT).expect("exits");
    assert_eq!(status.code(), Some(5), "{}", client.stderr.text());
    client
        .stderr
        .expect("the peer did not answer within 2 s", LIMIT);
}

#[test]
fn an_unreachable_relay_and_bad_options_say_what_to_do() {
    let closed = format!("ws://127.0.0.1:{}", free_port());
    let cases: [(&[&str], i32, &str); 5] = [
        (
            &[
                "connect",
                "--signal",
                &closed,
                "--name",
                "x",
                "--no-pairing",
                "--timeout",
                "2",
            ],
            3,
            "signaling",
        ),
        (
            &["connect", "--signal", "http://x"],
            2,
            "expected ws://HOST:PORT",
        ),
        (&["connect", "mcpw://127.0.0.1:1/x#00"], 2, "pairing secret"),
        (
            &[
                "serve",
                "--signal",
                "ws://127.0.0.1:1",
                "--relay-only",
                "--",
                "true",
            ],
            2,
            "--relay-only needs a TURN server",
        ),
        (
            &[
                "serve",
                "--signal",
                "ws://127.0.0.1:1",
                "--ice-server",
                "turn:127.0.0.1:3478",
                "--",
                "true",
            ],
            2,
            "needs --turn-username",
        ),
    ];
    for (args, code, says) in cases {
        let mut cmd = Command::new(support::bin());
        cmd.args(args).env("MCP_WEBRTC_TOKEN", TOKEN);
        let mut proc = Proc::spawn("cli", cmd);
        let status = proc.wait(LIMIT).expect("exits");
        assert_eq!(
            status.code(),
            Some(code),
            "{args:?}: {}",
            proc.stderr.text()
        );
        proc.stderr.expect(says, LIMIT);
    }
}

#[test]
fn a_host_that_closes_stdin_at_once_still_gets_its_answers() {
    let relay = Relay::start();
    let server = stdio_server();
    let serve = support::Serve::start(
        &relay,
        &["--name", &support::unique("piped")],
        &[server.to_str().unwrap()],
    );
    let mut args: Vec<String> = support::connect_args(&serve.url);
    args.push(format!("--token={TOKEN}"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cmd = support::cli_with_host(&args, 0);
    cmd.stdout.expect("\"greet\"", LIMIT);
    assert!(cmd.wait(LIMIT).expect("exits").success());
}

#[test]
fn serve_in_one_relay_room_prints_what_the_client_needs() {
    let relay = Relay::start();
    let room = format!("{}/v1/room/{}", relay.url, support::unique("room"));
    let server = stdio_server();
    let mut cmd = Command::new(support::bin());
    cmd.args(["serve", "--signal", &room, "--bind", "127.0.0.1:0", "--"])
        .arg(&server)
        .env("MCP_WEBRTC_TOKEN", TOKEN);
    let serve = Proc::spawn("serve", cmd);
    let line = serve
        .stdout
        .wait_for(LIMIT, |l| {
            l.strip_prefix("mcp-webrtc connect ").map(str::to_owned)
        })
        .expect("serve prints the connect line");
    // `--signal 'ROOM' --secret HEX`
    let words: Vec<String> = line
        .split_whitespace()
        .map(|w| w.trim_matches('\'').to_owned())
        .collect();
    assert_eq!(words[0], "--signal");
    assert_eq!(words[1], room);
    assert_eq!(words[2], "--secret");
    let mut args = vec!["connect", "--bind", "127.0.0.1:0"];
    args.extend(words.iter().map(String::as_str));
    let token = format!("--token={TOKEN}");
    args.push(&token);
    let mut client = connect_listing(&args);
    client.stdout.expect("\"greet\"", LIMIT);
    assert!(client.wait(LIMIT).expect("exits").success());
}
