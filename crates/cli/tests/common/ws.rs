//! A small blocking WebSocket client for the live protocols.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

pub struct Client {
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    /// Every text message received, in order, with when it arrived.
    pub received: Vec<(Instant, Value)>,
    /// The close code, once the server closed.
    pub closed: Option<u16>,
}

impl Client {
    pub fn connect(url: &str) -> Client {
        Self::connect_with(url).unwrap_or_else(|e| panic!("connect {url}: {e}"))
    }

    pub fn connect_with(
        request: impl tungstenite::client::IntoClientRequest,
    ) -> Result<Client, tungstenite::Error> {
        let (ws, _) = tungstenite::connect(request)?;
        if let MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
        }
        Ok(Client {
            ws,
            received: Vec::new(),
            closed: None,
        })
    }

    pub fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).unwrap();
    }

    pub fn send_binary(&mut self, bytes: &[u8]) {
        self.ws.send(Message::binary(bytes.to_vec())).unwrap();
    }

    /// A ping of the largest size; a flooding client may be cut off
    /// mid-flood, so a failed send is not an error here.
    pub fn send_ping(&mut self) {
        let _ = self.ws.send(Message::Ping(vec![7; 125].into()));
    }

    /// Bytes written to the connection as they are, under the WebSocket
    /// framing (a hostile client's frame).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        use std::io::Write;
        if let MaybeTlsStream::Plain(s) = self.ws.get_mut() {
            s.write_all(bytes).unwrap();
        }
    }

    /// Reads what has arrived (without waiting longer than a few ms).
    pub fn pump(&mut self) {
        loop {
            match self.ws.read() {
                Ok(Message::Text(t)) => self
                    .received
                    .push((Instant::now(), serde_json::from_str(&t).unwrap())),
                Ok(Message::Close(frame)) => {
                    self.closed = Some(frame.map_or(1005, |f| f.code.into()));
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return
                }
                Err(_) => {
                    self.closed.get_or_insert(1006);
                    return;
                }
            }
        }
    }

    /// Streams 16 kHz PCM16 in 100 ms frames, in real time when `paced`.
    pub fn stream(&mut self, audio: &[f32], paced: bool) {
        let start = Instant::now();
        for (i, frame) in audio.chunks(1600).enumerate() {
            self.send_binary(&super::pcm16(frame));
            self.pump();
            if paced {
                let due = start + Duration::from_millis(100 * (i as u64 + 1));
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
        }
    }

    /// Waits until `done` holds of what was received, or the connection closes.
    pub fn wait_for(&mut self, timeout: Duration, done: impl Fn(&[(Instant, Value)]) -> bool) {
        let deadline = Instant::now() + timeout;
        while !done(&self.received) && self.closed.is_none() {
            assert!(
                Instant::now() < deadline,
                "timed out; got {:?}",
                self.types()
            );
            self.pump();
        }
    }

    /// Waits for the server's close.
    pub fn wait_closed(&mut self, timeout: Duration) -> u16 {
        let deadline = Instant::now() + timeout;
        while self.closed.is_none() {
            assert!(
                Instant::now() < deadline,
                "not closed; got {:?}",
                self.types()
            );
            self.pump();
        }
        self.closed.unwrap()
    }

    pub fn of_type(&self, kind: &str) -> Vec<Value> {
        self.received
            .iter()
            .filter(|(_, m)| m["type"] == kind)
            .map(|(_, m)| m.clone())
            .collect()
    }

    pub fn types(&self) -> Vec<String> {
        self.received
            .iter()
            .map(|(_, m)| m["type"].as_str().unwrap_or("?").to_string())
            .collect()
    }
}
