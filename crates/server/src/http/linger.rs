//! Lingering close, as nginx does it: when a connection ends, its sending
//! side is shut and what the client still sends is read and dropped for a
//! while before the socket closes.
//!
//! A server may answer before it has read the request's body: the API key,
//! origin and rate checks refuse an upload at its head. Closing the socket
//! with the client's bytes still unread makes the kernel reset the
//! connection, and a client still sending its upload sees a broken pipe
//! instead of the answer. Reading on after the answer has gone lets the
//! client finish sending and read it. A client that has nothing more to send
//! closes its end at once; one that goes quiet is dropped after
//! [`LINGER_IDLE`], one that keeps sending after [`LINGER_TIME`].

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{sleep, Instant, Sleep};

/// Longest a closing connection is read on for.
const LINGER_TIME: Duration = Duration::from_secs(30);

/// Longest a closing connection may send nothing before it is dropped.
const LINGER_IDLE: Duration = Duration::from_secs(1);

/// A connection that lingers when it is shut down.
pub struct Lingering<S> {
    inner: S,
    state: State,
}

enum State {
    Open,
    Draining {
        until: Instant,
        idle: Pin<Box<Sleep>>,
    },
    Closed,
}

impl<S> Lingering<S> {
    pub fn new(inner: S) -> Self {
        Lingering {
            inner,
            state: State::Open,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Lingering<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Lingering<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                State::Open => {
                    ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
                    this.state = State::Draining {
                        until: Instant::now() + LINGER_TIME,
                        idle: Box::pin(sleep(LINGER_IDLE)),
                    };
                }
                State::Draining { until, idle } => {
                    if Instant::now() >= *until || idle.as_mut().poll(cx).is_ready() {
                        this.state = State::Closed;
                        continue;
                    }
                    let mut scratch = [0u8; 16 << 10];
                    let mut buf = ReadBuf::new(&mut scratch);
                    match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                        Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                            idle.as_mut().reset(Instant::now() + LINGER_IDLE);
                        }
                        // The client closed its end, or the connection broke.
                        Poll::Ready(_) => this.state = State::Closed,
                        Poll::Pending => return Poll::Pending,
                    }
                }
                State::Closed => return Poll::Ready(Ok(())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_shut_connection_reads_on_until_the_client_closes() {
        let (client, server) = tokio::io::duplex(64);
        let (mut client_read, mut client_write) = tokio::io::split(client);
        let mut server = Lingering::new(server);
        server.write_all(b"answer").await.unwrap();
        // The client is still sending (far more than the pipe holds) when
        // the server shuts down; the shutdown reads it all.
        let sender = tokio::spawn(async move {
            for _ in 0..100 {
                client_write.write_all(&[7u8; 1000]).await.unwrap();
            }
            client_write.shutdown().await.unwrap();
        });
        server.shutdown().await.unwrap();
        // Without lingering, the client's writes now fail (broken pipe).
        drop(server);
        sender.await.unwrap();
        let mut answer = Vec::new();
        client_read.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"answer");
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_client_is_not_waited_for_long() {
        let (_client, server) = tokio::io::duplex(64);
        let mut server = Lingering::new(server);
        let started = Instant::now();
        server.shutdown().await.unwrap();
        assert_eq!(started.elapsed(), LINGER_IDLE);
    }
}
