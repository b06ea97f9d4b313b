//! The namespaces, their addresses and NAT rules, and running commands in them.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const PREFIX: &str = "mcpw-";
const NAMESPACES: &[&str] = &[
    "mcpw-relay",
    "mcpw-direct1",
    "mcpw-direct2",
    "mcpw-nat1",
    "mcpw-nat2",
    "mcpw-peer1",
    "mcpw-peer2",
];
pub(super) const RELAY_IP: &str = "198.18.0.1";
pub(super) const TOKEN: &str = "netlab-token";
pub(super) const TURN_USER: &str = "mcp";
pub(super) const TURN_PASSWORD: &str = "mcp-secret";
pub(super) const BLOB: u64 = 5 * 1024 * 1024;
pub(super) const CASES: usize = 8;

pub(super) fn sh(args: &[&str]) -> Result<(), String> {
    let (program, rest) = args.split_first().ok_or("no command")?;
    let out = Command::new(program)
        .args(rest)
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Run a command inside a namespace.
pub(super) fn ns(name: &str, args: &[&str]) -> Result<(), String> {
    let mut all = vec!["ip", "netns", "exec", name];
    all.extend_from_slice(args);
    sh(&all)
}

pub(super) fn ns_command(name: &str, program: &std::path::Path) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", name]).arg(program);
    cmd
}

/// Remove every namespace of ours, killing what runs inside (also what a
/// run before this one left behind).
pub(super) fn cleanup() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        if !name.starts_with(PREFIX) {
            continue;
        }
        if let Ok(pids) = Command::new("ip").args(["netns", "pids", name]).output() {
            for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", name]).status();
    }
}

/// The namespaces, removed when dropped.
pub(super) struct Lab {
    pub(super) children: Vec<Child>,
    pub(super) dir: PathBuf,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        cleanup();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn veth(inside: &str, name: &str, other_ns: &str, other: &str) -> Result<(), String> {
    ns(
        inside,
        &[
            "ip", "link", "add", name, "type", "veth", "peer", "name", other, "netns", other_ns,
        ],
    )
}

pub(super) fn build() -> Result<Lab, String> {
    cleanup();
    let dir = std::env::temp_dir().join(format!("mcpw-netlab-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let lab = Lab {
        children: Vec::new(),
        dir,
    };
    for name in NAMESPACES {
        sh(&["ip", "netns", "add", name])?;
        ns(name, &["ip", "link", "set", "lo", "up"])?;
    }
    let r = "mcpw-relay";
    ns(r, &["ip", "link", "add", "br0", "type", "bridge"])?;
    ns(r, &["ip", "addr", "add", "198.18.0.1/24", "dev", "br0"])?;
    ns(r, &["ip", "link", "set", "br0", "up"])?;
    // The sink: a default route that goes nowhere.
    ns(r, &["ip", "link", "add", "void0", "type", "bridge"])?;
    ns(r, &["ip", "link", "set", "void0", "up"])?;
    ns(
        r,
        &[
            "ip",
            "route",
            "add",
            "default",
            "via",
            "198.18.255.254",
            "dev",
            "void0",
            "onlink",
        ],
    )?;
    ns(
        r,
        &[
            "ip",
            "neigh",
            "replace",
            "198.18.255.254",
            "lladdr",
            "02:00:00:00:00:fe",
            "dev",
            "void0",
            "nud",
            "permanent",
        ],
    )?;
    for (host, port, ip) in [
        ("mcpw-direct1", "d1", "198.18.0.21/24"),
        ("mcpw-direct2", "d2", "198.18.0.22/24"),
    ] {
        veth(host, "eth0", r, port)?;
        ns(r, &["ip", "link", "set", port, "master", "br0", "up"])?;
        ns(host, &["ip", "addr", "add", ip, "dev", "eth0"])?;
        ns(host, &["ip", "link", "set", "eth0", "up"])?;
    }
    for i in ["1", "2"] {
        let nat = format!("mcpw-nat{i}");
        let peer = format!("mcpw-peer{i}");
        let port = format!("n{i}");
        veth(&nat, "wan", r, &port)?;
        ns(r, &["ip", "link", "set", &port, "master", "br0", "up"])?;
        ns(
            &nat,
            &[
                "ip",
                "addr",
                "add",
                &format!("198.18.0.1{i}/24"),
                "dev",
                "wan",
            ],
        )?;
        ns(&nat, &["ip", "link", "set", "wan", "up"])?;
        veth(&nat, "lan", &peer, "eth0")?;
        ns(
            &nat,
            &[
                "ip",
                "addr",
                "add",
                &format!("198.19.{i}.1/24"),
                "dev",
                "lan",
            ],
        )?;
        ns(&nat, &["ip", "link", "set", "lan", "up"])?;
        ns(&nat, &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])?;
        ns(
            &peer,
            &[
                "ip",
                "addr",
                "add",
                &format!("198.19.{i}.2/24"),
                "dev",
                "eth0",
            ],
        )?;
        ns(&peer, &["ip", "link", "set", "eth0", "up"])?;
        ns(
            &peer,
            &[
                "ip",
                "route",
                "add",
                "default",
                "via",
                &format!("198.19.{i}.1"),
            ],
        )?;
    }
    Ok(lab)
}

/// How the NATs treat traffic in a case.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Nat {
    /// MASQUERADE: endpoint-independent mapping (a cone NAT).
    Cone,
    /// MASQUERADE --random-fully: a new port per destination (symmetric).
    Symmetric,
    /// Symmetric, and only the relay host is reachable.
    OnlyRelay,
    /// Symmetric, no UDP at all, and only TCP to the relay host.
    TcpOnlyToRelay,
}

pub(super) fn set_nats(nat: Nat) -> Result<(), String> {
    for i in ["1", "2"] {
        let n = format!("mcpw-nat{i}");
        ns(&n, &["iptables", "-t", "nat", "-F"])?;
        ns(&n, &["iptables", "-F", "FORWARD"])?;
        ns(&n, &["iptables", "-P", "FORWARD", "ACCEPT"])?;
        let mut masquerade = vec![
            "iptables",
            "-t",
            "nat",
            "-A",
            "POSTROUTING",
            "-o",
            "wan",
            "-j",
            "MASQUERADE",
        ];
        if nat != Nat::Cone {
            masquerade.push("--random-fully");
        }
        ns(&n, &masquerade)?;
        // As a home router: unsolicited packets to the NAT itself are
        // dropped. Without this, a peer's first check arriving before the
        // NAT has a mapping leaves a conntrack entry for local delivery,
        // and the mapping made next takes another port (no hole punching).
        ns(&n, &["iptables", "-F", "INPUT"])?;
        ns(
            &n,
            &[
                "iptables",
                "-A",
                "INPUT",
                "-i",
                "wan",
                "-m",
                "conntrack",
                "--ctstate",
                "NEW",
                "-j",
                "DROP",
            ],
        )?;
        let established = [
            "iptables",
            "-A",
            "FORWARD",
            "-m",
            "conntrack",
            "--ctstate",
            "ESTABLISHED,RELATED",
            "-j",
            "ACCEPT",
        ];
        match nat {
            Nat::Cone | Nat::Symmetric => {}
            Nat::OnlyRelay => {
                ns(&n, &established)?;
                ns(
                    &n,
                    &[
                        "iptables", "-A", "FORWARD", "-i", "lan", "-d", RELAY_IP, "-j", "ACCEPT",
                    ],
                )?;
                ns(&n, &["iptables", "-P", "FORWARD", "DROP"])?;
            }
            Nat::TcpOnlyToRelay => {
                ns(&n, &established)?;
                ns(
                    &n,
                    &[
                        "iptables", "-A", "FORWARD", "-i", "lan", "-p", "tcp", "-d", RELAY_IP,
                        "-j", "ACCEPT",
                    ],
                )?;
                ns(&n, &["iptables", "-P", "FORWARD", "DROP"])?;
            }
        }
    }
    Ok(())
}

/// Start `cmd`, and wait (bounded) for a line of its output containing `ready`.
pub(super) fn spawn_until(
    mut cmd: Command,
    ready: &str,
    limit: Duration,
) -> Result<(Child, mpsc::Receiver<String>), String> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn: {e}"))?;
    let (tx, rx) = mpsc::channel();
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
    }
    let deadline = Instant::now()
        .checked_add(limit)
        .unwrap_or_else(Instant::now);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(ready) => return Ok((child, rx)),
            Ok(line) => seen.push(line),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "no `{ready}` within {limit:?}; it printed:\n{}",
                    seen.join("\n")
                ));
            }
        }
    }
}
