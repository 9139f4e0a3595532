//! Serving connections: HTTP/1.1 over each accepted TCP connection, with
//! the bounds `axum::serve` does not set. A client has `header_timeout` to
//! send each request's headers, on a new connection and between requests
//! of a kept-alive one (so an idle connection is closed after it); a
//! client that leaves an answer unread for `idle_timeout` is cut off, as
//! is a request body that takes longer (a layer of the router). Without
//! these, a client could hold connections, and their file descriptors,
//! for ever by sending nothing or reading nothing.
//!
//! Shutdown: no new connection is accepted once `shutdown` is cancelled;
//! each connection finishes the request in flight, then closes.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tower_http::normalize_path::NormalizePath;
use tracing::{debug, warn};

/// How long to wait before accepting again after the listener failed (out
/// of file descriptors, say): the failure is logged, not spun on.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `app` on `listener` until `shutdown` is cancelled and every
/// connection has finished.
pub async fn serve(
    listener: TcpListener,
    app: NormalizePath<Router>,
    header_timeout: Duration,
    idle_timeout: Duration,
    shutdown: CancellationToken,
) {
    let connections = TaskTracker::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let service = app
            .clone()
            .map_request(|request: Request<Incoming>| request.map(Body::new));
        let io = TokioIo::new(WriteStallGuard::new(stream, idle_timeout));
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let connection = builder.serve_connection(io, TowerToHyperService::new(service));
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                debug!(error = %e, "connection ended with an error");
            }
        });
    }
    connections.close();
    connections.wait().await;
}

/// A connection that fails its writes once the peer has accepted none of
/// its bytes for `limit`: a client that stops reading (a paused player, a
/// slow-read attack) gets cut off instead of holding the connection.
/// Reads are untouched: a client may stay silent while it reads an event
/// stream.
struct WriteStallGuard {
    stream: TcpStream,
    limit: Duration,
    /// Armed when a write must wait, disarmed when one goes through.
    stalled_since: Option<Pin<Box<Sleep>>>,
}

impl WriteStallGuard {
    fn new(stream: TcpStream, limit: Duration) -> Self {
        Self {
            stream,
            limit,
            stalled_since: None,
        }
    }

    /// What to answer for a write that made no progress: wait, or give up
    /// once the peer has read nothing for `limit`.
    fn stalled<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let limit = self.limit;
        let deadline = self
            .stalled_since
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client read nothing for {} s", limit.as_secs()),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progressed<T>(&mut self, result: io::Result<T>) -> Poll<io::Result<T>> {
        self.stalled_since = None;
        Poll::Ready(result)
    }
}

impl AsyncRead for WriteStallGuard {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for WriteStallGuard {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.stream).poll_write(cx, buf) {
            Poll::Ready(result) => self.progressed(result),
            Poll::Pending => self.stalled(cx),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.stream).poll_write_vectored(cx, bufs) {
            Poll::Ready(result) => self.progressed(result),
            Poll::Pending => self.stalled(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.stream).poll_flush(cx) {
            Poll::Ready(result) => self.progressed(result),
            Poll::Pending => self.stalled(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A peer that reads nothing: once the socket's buffers are full, the
    /// writer is cut off after the limit, not left waiting.
    #[tokio::test]
    async fn a_peer_that_reads_nothing_is_cut_off() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let _peer = TcpStream::connect(address).await.expect("connect");
        let (stream, _) = listener.accept().await.expect("accept");
        let mut guarded = WriteStallGuard::new(stream, Duration::from_millis(300));
        let chunk = vec![0u8; 64 * 1024];
        let began = std::time::Instant::now();
        let error = loop {
            if let Err(e) = guarded.write_all(&chunk).await {
                break e;
            }
            assert!(began.elapsed() < Duration::from_secs(20), "never stalled");
        };
        assert_eq!(error.kind(), io::ErrorKind::TimedOut, "{error}");
    }
}
