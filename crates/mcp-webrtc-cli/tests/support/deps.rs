//! Third-party MCP software for the tests, installed on first use from the
//! committed pins (`tests/servers/package-lock.json`,
//! `tests/servers/requirements.txt`) into `<target>/cli-deps`, and reused
//! while the pins are unchanged. A failed install fails the test: nothing
//! here is skipped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn servers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("servers")
}

/// A test script under `tests/servers/`.
pub fn script(name: &str) -> PathBuf {
    servers_dir().join(name)
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `node` and the entry point of `@modelcontextprotocol/server-everything`.
pub fn everything() -> (PathBuf, PathBuf) {
    static DONE: OnceLock<PathBuf> = OnceLock::new();
    let entry = DONE.get_or_init(|| {
        let dir = super::target_dir().join("cli-deps").join("npm");
        let lock = std::fs::read(servers_dir().join("package-lock.json")).unwrap();
        let entry = dir.join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
        let current = std::fs::read(dir.join("package-lock.json")).ok();
        if current.as_deref() != Some(&lock[..]) || !entry.exists() {
            std::fs::create_dir_all(&dir).unwrap();
            for file in ["package.json", "package-lock.json"] {
                std::fs::copy(servers_dir().join(file), dir.join(file)).unwrap();
            }
            run(
                Command::new("npm")
                    .args(["ci", "--no-audit", "--no-fund", "--ignore-scripts"])
                    .current_dir(&dir),
                "npm ci (server-everything)",
            );
        }
        assert!(entry.exists(), "{} missing after npm ci", entry.display());
        entry
    });
    (PathBuf::from("node"), entry.clone())
}

/// The Python of a venv with the Python `mcp` SDK 2.x.
pub fn python_mcp2() -> PathBuf {
    static DONE: OnceLock<PathBuf> = OnceLock::new();
    DONE.get_or_init(|| {
        let venv = super::target_dir().join("cli-deps").join("py-mcp2");
        let python = venv.join("bin").join("python");
        let pins = std::fs::read_to_string(servers_dir().join("requirements.txt")).unwrap();
        let marker = venv.join("installed-requirements.txt");
        if std::fs::read_to_string(&marker).ok().as_deref() != Some(pins.as_str())
            || !python.exists()
        {
            run(
                Command::new("python3").arg("-m").arg("venv").arg(&venv),
                "python3 -m venv",
            );
            run(
                Command::new(&python)
                    .args([
                        "-m",
                        "pip",
                        "install",
                        "--quiet",
                        "--disable-pip-version-check",
                        "-r",
                    ])
                    .arg(servers_dir().join("requirements.txt")),
                "pip install mcp 2.x",
            );
            std::fs::write(&marker, &pins).unwrap();
        }
        python
    })
    .clone()
}
