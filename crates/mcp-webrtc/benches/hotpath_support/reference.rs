//! The hot-path benchmark's references: a server whose tool hands over
//! results made in advance, and the least an rmcp transport on our rtc
//! layer can do.

use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use mcp_webrtc::rmcp::ServerHandler;
use mcp_webrtc::rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ErrorData,
};
use mcp_webrtc::rmcp::service::{
    RequestContext, RoleServer, RxJsonRpcMessage, ServiceRole, TxJsonRpcMessage,
};
use mcp_webrtc::rmcp::transport::Transport;
use mcp_webrtc::rtc::{Connection, Incoming};

/// A server whose only tool hands over results built before the timer
/// started, so that the bulk figure is the transport's, not the time a tool
/// takes to make 100 MiB of text.
#[derive(Clone, Default)]
pub(crate) struct Prebuilt {
    pub(crate) results: Arc<Mutex<Vec<String>>>,
}

impl ServerHandler for Prebuilt {
    async fn call_tool(
        &self,
        _request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let text = self.results.lock().unwrap().pop();
        let text = text.ok_or_else(|| ErrorData::internal_error("no result left", None))?;
        Ok(CallToolResult::success(vec![ContentBlock::text(text)]).into())
    }
}

/// The least an rmcp transport over our rtc layer can do, for comparison:
/// encode and send inline, receive and decode inline; no framing, limits,
/// bookkeeping, writer task or bad-input handling.
pub(crate) struct Minimal<R> {
    conn: Arc<Connection>,
    /// Hand each message to a writer task instead of sending inline.
    writer: Option<tokio::sync::mpsc::UnboundedSender<String>>,
    role: PhantomData<fn() -> R>,
}

impl<R: ServiceRole> Transport<R> for Minimal<R> {
    type Error = mcp_webrtc::rtc::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<R>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let conn = Arc::clone(&self.conn);
        let text = serde_json::to_string(&item).unwrap();
        let writer = self.writer.clone();
        async move {
            match writer {
                Some(writer) => {
                    let _ = writer.send(text);
                    Ok(())
                }
                None => conn.send_text(&text).await,
            }
        }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<R>> {
        // Bounded by the connection: each pass reads one message.
        loop {
            match self.conn.recv().await {
                Ok(Some(Incoming::Text(bytes))) => {
                    if let Ok(message) = serde_json::from_slice(&bytes) {
                        return Some(message);
                    }
                }
                _ => return None,
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.conn.close().await;
        Ok(())
    }
}

pub(crate) fn minimal<R>(conn: Connection, with_writer: bool) -> Minimal<R> {
    let conn = Arc::new(conn);
    let writer = with_writer.then(|| {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let conn = Arc::clone(&conn);
        tokio::spawn(async move {
            while let Some(text) = rx.recv().await {
                if conn.send_text(&text).await.is_err() {
                    break;
                }
            }
        });
        tx
    });
    Minimal {
        conn,
        writer,
        role: PhantomData,
    }
}
