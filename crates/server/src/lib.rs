//! glagol-server: the HTTP and WebSocket service around `glagol-core`.
//!
//! It will own everything that exists only because there is a network in
//! front of the engines: routes (health, models, transcriptions, the
//! OpenAI-compatible API, WebSocket streaming, jobs), the model manager
//! (load on demand, idle unload, pools, cross-request batching), job
//! storage and webhooks, and policy (API keys, origins, rate and body
//! limits, metrics, graceful drain). Recognition itself stays in
//! `glagol-core`; this crate only schedules and transports it.
