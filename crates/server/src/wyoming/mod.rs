//! Wyoming: Home Assistant's speech-to-text protocol, a door beside HTTP
//! onto the same service (`glagol serve --wyoming tcp://0.0.0.0:10300`).
//!
//! A connection carries events ([`codec`]): `describe` is answered with the
//! installed models ([`info`]) at once, whatever else runs; an utterance —
//! `transcribe`?, `audio-start`, `audio-chunk`…, `audio-stop` — is a live
//! session of the routed model ([`turn`]) whose committed words go out as
//! `transcript-chunk`s while the audio arrives and whose final, recognised
//! whole like a file, is the `transcript`. Several utterances may follow
//! on one connection. Nothing below this folder knows the protocol.
//!
//! Limits (each refused with an `error` event, then the connection
//! closes, since Home Assistant waits for a transcript otherwise): the
//! codec's sizes, [`MAX_UTTERANCE_S`] of audio per utterance, the live
//! session limits (per model, and per client address), and at most
//! `max_sessions_per_key` connections per address.

pub mod codec;
mod connection;
mod info;
mod turn;
pub mod zeroconf;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, UnixListener};

use crate::state::AppState;

/// Longest utterance, in seconds of audio.
pub const MAX_UTTERANCE_S: f64 = 300.0;

/// Where Wyoming is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl Address {
    /// `tcp://HOST:PORT` (a name resolves at bind) or `unix://PATH`.
    pub fn parse(uri: &str) -> Result<Address, String> {
        if let Some(rest) = uri.strip_prefix("tcp://") {
            let addr = std::net::ToSocketAddrs::to_socket_addrs(rest)
                .map_err(|e| format!("{rest}: {e}"))?
                .next()
                .ok_or_else(|| format!("{rest}: no address"))?;
            Ok(Address::Tcp(addr))
        } else if let Some(path) = uri.strip_prefix("unix://").filter(|p| !p.is_empty()) {
            Ok(Address::Unix(PathBuf::from(path)))
        } else {
            Err(format!("{uri}: use tcp://HOST:PORT or unix://PATH"))
        }
    }
}

/// A bound Wyoming listener.
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

impl Listener {
    /// Binds `address` (a stale Unix socket file is replaced).
    pub async fn bind(address: &Address) -> std::io::Result<Listener> {
        Ok(match address {
            Address::Tcp(addr) => Listener::Tcp(TcpListener::bind(addr).await?),
            Address::Unix(path) => {
                let _ = std::fs::remove_file(path);
                Listener::Unix(UnixListener::bind(path)?, path.clone())
            }
        })
    }

    /// The TCP address it listens on.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr().ok(),
            Listener::Unix(..) => None,
        }
    }

    /// Where it listens, as a URI.
    pub fn uri(&self) -> String {
        match self {
            Listener::Tcp(l) => l
                .local_addr()
                .map_or_else(|_| "tcp://?".into(), |a| format!("tcp://{a}")),
            Listener::Unix(_, path) => format!("unix://{}", path.display()),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Accepts connections until the server shuts down; each runs on its own
/// task (and finishes its utterance when the server stops).
pub async fn serve(listener: Listener, state: Arc<AppState>) {
    let mut shutdown = state.on_shutdown();
    let open = Arc::new(Connections::default());
    loop {
        let accepted = tokio::select! {
            _ = async { let _ = shutdown.wait_for(|s| *s).await; } => break,
            accepted = accept(&listener) => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("wyoming: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let limit = state.config().settings.max_sessions_per_key;
        let admitted = open.admit(&peer, limit);
        let state = state.clone();
        tokio::spawn(async move {
            match stream {
                Stream::Tcp(s) => connection::run(s, peer, state, admitted).await,
                Stream::Unix(s) => connection::run(s, peer, state, admitted).await,
            }
        });
    }
}

enum Stream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(listener: &Listener) -> std::io::Result<(Stream, String)> {
    Ok(match listener {
        Listener::Tcp(l) => {
            let (s, addr) = l.accept().await?;
            let _ = s.set_nodelay(true);
            (Stream::Tcp(s), format!("ip:{}", addr.ip()))
        }
        Listener::Unix(l, _) => (Stream::Unix(l.accept().await?.0), "unix".into()),
    })
}

/// Open connections per client address.
#[derive(Default)]
struct Connections(Mutex<HashMap<String, usize>>);

/// A connection's place among its address's, or why it has none.
pub(crate) enum Admitted {
    Yes(ConnectionSlot),
    OverLimit(usize),
}

pub(crate) struct ConnectionSlot {
    open: Arc<Connections>,
    peer: String,
}

impl Connections {
    fn admit(self: &Arc<Self>, peer: &str, limit: usize) -> Admitted {
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(peer.to_string()).or_default();
        if *n >= limit {
            return Admitted::OverLimit(limit);
        }
        *n += 1;
        Admitted::Yes(ConnectionSlot {
            open: self.clone(),
            peer: peer.to_string(),
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut counts = self.open.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.peer);
            }
        }
    }
}
