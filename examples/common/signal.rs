//! Command-line choice of aiortc-style signaling (TCP or Unix socket), shared
//! by the greeter examples.
//!
//! aiortc picks roles lazily: the side that sends first (the offerer)
//! listens, the side that receives first (the answerer) connects. The
//! examples do the same, so either side can be the Python package.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use mcp_webrtc::signaling::{Options, Signaling, TcpSignaling, UnixSignaling};

/// Where signaling meets.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct SignalArgs {
    /// TCP address of the signaling socket.
    #[arg(long, default_value = "127.0.0.1:9999")]
    pub(crate) signal: SocketAddr,
    /// A Unix socket path instead of TCP.
    #[arg(long)]
    pub(crate) unix: Option<PathBuf>,
    /// How long to wait for the other side's signaling, in seconds.
    #[arg(long, default_value_t = 30)]
    pub(crate) wait: u64,
}

/// Listen (offerer) or connect (answerer).
pub(crate) async fn signaling(
    args: &SignalArgs,
    offerer: bool,
) -> Result<Box<dyn Signaling>, mcp_webrtc::signaling::Error> {
    let mut options = Options::default();
    options.connect_timeout = Duration::from_secs(args.wait);
    Ok(match (&args.unix, offerer) {
        (Some(path), true) => {
            let listener = UnixSignaling::bind(path, options).await?;
            println!("signaling: listening on {}", path.display());
            Box::new(listener.accept().await?)
        }
        (Some(path), false) => Box::new(UnixSignaling::connect(path, options).await?),
        (None, true) => {
            let listener = TcpSignaling::bind(args.signal, options).await?;
            println!("signaling: listening on {}", args.signal);
            Box::new(listener.accept().await?)
        }
        (None, false) => Box::new(TcpSignaling::connect(args.signal, options).await?),
    })
}
