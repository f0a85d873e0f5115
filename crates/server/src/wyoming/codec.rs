//! The Wyoming wire format: an event is one JSON header line
//! (`{"type", "data"?, "data_length"?, "payload_length"?}` + `\n`), then
//! `data_length` bytes of JSON merged over the header's `data`, then
//! `payload_length` bytes of binary (PCM). The payload may hold `\n`: only
//! the header is read as a line.
//!
//! Events are written the way the reference Python package writes them
//! (its `json.dumps` separators, raw UTF-8, `data` in the data section and
//! the package version in the header), so a Python reader sees exactly what
//! it would from its own servers. Sizes are capped on reading: a header
//! over 64 KiB (the Python reader's own line limit), a data section over
//! 1 MiB or a payload over 4 MiB is refused.

use serde::Serialize;
use serde_json::{Map, Value};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

/// The protocol version written in headers (the package version whose
/// events glagol speaks: 1.10.x has the ASR streaming and VAD fields).
pub const VERSION: &str = "1.10.2";

/// Largest parts accepted from a client.
pub const MAX_HEADER: usize = 64 << 10;
pub const MAX_DATA: usize = 1 << 20;
pub const MAX_PAYLOAD: usize = 4 << 20;

/// One event: its type, its data (header `data` with the data section
/// merged over it) and its payload.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Event {
    pub kind: String,
    pub data: Map<String, Value>,
    pub payload: Option<Vec<u8>>,
}

/// Why an event could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The stream ended inside an event.
    #[error("the connection ended inside an event")]
    Truncated,
    #[error("the event's {part} is over {limit} bytes")]
    TooLarge { part: &'static str, limit: usize },
    #[error("malformed event: {0}")]
    Malformed(String),
}

impl ReadError {
    /// The code of the `error` event that answers it.
    pub fn code(&self) -> &'static str {
        match self {
            ReadError::TooLarge { .. } => "event_too_large",
            _ => "malformed_event",
        }
    }
}

impl Event {
    /// A data field as a string (absent and `null` alike are None).
    pub fn str(&self, key: &str) -> Option<&str> {
        self.data.get(key).and_then(Value::as_str)
    }

    /// A data field as an unsigned number.
    pub fn u64(&self, key: &str) -> Option<u64> {
        self.data.get(key).and_then(Value::as_u64)
    }
}

/// An event on the wire, its data serialised in its own field order.
pub fn encode(kind: &str, data: Option<&impl Serialize>, payload: Option<&[u8]>) -> Vec<u8> {
    let data = data
        .map(python_json)
        .filter(|d| d.as_slice() != b"{}" && d.as_slice() != b"null");
    let header = Header {
        kind,
        version: VERSION,
        data_length: data.as_ref().map(Vec::len),
        payload_length: payload.map(<[u8]>::len),
    };
    let mut out = python_json(&header);
    out.push(b'\n');
    out.extend(data.unwrap_or_default());
    out.extend(payload.unwrap_or_default());
    out
}

/// A header as the reference writer orders it.
#[derive(Serialize)]
struct Header<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_length: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_length: Option<usize>,
}

/// Reads the next event; None at a clean end of stream.
pub async fn read_event<R: AsyncBufRead + Unpin>(r: &mut R) -> Result<Option<Event>, ReadError> {
    let mut line = Vec::new();
    let n = (&mut *r)
        .take(MAX_HEADER as u64 + 1)
        .read_until(b'\n', &mut line)
        .await?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        return Err(if line.len() > MAX_HEADER {
            ReadError::TooLarge {
                part: "header",
                limit: MAX_HEADER,
            }
        } else {
            ReadError::Truncated
        });
    }
    let header: Value = serde_json::from_slice(&line)
        .map_err(|e| ReadError::Malformed(format!("the header is not JSON: {e}")))?;
    let Value::Object(mut header) = header else {
        return Err(ReadError::Malformed("the header is not an object".into()));
    };
    let kind = match header.remove("type") {
        Some(Value::String(t)) if !t.is_empty() => t,
        _ => return Err(ReadError::Malformed("the header has no type".into())),
    };
    let mut data = match header.remove("data") {
        Some(Value::Object(d)) => d,
        None | Some(Value::Null) => Map::new(),
        Some(_) => return Err(ReadError::Malformed("data is not an object".into())),
    };
    let length = |key: &str, limit: usize, part: &'static str| -> Result<usize, ReadError> {
        match header.get(key) {
            None | Some(Value::Null) => Ok(0),
            Some(v) => match v.as_u64() {
                Some(n) if n as usize > limit => Err(ReadError::TooLarge { part, limit }),
                Some(n) => Ok(n as usize),
                None => Err(ReadError::Malformed(format!("{key} is not a length"))),
            },
        }
    };
    let data_length = length("data_length", MAX_DATA, "data section")?;
    let payload_length = length("payload_length", MAX_PAYLOAD, "payload")?;
    if data_length > 0 {
        let mut bytes = vec![0; data_length];
        read_exact(r, &mut bytes).await?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(more)) => data.extend(more),
            _ => {
                return Err(ReadError::Malformed(
                    "the data section is not a JSON object".into(),
                ))
            }
        }
    }
    let payload = if payload_length > 0 {
        let mut bytes = vec![0; payload_length];
        read_exact(r, &mut bytes).await?;
        Some(bytes)
    } else {
        None
    };
    Ok(Some(Event {
        kind,
        data,
        payload,
    }))
}

async fn read_exact<R: AsyncBufRead + Unpin>(r: &mut R, buf: &mut [u8]) -> Result<(), ReadError> {
    match r.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(ReadError::Truncated),
        Err(e) => Err(e.into()),
    }
}

/// JSON as Python's `json.dumps(value, ensure_ascii=False)` writes it:
/// `", "` between items, `": "` after keys, raw UTF-8.
fn python_json(value: &impl Serialize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut writer = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    value.serialize(&mut writer).expect("JSON values serialise");
    out
}

struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
    ) -> std::io::Result<()> {
        writer.write_all(b": ")
    }
}
