//! HTTP routes, grouped by resource.

pub mod health;
pub mod models;
pub mod openai;
pub mod transcribe;
