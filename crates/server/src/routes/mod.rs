//! HTTP routes, grouped by resource.

pub mod health;
pub mod models;
pub mod openai;
pub mod transcribe;

use axum::extract::multipart::Field;

use crate::error::ApiError;

/// The bytes of an uploaded `file` field and its lowercased extension
/// (a decoding hint).
pub async fn read_file(field: Field<'_>) -> Result<(Vec<u8>, Option<String>), ApiError> {
    let extension = field
        .file_name()
        .and_then(|f| f.rsplit_once('.').map(|(_, e)| e.to_lowercase()));
    Ok((field.bytes().await?.to_vec(), extension))
}
