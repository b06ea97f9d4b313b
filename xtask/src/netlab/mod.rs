//! `cargo xtask netlab`: Rust MCP peers in network namespaces behind NATs
//! and firewalls, with a real TURN server (coturn), every address inside
//! namespaces this creates (198.18.0.0/15). Root only.
//!
//! ```text
//!   mcpw-relay: br0 198.18.0.1/24 ("the internet"): coturn, the signaling relay,
//!               and a sink default route (coturn tears an allocation down on
//!               its first send to an unroutable address without one)
//!     ├─ mcpw-direct1 198.18.0.21, mcpw-direct2 198.18.0.22   (case 1)
//!     ├─ mcpw-nat1 wan 198.18.0.11 ── lan 198.19.1.1 ── mcpw-peer1 198.19.1.2
//!     └─ mcpw-nat2 wan 198.18.0.12 ── lan 198.19.2.1 ── mcpw-peer2 198.19.2.2
//! ```
//!
//! Each case sets the NATs' iptables rules, runs `mcp-webrtc serve` (the
//! greeter behind it) in one namespace and the `relay_client` example (an
//! rmcp client) in another, and checks the tool list, a `call_tool` and a
//! 5 MiB result by SHA-256. Namespaces and processes are removed on every
//! exit path: normal, failure, and Ctrl-C or SIGTERM.

mod cases;
mod topology;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cases::{Ice, blob_case, path_cut, python_reference, wrong_credentials};
use topology::{
    CASES, Nat, RELAY_IP, TOKEN, TURN_PASSWORD, build, cleanup, ns, ns_command, set_nats, sh,
    spawn_until,
};

use crate::js_interop::build_binaries;
use crate::require_program;

pub(crate) fn run() -> Result<(), String> {
    if !crate::is_root() {
        return Err(format!(
            "netlab needs root (network namespaces, iptables): {CASES} cases skipped"
        ));
    }
    if let Err(e) = sh(&["ip", "netns", "add", "mcpw-probe"]) {
        return Err(format!(
            "netlab cannot create network namespaces ({e}): {CASES} cases skipped"
        ));
    }
    let _ = sh(&["ip", "netns", "del", "mcpw-probe"]);
    require_program("iptables", "iptables")?;
    require_program("turnserver", "coturn")?;
    require_program("ping", "iputils-ping")?;
    let bins = build_binaries()?;
    let python = crate::interop::python()?;
    // Ctrl-C or SIGTERM: remove the namespaces (and so what runs in them).
    ctrlc::set_handler(|| {
        cleanup();
        std::process::exit(130);
    })
    .map_err(|e| format!("netlab: cannot handle Ctrl-C: {e}"))?;
    let started = Instant::now();
    let mut lab = build()?;
    // The peers reach the relay host through their NATs.
    set_nats(Nat::Cone)?;
    ns("mcpw-peer1", &["ping", "-c", "1", "-W", "2", RELAY_IP])?;

    let tokens = lab.dir.join("tokens");
    std::fs::write(&tokens, format!("{TOKEN}\n")).map_err(|e| e.to_string())?;
    let turnserver = PathBuf::from("turnserver");
    let mut coturn = ns_command("mcpw-relay", std::path::Path::new("timeout"));
    coturn
        .arg("600")
        .arg(&turnserver)
        .args([
            "-n",
            "--no-cli",
            "--no-tls",
            "--no-dtls",
            "--listening-ip=198.18.0.1",
            "--relay-ip=198.18.0.1",
        ])
        .args([
            "--realm=mcp.test",
            "--lt-cred-mech",
            "--user=mcp:mcp-secret",
            "--fingerprint",
            "--no-multicast-peers",
        ])
        .arg(format!("--pidfile={}", lab.dir.join("turn.pid").display()))
        .args(["--simple-log", "--log-file=stdout"]);
    let (turn_child, _turn_lines) =
        spawn_until(coturn, "Total General servers", Duration::from_secs(15))?;
    lab.children.push(turn_child);
    // Then (bounded) until it accepts TCP on 3478.
    let mut up = false;
    for _ in 0..50 {
        if ns(
            "mcpw-peer1",
            &["bash", "-c", "exec 3<>/dev/tcp/198.18.0.1/3478"],
        )
        .is_ok()
        {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if !up {
        return Err("coturn does not accept on 198.18.0.1:3478".into());
    }
    let mut relay = ns_command("mcpw-relay", &bins.cli);
    relay
        .args(["relay", "--listen", "198.18.0.1:8787", "--token-file"])
        .arg(&tokens);
    let (relay_child, _relay_lines) =
        spawn_until(relay, "relay listening on", Duration::from_secs(15))?;
    lab.children.push(relay_child);

    let stun = format!("stun:{RELAY_IP}:3478");
    let turn = format!("turn:{RELAY_IP}:3478");
    let turn_tcp = format!("turn:{RELAY_IP}:3478?transport=tcp");
    let none = Ice::default();
    let with_stun = Ice {
        servers: vec![stun.clone()],
        ..Ice::default()
    };
    let with_turn = Ice {
        servers: vec![stun.clone(), turn.clone()],
        password: Some(TURN_PASSWORD),
        ..Ice::default()
    };
    let relay_only = Ice {
        servers: vec![turn.clone()],
        password: Some(TURN_PASSWORD),
        relay_only: true,
    };
    let tcp_only = Ice {
        servers: vec![turn_tcp.clone()],
        password: Some(TURN_PASSWORD),
        relay_only: true,
    };

    // NETLAB_CASES=2,5 runs only those (for working on one).
    let only: Vec<usize> = std::env::var("NETLAB_CASES")
        .map(|v| v.split(',').filter_map(|c| c.trim().parse().ok()).collect())
        .unwrap_or_default();
    let want = |n: usize| only.is_empty() || only.contains(&n);
    let mut rows = Vec::new();
    let peers = ("mcpw-peer1", "mcpw-peer2");
    if want(1) {
        rows.push(blob_case(
            &bins,
            "1. same link, host candidates",
            ("mcpw-direct1", "mcpw-direct2"),
            &none,
            &none,
            &["198.18.0.2"],
        ));
    }
    if want(2) {
        set_nats(Nat::Cone)?;
        rows.push(blob_case(
            &bins,
            "2. both behind NAT, STUN",
            peers,
            &with_stun,
            &with_stun,
            &["srflx", "prflx"],
        ));
    }
    if want(3) {
        set_nats(Nat::Symmetric)?;
        rows.push(blob_case(
            &bins,
            "3. symmetric NATs, TURN",
            peers,
            &with_turn,
            &with_turn,
            &["relay"],
        ));
    }
    if want(4) {
        set_nats(Nat::OnlyRelay)?;
        rows.push(blob_case(
            &bins,
            "4. firewall: only the TURN host, relay-only",
            peers,
            &relay_only,
            &relay_only,
            &["relay"],
        ));
    }
    if want(5) {
        set_nats(Nat::TcpOnlyToRelay)?;
        rows.push(blob_case(
            &bins,
            "5. no UDP at all: TURN over TCP",
            peers,
            &tcp_only,
            &tcp_only,
            &["relay"],
        ));
    }
    if want(6) {
        set_nats(Nat::Cone)?;
        rows.push(wrong_credentials(&bins, &turn));
    }
    if want(7) {
        rows.push(path_cut(&bins, &stun));
    }
    if want(8) {
        rows.push(python_reference(&bins, &python, &turn));
    }

    println!("\nnetlab ({} s)", started.elapsed().as_secs());
    println!("| case | result | selected pair (client) | set-up | checked |");
    println!("|---|---|---|---|---|");
    for row in &rows {
        println!(
            "| {} | {} | {} | {} | {} |",
            row.case,
            if row.ok { "pass" } else { "FAIL" },
            row.pair,
            row.setup,
            row.detail
        );
    }
    drop(lab);
    let failed = rows.iter().filter(|r| !r.ok).count();
    if failed > 0 {
        Err(format!("netlab: {failed} of {} cases failed", rows.len()))
    } else {
        println!("==> netlab: all {} cases passed", rows.len());
        Ok(())
    }
}
