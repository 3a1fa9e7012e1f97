//! The write deadline of a connection: a client that stops reading its answers is
//! cut off.
//!
//! hyper bounds how long a client may take to send a request's headers (and, since
//! its header timer starts when it waits for the next request, how long a keep-alive
//! connection may stay idle), and the session API bounds the one body it reads. What
//! neither bounds is writing: a client that pipelines requests and never reads the
//! answers fills the socket's buffer, and the write then waits for as long as the
//! client likes, holding the connection's slot. [`WriteDeadline`] wraps the socket
//! under hyper (and under TLS, so a handshake's writes count too) and fails a write
//! that has not been taken in full within the deadline.
//!
//! The deadline runs from the first write the socket cannot take at once until
//! everything hyper wanted to send has been flushed, not from the last byte taken: a
//! client that reads one byte now and then cannot stretch it. A write the socket
//! takes at once, which is every answer to a client that reads, arms no timer: the
//! fast path pays nothing.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// A socket whose writes must be taken by the client within `timeout`.
pub struct WriteDeadline<IO> {
    io: IO,
    timeout: Duration,
    /// Armed while the client is not taking what is written; disarmed when a flush
    /// completes.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<IO> WriteDeadline<IO> {
    pub fn new(io: IO, timeout: Duration) -> Self {
        Self {
            io,
            timeout,
            stalled: None,
        }
    }

    /// After the socket answered Pending: arms the deadline if it is not armed, and
    /// fails once it has passed.
    fn pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let timeout = self.timeout;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client did not read the answer within the write timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    /// A write's outcome: Pending arms (or checks) the deadline.
    fn written<T>(
        &mut self,
        cx: &mut Context<'_>,
        outcome: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match outcome {
            Poll::Pending => self.pending(cx),
            ready => ready,
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for WriteDeadline<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let outcome = Pin::new(&mut self.io).poll_write(cx, buf);
        self.written(cx, outcome)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let outcome = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.written(cx, outcome)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let outcome = Pin::new(&mut self.io).poll_flush(cx);
        if let Poll::Ready(Ok(())) = outcome {
            self.stalled = None;
        }
        self.written(cx, outcome)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let outcome = Pin::new(&mut self.io).poll_shutdown(cx);
        self.written(cx, outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A peer that never reads: the write fails once the buffers are full and the
    /// deadline has passed (paused time, so no waiting).
    #[tokio::test(start_paused = true)]
    async fn a_peer_that_does_not_read_is_cut_off() {
        let (ours, _theirs) = tokio::io::duplex(1024);
        let mut socket = WriteDeadline::new(ours, Duration::from_secs(10));
        let chunk = vec![b'x'; 4096];
        let error = socket.write_all(&chunk).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }

    /// A peer that reads gets everything, and a flush disarms the deadline: later
    /// writes get the whole deadline again.
    #[tokio::test(start_paused = true)]
    async fn a_peer_that_reads_gets_everything() {
        let (ours, mut theirs) = tokio::io::duplex(1024);
        let mut socket = WriteDeadline::new(ours, Duration::from_secs(10));
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            let mut buf = [0u8; 512];
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                match theirs.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => all.extend_from_slice(&buf[..n]),
                }
            }
            all
        });
        for _ in 0..3 {
            socket.write_all(&[b'y'; 2048]).await.unwrap();
            socket.flush().await.unwrap();
            assert!(socket.stalled.is_none(), "a completed flush disarms");
        }
        socket.shutdown().await.unwrap();
        drop(socket);
        assert_eq!(reader.await.unwrap().len(), 3 * 2048);
    }
}
