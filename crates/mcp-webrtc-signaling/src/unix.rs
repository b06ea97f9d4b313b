//! aiortc-dialect signaling over a Unix socket, interoperable with aiortc's
//! `UnixSocketSignaling`.
//!
//! The listener removes a stale socket file left by a dead process (one that
//! nobody accepts on), refuses a path a live listener holds or that is not a
//! socket, and removes its socket file when closed or dropped.

use std::path::{Path, PathBuf};

use futures::future::BoxFuture;
use tokio::net::{UnixListener, UnixStream};

use crate::{
    Dialect, Error, LineSignaling, Options, Result, SignalMessage, Signaling, connect_with_retry,
    deadline,
};

/// Whether a listening socket is bound at `path`, from `/proc/net/unix`
/// (`None` where that table does not exist). Unlike a probe connection, this
/// does not disturb a listener that accepts only one peer.
fn has_listener(path: &Path) -> Option<bool> {
    /// `__SO_ACCEPTCON`: the socket is listening.
    const LISTENING: u32 = 0x0001_0000;
    let table = std::fs::read_to_string("/proc/net/unix").ok()?;
    let given = path.to_string_lossy().into_owned();
    let absolute = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(
            || std::env::current_dir().ok(),
            |p| std::fs::canonicalize(p).ok(),
        )
        .zip(path.file_name())
        .map(|(dir, name)| dir.join(name).to_string_lossy().into_owned());
    Some(
        table
            .lines()
            .skip(1)
            .filter_map(listing)
            .any(|(flags, listed)| {
                flags & LISTENING != 0 && (listed == given || absolute.as_deref() == Some(listed))
            }),
    )
}

/// One `/proc/net/unix` line: `Num RefCount Protocol Flags Type St Inode
/// Path`, the path optional and possibly holding spaces. Returns the flags
/// and the path.
fn listing(line: &str) -> Option<(u32, &str)> {
    let mut rest = line;
    let mut flags = None;
    for field in 0..7 {
        let (value, tail) = rest.trim_start().split_once(char::is_whitespace)?;
        if field == 3 {
            flags = u32::from_str_radix(value, 16).ok();
        }
        rest = tail;
    }
    let path = rest.trim();
    if path.is_empty() {
        return None;
    }
    Some((flags?, path))
}

/// Removes the socket file it owns when dropped.
#[derive(Debug)]
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A bound Unix socket waiting for its one peer. See [`UnixSignaling::bind`].
#[derive(Debug)]
pub struct UnixSignalingListener {
    listener: UnixListener,
    file: SocketFile,
    options: Options,
}

impl UnixSignalingListener {
    /// The socket's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.file.0
    }

    /// Accept one peer within [`Options::connect_timeout`].
    ///
    /// # Errors
    /// [`Error::Timeout`] if no peer arrives in time.
    pub async fn accept(self) -> Result<UnixSignaling> {
        let listener = &self.listener;
        let path = self.file.0.display().to_string();
        let (stream, _) = deadline(
            self.options.connect_timeout,
            || format!("accept on {path}"),
            async move { listener.accept().await.map_err(Error::io("accept")) },
        )
        .await?;
        Ok(UnixSignaling {
            inner: LineSignaling::new(stream, Dialect::Aiortc, self.options),
            _file: Some(self.file),
        })
    }
}

/// aiortc-dialect signaling over one Unix socket connection.
#[derive(Debug)]
pub struct UnixSignaling {
    inner: LineSignaling<UnixStream>,
    /// The listener's socket file, removed on drop.
    _file: Option<SocketFile>,
}

impl UnixSignaling {
    /// Bind `path`, replacing a stale socket file.
    ///
    /// # Errors
    /// [`Error::AddressInUse`] if a live listener holds the path or it is not
    /// a socket; the bind error otherwise.
    pub async fn bind(path: impl AsRef<Path>, options: Options) -> Result<UnixSignalingListener> {
        let path = path.as_ref().to_path_buf();
        if let Ok(meta) = std::fs::symlink_metadata(&path) {
            use std::os::unix::fs::FileTypeExt;
            let in_use = || Error::AddressInUse {
                path: path.display().to_string(),
            };
            if !meta.file_type().is_socket() {
                return Err(in_use());
            }
            let live = match has_listener(&path) {
                Some(live) => live,
                // No /proc (not Linux): probe by connecting. A one-shot
                // listener would take the probe as its peer, so this is only
                // the fallback.
                None => UnixStream::connect(&path).await.is_ok(),
            };
            if live {
                return Err(in_use());
            }
            tracing::debug!(path = %path.display(), "removing stale signaling socket");
            std::fs::remove_file(&path).map_err(Error::io("remove stale socket"))?;
        }
        let listener = UnixListener::bind(&path).map_err(Error::io("bind"))?;
        Ok(UnixSignalingListener {
            listener,
            file: SocketFile(path),
            options,
        })
    }

    /// Bind `path` and accept one peer (the offerer's default role).
    ///
    /// # Errors
    /// As [`UnixSignaling::bind`] and [`UnixSignalingListener::accept`].
    pub async fn listen(path: impl AsRef<Path>) -> Result<UnixSignaling> {
        UnixSignaling::bind(path, Options::default())
            .await?
            .accept()
            .await
    }

    /// Connect to `path` (the answerer's default role), retrying with
    /// backoff until [`Options::connect_timeout`] has passed.
    ///
    /// # Errors
    /// [`Error::ConnectFailed`].
    pub async fn connect(path: impl AsRef<Path>, options: Options) -> Result<UnixSignaling> {
        let path = path.as_ref().to_path_buf();
        let stream =
            connect_with_retry(path.display().to_string(), options.connect_timeout, || {
                UnixStream::connect(path.clone())
            })
            .await?;
        Ok(UnixSignaling {
            inner: LineSignaling::new(stream, Dialect::Aiortc, options),
            _file: None,
        })
    }
}

impl Signaling for UnixSignaling {
    fn send(&mut self, message: SignalMessage) -> BoxFuture<'_, Result<()>> {
        self.inner.send(message)
    }
    fn recv(&mut self) -> BoxFuture<'_, Result<Option<SignalMessage>>> {
        self.inner.recv()
    }
    fn close(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let result = self.inner.close().await;
            // Remove the socket file now, not at drop.
            self._file = None;
            result
        })
    }
}
