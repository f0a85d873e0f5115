//! HTTP routes, by resource. Handlers are thin: parse, call the service or
//! the registry, build a typed body from `http::types`.

pub mod chunking;
pub mod client_secrets;
pub mod health;
pub mod jobs;
pub mod models;
pub mod native;
pub mod openai;
