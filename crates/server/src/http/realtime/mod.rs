//! Live transcription over WebSocket: glagol's native protocol (`/v1/ws`)
//! and OpenAI's Realtime transcription (`/v1/realtime`), both on the same
//! [`crate::service::LiveSession`].
//!
//! This module holds what the two share: the upgrade (limits, subprotocol),
//! the session's place among the open ones, and the connection loop —
//! client messages, session events, keep-alive pings, the idle timeout,
//! the session length limit and shutdown — with the protocol deciding what
//! messages mean and look like ([`Protocol`]).
//!
//! Close codes: 1000 after `stop` (or the client's close), 1001 when the
//! server shuts down (after every open utterance got its final), 1008 on a
//! policy limit (idle, session length) or a refused client secret, 1009 for a message over
//! `max_frame_bytes`, 1011 on an internal failure, 1013 when the session
//! limits are reached (the `error` before it carries `retry_after_ms`).

pub mod native;
pub mod openai;
mod pace;
pub mod protocol;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use glagol_core::audio::pcm::PcmInput;
use glagol_core::stream::EndReason;
use tokio::time::Instant;

use self::pace::{Backpressure, ControlBudget, Speed, CONTROL_BURST, CONTROL_PER_SECOND};
use super::policy::auth::Caller;
use crate::error::ServiceError;
use crate::service::{LiveSession, SessionEvent, SessionOptions, SessionSlot};
use crate::state::AppState;

pub const CLOSE_NORMAL: u16 = 1000;
pub const CLOSE_GOING_AWAY: u16 = 1001;
pub const CLOSE_POLICY: u16 = 1008;
pub const CLOSE_TOO_BIG: u16 = 1009;
pub const CLOSE_INTERNAL: u16 = 1011;
pub const CLOSE_TRY_LATER: u16 = 1013;

/// How often the server pings; two unanswered pings close the connection.
const PING_EVERY: Duration = Duration::from_secs(20);

/// The WebSocket upgrade, with its rejection in the documented error shape.
pub struct Upgrade(pub axum::extract::ws::WebSocketUpgrade);

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = ServiceError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::ws::WebSocketUpgrade::from_request_parts(parts, state)
            .await
            .map(Upgrade)
            .map_err(|e| super::error::rejection(e.status(), e.body_text()))
    }
}

/// Who opens a session, for the per-caller limit, and that limit: the
/// key's tenant (at its own limit where its key sets one), or the client
/// address (at the server's).
pub fn caller(parts: &Parts, per_key: usize) -> (String, usize) {
    let ip = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([127, 0, 0, 1]), |c| c.0.ip());
    let caller = parts.extensions.get::<Caller>().cloned();
    let caller = caller.unwrap_or(Caller::Anonymous);
    let limit = caller.tenant().max_sessions.unwrap_or(per_key);
    (caller.limit_key(ip), limit)
}

/// What a protocol does with the connection's traffic.
pub trait Protocol: Send {
    /// The message that greets the client once its session is open.
    fn opened(&mut self, session: &LiveSession) -> Vec<String>;
    /// A text message from the client.
    fn text(&mut self, text: &str, session: &mut Option<LiveSession>) -> Reply;
    /// A binary message from the client.
    fn binary(&mut self, bytes: &[u8]) -> Reply;
    /// A session event, as messages for the client.
    fn event(&mut self, event: SessionEvent) -> Vec<String>;
    /// An error, as a message for the client.
    fn error(&mut self, error: &ServiceError) -> String;
    /// Options for a new session after the client reconfigured it, if it did.
    fn reopen(&mut self) -> Option<SessionOptions> {
        None
    }
    /// The reconfigured session could not be opened: back to the settings
    /// before the reconfiguration; their options.
    fn reopen_failed(&mut self) -> Option<SessionOptions> {
        None
    }
}

/// Why the connection loop woke up.
enum Wake {
    Message(Option<Result<Message, axum::Error>>),
    Event(SessionEvent),
    Shutdown,
    Ping,
    Idle,
}

/// Audio a client sent, for the session.
pub struct ClientAudio {
    pub bytes: Vec<u8>,
    pub input: PcmInput,
}

/// What a client message leads to.
#[derive(Default)]
pub struct Reply {
    /// Messages to send now.
    pub send: Vec<String>,
    /// Audio for the session (fed before the next message is read).
    pub audio: Option<ClientAudio>,
    /// Close the session: finalize with this reason, send the last finals,
    /// then close with this code.
    pub close: Option<(EndReason, u16)>,
    /// The message counted as activity (not an empty frame).
    pub active: bool,
}

/// Runs one connection to its end.
///
/// The socket is read whatever recognition is doing, so pings are answered
/// and a client's keep-alive holds. A client further ahead than
/// `max_live_backlog` seconds of speech waiting for finals is held back
/// (not read, TCP holding its audio) until recognition catches up, for at
/// most [`pace::MAX_HOLD`] at a stretch; one twice as far ahead is refused.
/// Past `max_live_backlog` seconds ahead of its wall clock, a client's audio
/// is read at most `max_live_speed` times faster than real time.
pub async fn run(
    mut socket: WebSocket,
    state: Arc<AppState>,
    options: SessionOptions,
    slot: Result<SessionSlot, ServiceError>,
    mut protocol: impl Protocol,
) {
    let mut slot = match slot {
        Ok(slot) => slot,
        Err(e) => {
            let _ = socket.send(Message::text(protocol.error(&e))).await;
            // A refused client secret is final; a full server is not.
            let (code, reason) = match e.kind {
                crate::error::ErrorKind::Unauthenticated => (CLOSE_POLICY, "not authorised"),
                _ => (CLOSE_TRY_LATER, "session limit"),
            };
            close(&mut socket, code, reason).await;
            return;
        }
    };
    let mut session = match state.service.open_session(options).await {
        Ok(s) => Some(s),
        Err(e) => {
            let _ = socket.send(Message::text(protocol.error(&e))).await;
            let code = if e.kind == crate::error::ErrorKind::InvalidRequest
                || e.kind == crate::error::ErrorKind::NotFound
            {
                CLOSE_POLICY
            } else {
                CLOSE_INTERNAL
            };
            close(&mut socket, code, "cannot open the session").await;
            return;
        }
    };
    for m in protocol.opened(session.as_ref().expect("just opened")) {
        if socket.send(Message::text(m)).await.is_err() {
            return;
        }
    }
    let limits = state.config();
    let (idle, max_audio, max_frame, max_backlog) = (
        Duration::from_secs(limits.settings.session_idle_timeout),
        limits.settings.max_session_seconds as f64,
        limits.settings.max_frame_bytes,
        limits.settings.max_live_backlog as f64,
    );
    let mut shutdown = state.on_shutdown();
    let mut last_seen = Instant::now();
    let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
    let mut last_pong = Instant::now();
    let mut backpressure = Backpressure::default();
    let mut control = ControlBudget::new();
    let mut speed = Speed::new(max_backlog, limits.settings.max_live_speed);
    let ending: Option<(EndReason, u16, &str)> = loop {
        let Some(live) = session.as_mut() else {
            break Some((EndReason::Stop, CLOSE_INTERNAL, "no session"));
        };
        let backlog = live.backlog();
        if backlog > 2.0 * max_backlog {
            let e = ServiceError::new(
                crate::error::ErrorKind::TooLarge,
                "live_backlog_exceeded",
                format!(
                    "{backlog:.0} s of speech wait for recognition, more than the \
                     {:.0} s a session may be ahead: send audio in real time",
                    2.0 * max_backlog
                ),
            );
            let _ = socket.send(Message::text(protocol.error(&e))).await;
            break Some((EndReason::Stop, CLOSE_POLICY, "too far ahead"));
        }
        let paced = speed.resume_at();
        let held = backpressure.hold(backlog > max_backlog, live.model()) || paced.is_some();
        if held {
            // The client is not read meanwhile: it is neither idle nor deaf.
            last_seen = Instant::now();
            last_pong = Instant::now();
        }
        let wake = tokio::select! {
            message = socket.recv(), if !held => Wake::Message(message),
            event = live.next() => Wake::Event(event),
            _ = shutdown.wait_for(|s| *s) => Wake::Shutdown,
            _ = ping.tick() => Wake::Ping,
            _ = backpressure.until(), if held && paced.is_none() => continue,
            _ = tokio::time::sleep_until(paced.unwrap_or_else(Instant::now)), if paced.is_some() => continue,
            _ = tokio::time::sleep_until(last_seen + idle), if !held => Wake::Idle,
        };
        match wake {
            Wake::Message(message) => {
                let message = match message {
                    Some(Ok(message)) => message,
                    // A frame over the reader's hard limit is refused as it
                    // starts: the client still hears why, and 1009.
                    Some(Err(e)) if over_capacity(&e) => {
                        break Some(too_big(&mut socket, &mut protocol).await)
                    }
                    // The client went away: its work is withdrawn.
                    _ => break None,
                };
                let mut reply = match message {
                    Message::Text(t) if t.len() > max_frame => {
                        break Some(too_big(&mut socket, &mut protocol).await)
                    }
                    Message::Binary(b) if b.len() > max_frame => {
                        break Some(too_big(&mut socket, &mut protocol).await)
                    }
                    Message::Text(t) => protocol.text(t.as_str(), &mut session),
                    Message::Binary(b) if session.is_some() => protocol.binary(&b),
                    Message::Binary(_) => Reply::default(),
                    Message::Ping(_) | Message::Pong(_) if !control.spend() => {
                        let e = ServiceError::new(
                            crate::error::ErrorKind::RateLimited,
                            "control_frame_flood",
                            format!(
                                "more than {CONTROL_BURST} pings or pongs at once, or \
                                 {CONTROL_PER_SECOND} a second"
                            ),
                        );
                        let _ = socket.send(Message::text(protocol.error(&e))).await;
                        break Some((EndReason::Stop, CLOSE_POLICY, "control frame flood"));
                    }
                    Message::Pong(_) => {
                        last_pong = Instant::now();
                        Reply::default()
                    }
                    Message::Ping(_) => Reply::default(),
                    Message::Close(_) => break Some((EndReason::Stop, CLOSE_NORMAL, "bye")),
                };
                if reply.active {
                    last_seen = Instant::now();
                }
                if let (Some(audio), Some(live)) = (reply.audio.take(), session.as_mut()) {
                    let before = live.clock();
                    if let Err(e) = live.push_pcm(audio.bytes, audio.input).await {
                        reply.send.push(protocol.error(&e));
                    }
                    let seconds = live.clock() - before;
                    speed.received(seconds);
                    metrics::counter!("glagol_live_audio_milliseconds_total", "model" => live.model().to_string())
                        .increment((seconds.max(0.0) * 1000.0) as u64);
                }
                if let Some(options) = protocol.reopen() {
                    match reopen(&state, &mut slot, &mut session, options).await {
                        Ok(()) => {
                            for m in protocol.opened(session.as_ref().expect("just opened")) {
                                let _ = socket.send(Message::text(m)).await;
                            }
                        }
                        Err(e) => {
                            let _ = socket.send(Message::text(protocol.error(&e))).await;
                            let previous = protocol.reopen_failed();
                            if let (None, Some(previous)) = (&session, previous) {
                                session = state.service.open_session(previous).await.ok();
                            }
                            if session.is_none() {
                                break Some((
                                    EndReason::Stop,
                                    CLOSE_INTERNAL,
                                    "cannot reopen the session",
                                ));
                            }
                        }
                    }
                }
                for m in reply.send {
                    let _ = socket.send(Message::text(m)).await;
                }
                if let Some((reason, code)) = reply.close {
                    break Some((reason, code, "stop"));
                }
                if session.as_ref().is_some_and(|s| s.clock() > max_audio) {
                    let e = ServiceError::new(
                        crate::error::ErrorKind::Forbidden,
                        "max_session_duration_exceeded",
                        format!("a session may take at most {max_audio} s of audio"),
                    );
                    let _ = socket.send(Message::text(protocol.error(&e))).await;
                    break Some((EndReason::Stop, CLOSE_POLICY, "session too long"));
                }
            }
            Wake::Event(event) => {
                for m in protocol.event(event) {
                    let _ = socket.send(Message::text(m)).await;
                }
            }
            Wake::Shutdown => {
                break Some((
                    EndReason::Shutdown,
                    CLOSE_GOING_AWAY,
                    "server shutting down",
                ))
            }
            Wake::Ping => {
                if last_pong.elapsed() > PING_EVERY * 2 + Duration::from_secs(5) {
                    break None;
                }
                let _ = socket.send(Message::Ping(Vec::new().into())).await;
            }
            Wake::Idle => {
                let e = ServiceError::new(
                    crate::error::ErrorKind::Timeout,
                    "idle_timeout",
                    format!("no message for {} s", idle.as_secs()),
                );
                let _ = socket.send(Message::text(protocol.error(&e))).await;
                break Some((EndReason::Stop, CLOSE_POLICY, "idle"));
            }
        }
    };
    if let Some((reason, code, why)) = ending {
        if let Some(mut live) = session {
            live.finalize(reason);
            // The client waits for its finals; each may take up to the inference timeout.
            let deadline = Instant::now()
                + limits
                    .inference_timeout()
                    .max(crate::service::session::FINAL_GRACE);
            drain(&mut socket, &mut live, &mut protocol, deadline).await;
            // Ended (its model lease and gauge released) before its client hears so.
            drop(live);
        }
        close(&mut socket, code, why).await;
    }
    drop(slot);
}

/// Replaces the session by one with `options`, its model's session limit
/// applying as at the start. On failure the session is kept when it still
/// runs: a session on the same model stays open while the new one opens;
/// one on another model is ended first, so that a memory budget holding
/// one model at a time can switch.
async fn reopen(
    state: &AppState,
    slot: &mut SessionSlot,
    session: &mut Option<LiveSession>,
    options: SessionOptions,
) -> Result<(), ServiceError> {
    let config = state.config();
    let model = config.resolve_model(options.model.as_deref());
    let previous = slot.model().to_string();
    slot.move_to(&model, config.settings.max_sessions)?;
    if session.as_ref().is_some_and(|s| s.model() != model) {
        *session = None;
    }
    match state.service.open_session(options).await {
        Ok(s) => {
            *session = Some(s);
            Ok(())
        }
        Err(e) => {
            // Back to the place just left, whatever the limit says now.
            let _ = slot.move_to(&previous, usize::MAX);
            Err(e)
        }
    }
}

/// Sends a closing session's last finals. The socket is still read, so the
/// client's pings are answered however long recognition takes (what it
/// sends besides is ignored: the session is over).
async fn drain(
    socket: &mut WebSocket,
    live: &mut LiveSession,
    protocol: &mut impl Protocol,
    deadline: Instant,
) {
    let mut reading = true;
    while live.has_pending_finals() {
        tokio::select! {
            message = socket.recv(), if reading => match message {
                // The connection is gone: nobody waits for the finals, so
                // the session ends and its queued work is withdrawn.
                None | Some(Err(_)) => return,
                Some(Ok(Message::Close(_))) => reading = false,
                Some(Ok(_)) => {}
            },
            event = live.next() => {
                for m in protocol.event(event) {
                    if socket.send(Message::text(m)).await.is_err() {
                        return;
                    }
                }
            }
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
}

/// Whether a read failed on a message over the socket's size limits.
fn over_capacity(e: &axum::Error) -> bool {
    std::error::Error::source(e)
        .and_then(|inner| inner.downcast_ref::<tungstenite::Error>())
        .is_some_and(|e| matches!(e, tungstenite::Error::Capacity(_)))
}

async fn too_big(
    socket: &mut WebSocket,
    protocol: &mut impl Protocol,
) -> (EndReason, u16, &'static str) {
    let e = ServiceError::new(
        crate::error::ErrorKind::TooLarge,
        "message_too_large",
        "the message is over max_frame_bytes",
    );
    let _ = socket.send(Message::text(protocol.error(&e))).await;
    (EndReason::Stop, CLOSE_TOO_BIG, "message too large")
}

async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
}
