//! One Wyoming connection: events in, answers out.
//!
//! A reader task turns the byte stream into events and a writer task
//! sends what the connection answers, so the loop here never waits on the
//! socket: `describe` and `ping` are answered at once while an utterance is
//! being recognised, and a client that uploads everything before reading
//! (released Home Assistant) is still read while its chunks queue. On a
//! protocol or recognition error the client gets `error {text, code}` and
//! the connection closes: Home Assistant's released client ignores `error`
//! and would otherwise wait for a transcript until its own timeout.

use std::sync::Arc;
use std::time::Duration;

use glagol_core::audio::pcm::{Encoding, PcmInput};
use glagol_core::audio::PcmFormat;
use glagol_core::stream::EndReason;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use super::codec::{self, encode, Event, ReadError};
use super::turn::{Request, Turn};
use super::Admitted;
use crate::error::{ErrorKind, ServiceError};
use crate::service::SessionEvent;
use crate::state::AppState;

#[derive(Serialize)]
struct ErrorData<'a> {
    text: &'a str,
    code: &'a str,
}

#[derive(Serialize)]
struct Pong<'a> {
    text: Option<&'a str>,
}

/// What handling an event leads to.
enum Flow {
    Go,
    /// Close the connection after what was sent.
    Close,
}

struct Connection {
    state: Arc<AppState>,
    peer: String,
    out: mpsc::UnboundedSender<Vec<u8>>,
    /// What the last `transcribe` asked (kept for later utterances).
    request: Request,
    turn: Option<Turn>,
}

/// Serves one connection to its end.
pub async fn run<S>(stream: S, peer: String, state: Arc<AppState>, admitted: Admitted)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, mut write) = tokio::io::split(stream);
    let (out, mut outgoing) = mpsc::unbounded_channel::<Vec<u8>>();
    let writer = tokio::spawn(async move {
        while let Some(bytes) = outgoing.recv().await {
            if write.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = write.shutdown().await;
    });
    let (events_tx, mut events) = mpsc::channel(16);
    let reader = tokio::spawn(async move {
        let mut read = BufReader::new(read);
        loop {
            let event = codec::read_event(&mut read).await;
            let last = !matches!(event, Ok(Some(_)));
            if events_tx.send(event).await.is_err() || last {
                return;
            }
        }
    });
    let _slot = match admitted {
        Admitted::Yes(slot) => slot,
        Admitted::OverLimit(limit) => {
            let _ = out.send(error_event(
                "too_many_connections",
                &format!("at most {limit} connections per address"),
            ));
            drop(out);
            let _ = writer.await;
            reader.abort();
            return;
        }
    };
    tracing::debug!(peer, "wyoming connection");
    let mut c = Connection {
        state: state.clone(),
        peer,
        out,
        request: Request::default(),
        turn: None,
    };
    let mut shutdown = state.on_shutdown();
    let mut stopping = false;
    loop {
        let flow = tokio::select! {
            event = events.recv() => match event {
                Some(Ok(Some(event))) => c.handle(event).await,
                Some(Ok(None)) | None => Flow::Close,
                Some(Err(e)) => c.refuse(e),
            },
            event = next_of(&mut c.turn) => c.session_event(event),
            _ = async { let _ = shutdown.wait_for(|s| *s).await; }, if !stopping => {
                stopping = true;
                c.shutdown()
            }
        };
        if matches!(flow, Flow::Close) || (stopping && c.turn.is_none()) {
            break;
        }
    }
    drop(c);
    // What was queued goes out before the connection closes.
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    reader.abort();
}

async fn next_of(turn: &mut Option<Turn>) -> SessionEvent {
    match turn {
        Some(t) => t.next().await,
        None => std::future::pending().await,
    }
}

fn error_event(code: &str, text: &str) -> Vec<u8> {
    metrics::counter!("glagol_wyoming_errors_total", "code" => code.to_string()).increment(1);
    encode("error", Some(&ErrorData { text, code }), None)
}

impl Connection {
    fn send(&self, bytes: Vec<u8>) {
        if !bytes.is_empty() {
            let _ = self.out.send(bytes);
        }
    }

    fn fail(&mut self, e: &ServiceError) -> Flow {
        self.send(error_event(e.code, &e.message));
        Flow::Close
    }

    fn refuse(&mut self, e: ReadError) -> Flow {
        if matches!(e, ReadError::Io(_) | ReadError::Truncated) {
            return Flow::Close; // the client went away mid-event
        }
        self.send(error_event(e.code(), &e.to_string()));
        Flow::Close
    }

    async fn handle(&mut self, event: Event) -> Flow {
        match event.kind.as_str() {
            "describe" => {
                let endpointing = self.state.config().settings.wyoming_endpointing;
                let info = super::info::info(&self.state, endpointing);
                self.send(encode("info", Some(&info), None));
            }
            "ping" => self.send(encode(
                "pong",
                Some(&Pong {
                    text: event.str("text"),
                }),
                None,
            )),
            "transcribe" => self.request = Request::from_event(&event.data),
            "audio-start" => {
                if let Err(e) = self.ensure_turn().await {
                    return self.fail(&e);
                }
            }
            "audio-chunk" => {
                let input = match pcm_input(&event) {
                    Ok(input) => input,
                    Err(e) => return self.fail(&e),
                };
                let Some(bytes) = event.payload else {
                    return Flow::Go;
                };
                if let Err(e) = self.ensure_turn().await {
                    return self.fail(&e);
                }
                let turn = self.turn.as_mut().expect("just opened");
                if let Err(e) = turn.audio(bytes, input).await {
                    return self.fail(&e);
                }
            }
            "audio-stop" => match self.turn.as_mut() {
                Some(turn) => {
                    turn.stop(EndReason::Stop);
                    let answer = turn.answer_if_ready();
                    self.send(answer);
                    self.close_done_turn();
                }
                // No audio: an empty transcript, never a recognised silence.
                None => self.send(Turn::empty(&self.request)),
            },
            // Unknown events are ignored, as the protocol asks.
            _ => {}
        }
        Flow::Go
    }

    async fn ensure_turn(&mut self) -> Result<(), ServiceError> {
        if self.turn.is_none() {
            let turn = Turn::open(&self.state, self.request.clone(), &self.peer).await?;
            self.turn = Some(turn);
        }
        Ok(())
    }

    fn close_done_turn(&mut self) {
        if self.turn.as_ref().is_some_and(Turn::done) {
            self.turn = None;
            metrics::counter!("glagol_wyoming_transcripts_total").increment(1);
        }
    }

    fn session_event(&mut self, event: SessionEvent) -> Flow {
        let Some(turn) = self.turn.as_mut() else {
            return Flow::Go;
        };
        match turn.event(event) {
            Ok(bytes) => {
                self.send(bytes);
                self.close_done_turn();
                Flow::Go
            }
            Err(e) => self.fail(&e),
        }
    }

    /// The server stops: an utterance under way ends now and gets its
    /// transcript; then the connection closes.
    fn shutdown(&mut self) -> Flow {
        match self.turn.as_mut() {
            Some(turn) => {
                turn.stop(EndReason::Shutdown);
                let answer = turn.answer_if_ready();
                self.send(answer);
                self.close_done_turn();
                Flow::Go
            }
            None => Flow::Close,
        }
    }
}

/// The PCM an `audio-chunk` (or `audio-start`) describes.
fn pcm_input(event: &Event) -> Result<PcmInput, ServiceError> {
    let bad = |m: String| ServiceError::new(ErrorKind::InvalidRequest, "invalid_audio", m);
    let rate = event.u64("rate").unwrap_or(16_000);
    let width = event.u64("width").unwrap_or(2);
    let channels = event.u64("channels").unwrap_or(1);
    if !(1_000..=192_000).contains(&rate) {
        return Err(bad(format!("rate must be 1000–192000 Hz, got {rate}")));
    }
    if !(1..=8).contains(&channels) {
        return Err(bad(format!("channels must be 1–8, got {channels}")));
    }
    let format = match width {
        1 => PcmFormat::U8,
        2 => PcmFormat::S16Le,
        4 => PcmFormat::S32Le,
        _ => return Err(bad(format!("width must be 1, 2 or 4 bytes, got {width}"))),
    };
    Ok(PcmInput {
        encoding: Encoding::Pcm(format),
        rate: rate as u32,
        channels: channels as u16,
    })
}
