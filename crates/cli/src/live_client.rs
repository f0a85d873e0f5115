//! A blocking client for a server's `/v1/ws`, shared by `glagol stream`
//! and `glagol bench stream`.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;
use tungstenite::client::IntoClientRequest;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

pub type Socket = WebSocket<MaybeTlsStream<TcpStream>>;

/// Connects (with a Bearer key, if given).
pub fn connect(url: &str, api_key: Option<&str>) -> anyhow::Result<Socket> {
    let mut request = url.into_client_request().context("the server URL")?;
    if let Some(key) = api_key {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {key}").parse()?);
    }
    let (ws, _) = tungstenite::connect(request).with_context(|| format!("connecting to {url}"))?;
    Ok(ws)
}

/// Hands every message that arrives before `deadline` to `on_message` as it
/// arrives; returns early, with the close code (1005 when the server gave
/// none), once the server closed. The thread sleeps in the socket between
/// messages: a benchmark's many client threads must not take the cores
/// from the server they measure, as a 2 ms polling loop each did.
pub fn read_until(
    ws: &mut Socket,
    deadline: Instant,
    mut on_message: impl FnMut(Value),
) -> anyhow::Result<Option<u16>> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if let MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
        }
        match ws.read() {
            Ok(Message::Text(t)) => on_message(serde_json::from_str(&t)?),
            Ok(Message::Close(frame)) => return Ok(Some(frame.map_or(1005, |f| f.code.into()))),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if Instant::now() >= deadline {
                    return Ok(None);
                }
            }
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                return Ok(Some(1006))
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// 16 kHz samples as a PCM16 frame.
pub fn pcm16(samples: &[f32]) -> Vec<u8> {
    samples
        .iter()
        .flat_map(|s| ((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes())
        .collect()
}
