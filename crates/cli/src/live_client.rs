//! A blocking client for a server's `/v1/ws`, shared by `glagol stream`
//! and `glagol bench stream`.

use std::net::TcpStream;
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;
use tungstenite::client::IntoClientRequest;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

pub type Socket = WebSocket<MaybeTlsStream<TcpStream>>;

/// Connects (with a Bearer key, if given); reads then never wait long.
pub fn connect(url: &str, api_key: Option<&str>) -> anyhow::Result<Socket> {
    let mut request = url.into_client_request().context("the server URL")?;
    if let Some(key) = api_key {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {key}").parse()?);
    }
    let (ws, _) = tungstenite::connect(request).with_context(|| format!("connecting to {url}"))?;
    if let MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_millis(2)))?;
    }
    Ok(ws)
}

/// Hands every message that has arrived to `on_message`; true once the
/// server closed (with its close code, 1005 when it gave none).
pub fn read_available(
    ws: &mut Socket,
    mut on_message: impl FnMut(Value),
) -> anyhow::Result<Option<u16>> {
    loop {
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
                return Ok(None)
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
