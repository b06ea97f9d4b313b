//! `docs/cli.md` shows the complete `--help` of every subcommand: this test
//! checks that each block is exactly what the binary prints, so the two
//! cannot drift. `UPDATE_CLI_DOCS=1 cargo test -p mcp-webrtc-cli --test help`
//! rewrites the blocks from the binary.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

const SUBCOMMANDS: [&str; 4] = ["", "serve", "connect", "relay"];

fn help(sub: &str) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcp-webrtc"));
    if !sub.is_empty() {
        cmd.arg(sub);
    }
    for var in [
        "MCP_WEBRTC_TOKEN",
        "MCP_WEBRTC_SECRET",
        "MCP_WEBRTC_TURN_CREDENTIAL",
        "MCP_WEBRTC_RELAY_TOKENS",
        "COLUMNS",
    ] {
        cmd.env_remove(var);
    }
    let out = cmd.arg("--help").output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

fn marker(sub: &str) -> String {
    let name = if sub.is_empty() {
        "mcp-webrtc".to_owned()
    } else {
        format!("mcp-webrtc {sub}")
    };
    format!("<!-- help: {name} -->\n```text\n")
}

#[test]
fn docs_cli_md_shows_exactly_what_help_prints() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/cli.md");
    let mut doc = std::fs::read_to_string(&path).unwrap();
    let update = std::env::var_os("UPDATE_CLI_DOCS").is_some();
    let mut stale = Vec::new();
    for sub in SUBCOMMANDS {
        let marker = marker(sub);
        let start = doc
            .find(&marker)
            .unwrap_or_else(|| panic!("docs/cli.md has no block {marker:?}"))
            + marker.len();
        let end = start + doc[start..].find("```\n").expect("the block ends");
        let actual = help(sub);
        if doc[start..end] != actual {
            stale.push(if sub.is_empty() {
                "mcp-webrtc".to_owned()
            } else {
                sub.to_owned()
            });
            doc.replace_range(start..end, &actual);
        }
    }
    if update {
        std::fs::write(&path, doc).unwrap();
        return;
    }
    assert!(
        stale.is_empty(),
        "docs/cli.md is out of date for {stale:?}: run `UPDATE_CLI_DOCS=1 cargo test -p mcp-webrtc-cli --test help` and review the diff"
    );
}
