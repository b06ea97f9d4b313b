//! Who may connect: the relay's token, the pairing secret, and a relay
//! that rewrites the signaling to put its own peer in the middle.
#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::result_large_err // tungstenite's callback signature
)]

mod support;

use futures::{SinkExt, StreamExt};
use support::{LIMIT, Proc, Relay, Serve, TOKEN, connect, stdio_server};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

fn serve_ours(relay: &Relay) -> Serve {
    let server = stdio_server();
    Serve::start(
        relay,
        &["--name", &support::unique("pairing")],
        &[server.to_str().unwrap()],
    )
}

/// `connect` to `url` with a host that lists the tools.
fn connect_and_list(url: &str, extra: &[&str]) -> Proc {
    let args = support::connect_args(url);
    let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
    all.extend_from_slice(extra);
    support::cli_with_host(&all, 3)
}

#[test]
fn a_wrong_token_exits_non_zero_saying_the_relay_refused_it() {
    let relay = Relay::start();
    let serve = serve_ours(&relay);
    let mut client = connect(&serve.url, "not-the-token");
    let status = client.wait(LIMIT).expect("exits");
    assert_eq!(status.code(), Some(3), "{}", client.stderr.text());
    client.stderr.expect(
        "the relay refused the token: check --token or MCP_WEBRTC_TOKEN",
        LIMIT,
    );
    // serve with a wrong token cannot register.
    let mut cmd = std::process::Command::new(support::bin());
    cmd.args(["serve", "--signal", &relay.url, "--", "true"])
        .env("MCP_WEBRTC_TOKEN", "not-the-token");
    let mut bad = Proc::spawn("serve", cmd);
    let status = bad.wait(LIMIT).expect("exits");
    assert_eq!(status.code(), Some(3));
    bad.stderr.expect("the relay refused the token", LIMIT);
}

#[test]
fn a_wrong_pairing_secret_is_refused_and_the_server_serves_on() {
    let relay = Relay::start();
    let serve = serve_ours(&relay);
    let (head, secret) = serve.url.split_once('#').unwrap();
    let wrong: String = secret.chars().rev().collect();
    assert_ne!(wrong, secret);
    let mut client = connect(&format!("{head}#{wrong}"), TOKEN);
    let status = client.wait(LIMIT).expect("exits");
    assert_eq!(status.code(), Some(4), "{}", client.stderr.text());
    client.stderr.expect(
        "pairing failed: wrong secret, or someone altered the signaling",
        LIMIT,
    );
    assert!(
        !client.stderr.text().contains(&wrong),
        "the secret must not be printed"
    );
    assert!(serve.child_pids().is_empty(), "no child for a refused peer");
    // The right secret still works.
    let mut good = connect_and_list(&serve.url, &[]);
    good.stdout.expect("\"greet\"", LIMIT);
    good.wait(LIMIT).expect("exits");
}

#[test]
fn a_url_without_its_secret_is_refused_before_anything_is_sent() {
    let mut client = connect("mcpw://127.0.0.1:9/desk", TOKEN);
    let status = client.wait(LIMIT).expect("exits");
    assert_eq!(status.code(), Some(2));
    client.stderr.expect("no pairing secret", LIMIT);
}

/// What the proxy rewrites.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rewrite {
    Offers,
    Answers,
}

/// A fingerprint of some other certificate, as a relay that put its own
/// peer in the middle would have to announce.
const OTHER: &str = "a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";

fn rewrite(text: &str, what: Rewrite) -> String {
    let Ok(mut value) = serde_json::from_str::<serde_json::Value>(text) else {
        return text.to_owned();
    };
    let kind = value["type"].as_str().unwrap_or_default().to_owned();
    let wanted = match what {
        Rewrite::Offers => "offer",
        Rewrite::Answers => "answer",
    };
    if kind != wanted {
        return text.to_owned();
    }
    let sdp = value["sdp"].as_str().unwrap().to_owned();
    let swapped: Vec<String> = sdp
        .split("\r\n")
        .map(|line| {
            if line.starts_with("a=fingerprint:") {
                OTHER.to_owned()
            } else {
                line.to_owned()
            }
        })
        .collect();
    value["sdp"] = serde_json::Value::String(swapped.join("\r\n"));
    value.to_string()
}

/// A relay in front of the real one that forwards everything, swapping the
/// DTLS fingerprint in each offer or answer for its own. Returns its URL.
async fn evil_relay(upstream: String, what: Rewrite) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let mut seen = None;
                let callback = |request: &Request, response: Response| {
                    seen = Some((
                        request.uri().path().to_owned(),
                        request.headers().get("authorization").cloned(),
                    ));
                    Ok(response)
                };
                let Ok(down) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
                    return;
                };
                let (path, auth) = seen.unwrap();
                let mut request = format!("{upstream}{path}").into_client_request().unwrap();
                if let Some(auth) = auth {
                    request.headers_mut().insert("authorization", auth);
                }
                let Ok((up, _)) = tokio_tungstenite::connect_async(request).await else {
                    return;
                };
                let (mut up_tx, mut up_rx) = up.split();
                let (mut down_tx, mut down_rx) = down.split();
                let to_up = async {
                    while let Some(Ok(m)) = down_rx.next().await {
                        let m = match m {
                            Message::Text(t) => Message::text(rewrite(&t, what)),
                            other => other,
                        };
                        if up_tx.send(m).await.is_err() {
                            break;
                        }
                    }
                };
                let to_down = async {
                    while let Some(Ok(m)) = up_rx.next().await {
                        let m = match m {
                            Message::Text(t) => Message::text(rewrite(&t, what)),
                            other => other,
                        };
                        if down_tx.send(m).await.is_err() {
                            break;
                        }
                    }
                };
                tokio::select! { () = to_up => {}, () = to_down => {} }
            });
        }
    });
    url
}

/// `serve` behind a relay that rewrites what `what` says, and a client
/// that tries to connect through it (run to its end).
async fn through_evil_relay(
    what: Rewrite,
    extra: &[&str],
    client_extra: &'static [&'static str],
) -> (Relay, Serve, Proc) {
    let relay = Relay::start();
    let evil = evil_relay(relay.url.clone(), what).await;
    let server = stdio_server();
    let name = support::unique("evil");
    let mut args = vec!["--name", name.as_str()];
    args.extend_from_slice(extra);
    let serve = Serve::start_at(&evil, &args, &[server.to_str().unwrap()]);
    let url = serve.url.clone();
    let client = tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new(support::bin());
        cmd.args(support::connect_args(&url))
            .args(client_extra)
            .env("MCP_WEBRTC_TOKEN", TOKEN);
        let mut client = Proc::spawn("connect", cmd);
        client.wait(LIMIT);
        client
    })
    .await
    .unwrap();
    (relay, serve, client)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_relay_that_swaps_in_its_own_offer_is_refused_by_the_client() {
    let (_relay, serve, mut client) = through_evil_relay(Rewrite::Offers, &[], &[]).await;
    let status = client.wait(LIMIT).expect("exits");
    assert_eq!(status.code(), Some(4), "{}", client.stderr.text());
    client.stderr.expect("pairing failed: wrong secret, or someone altered the signaling (the offer does not match the pairing secret", LIMIT);
    assert!(
        serve.child_pids().is_empty(),
        "no MCP message may flow: no child was started"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_relay_that_swaps_in_its_own_answer_is_refused_by_the_server() {
    let (_relay, serve, mut client) = through_evil_relay(Rewrite::Answers, &[], &[]).await;
    serve.proc.stderr.expect(
        "session 1: set-up failed: pairing failed: wrong secret, or someone altered the signaling (the answer does not match the pairing secret",
        LIMIT,
    );
    let status = client.wait(LIMIT).expect("exits");
    assert!(
        !status.success(),
        "the client must not get a session: {}",
        client.stderr.text()
    );
    assert!(
        serve.child_pids().is_empty(),
        "no MCP message may flow: no child was started"
    );
}

#[test]
fn a_short_code_pairs_through_spake2_and_a_wrong_code_is_refused() {
    let relay = Relay::start();
    let server = stdio_server();
    let serve = Serve::start(
        &relay,
        &["--name", &support::unique("code"), "--code"],
        &[server.to_str().unwrap()],
    );
    assert!(
        !serve.url.contains('#'),
        "a code is not put in the URL: {}",
        serve.url
    );
    assert_eq!(serve.extra[0], "--code");
    let code = serve.extra[1].clone();
    assert_eq!(code.len(), 14, "{code}");
    // The right code: the session works.
    let mut good = connect_and_list(&serve.url, &["--code", &code]);
    good.stdout.expect("\"greet\"", LIMIT);
    good.wait(LIMIT).expect("exits");
    // A wrong one is refused before any MCP message flows.
    let last = if code.ends_with('0') { '1' } else { '0' };
    let wrong = format!("{}{last}", &code[..code.len() - 1]);
    let mut cmd = std::process::Command::new(support::bin());
    cmd.args(support::connect_args(&serve.url))
        .args(["--code", &wrong])
        .env("MCP_WEBRTC_TOKEN", TOKEN);
    let mut bad = Proc::spawn("connect", cmd);
    let status = bad.wait(LIMIT).expect("exits");
    assert_eq!(status.code(), Some(4), "{}", bad.stderr.text());
    bad.stderr.expect(
        "pairing failed: wrong secret, or someone altered the signaling",
        LIMIT,
    );
    assert!(
        !bad.stderr.text().contains(&wrong),
        "the code must not be printed"
    );
    assert_eq!(
        serve.child_pids().len(),
        1,
        "a child only for the paired client"
    );
}

#[test]
fn serve_stops_after_ten_wrong_codes() {
    let relay = Relay::start();
    let server = stdio_server();
    let mut serve = Serve::start(
        &relay,
        &["--name", &support::unique("guesses"), "--code"],
        &[server.to_str().unwrap()],
    );
    let code = serve.extra[1].clone();
    let wrong = if code.starts_with('9') {
        "1111-1111-1111"
    } else {
        "9999-9999-9999"
    };
    for attempt in 1..=10 {
        let mut cmd = std::process::Command::new(support::bin());
        cmd.args(support::connect_args(&serve.url))
            .args(["--code", wrong])
            .env("MCP_WEBRTC_TOKEN", TOKEN);
        let mut guess = Proc::spawn("connect", cmd);
        let status = guess.wait(LIMIT).expect("exits");
        assert_eq!(
            status.code(),
            Some(4),
            "attempt {attempt}: {}",
            guess.stderr.text()
        );
        guess.stderr.expect("a wrong pairing code", LIMIT);
    }
    let status = serve.proc.wait(LIMIT).expect("serve stops");
    assert_eq!(status.code(), Some(4));
    serve.proc.stderr.expect(
        "10 clients gave a wrong pairing code; restart serve for a new code",
        LIMIT,
    );
    assert!(serve.child_pids().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn without_pairing_the_same_rewrite_is_caught_only_by_dtls() {
    // The control: with --no-pairing nothing checks the SDP, and only the
    // DTLS handshake (which fails) keeps the relay out.
    let (_relay, serve, mut client) = through_evil_relay(
        Rewrite::Offers,
        &["--no-pairing"],
        &["--no-pairing", "--timeout", "5"],
    )
    .await;
    assert!(!serve.url.contains('#'));
    let status = client.wait(LIMIT).expect("exits");
    assert_eq!(status.code(), Some(5), "{}", client.stderr.text());
    assert!(!client.stderr.text().contains("pairing failed"));
    assert!(serve.child_pids().is_empty());
}
