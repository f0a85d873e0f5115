//! The OpenAPI 3.1 description of the HTTP API, served at `/openapi.json`
//! (and rendered by the vendored Swagger UI at `/docs`, see `assets`).
//!
//! The document lists the handlers; the handlers and the document take
//! their body types from `http::types`, so nothing imports this module but
//! the router.

use axum::Json;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::{Modify, OpenApi};

use super::policy::scope;
use super::routes::{client_secrets, health, jobs, models, native, openai};
use super::types;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "glagol",
        description = "Private on-device speech-to-text: an OpenAI-compatible transcription API, \
                       glagol's native API with server-sent events, durable jobs, and model lifecycle control.",
        license(name = "MIT")
    ),
    paths(
        health::health,
        health::ready,
        models::list,
        models::get,
        models::load,
        models::unload,
        models::events,
        models::catalog,
        openai::transcriptions,
        openai::translations,
        native::transcribe,
        native::stream,
        jobs::submit::submit,
        jobs::list,
        jobs::get,
        jobs::result,
        jobs::events,
        jobs::cancel,
        super::realtime::native::ws,
        super::realtime::openai::realtime,
        client_secrets::client_secrets,
        client_secrets::transcription_sessions,
        openapi_json,
        super::assets::docs,
    ),
    components(schemas(
        types::ErrorBody,
        types::TextDelta,
        types::TextDone,
        types::ProgressEvent,
        types::SegmentEvent,
        types::NativeVerbose,
        crate::models::ModelEvent,
        types::JobEventData,
    )),
    modifiers(&Security),
    // Keys are needed only when the server is configured with some.
    security((), ("bearer" = []), ("api_key" = [])),
    tags(
        (name = "health", description = "Liveness and readiness probes (never need a key)"),
        (name = "models", description = "Installed models and their lifecycle"),
        (name = "openai", description = "OpenAI-compatible audio API"),
        (name = "native", description = "glagol's native transcription API"),
        (name = "jobs", description = "Durable transcription jobs with progress, results and signed webhooks (docs/jobs.md)"),
        (name = "live", description = "Live transcription over WebSocket (docs/streaming.md)"),
        (name = "meta", description = "This document and its viewer"),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
        // Each operation behind the key check names the scope it needs
        // (the OpenAPI way: scopes in its security requirements), from the
        // table the check itself reads. `{}` stays: a server without keys
        // needs none.
        for (path, item) in openapi.paths.paths.iter_mut() {
            let methods = [
                ("GET", &mut item.get),
                ("POST", &mut item.post),
                ("DELETE", &mut item.delete),
            ];
            for (method, operation) in methods {
                let (Some(operation), Some((_, _, needs))) = (
                    operation.as_mut(),
                    scope::OPERATIONS
                        .iter()
                        .find(|(m, p, _)| *m == method && p == path),
                ) else {
                    continue;
                };
                let scopes: Vec<&str> = match needs {
                    scope::Needs::AnyKey => vec![],
                    scope::Needs::Scope(s) => vec![s.name()],
                };
                operation.security = Some(vec![
                    SecurityRequirement::default(),
                    SecurityRequirement::new("bearer", scopes.clone()),
                    SecurityRequirement::new("api_key", scopes),
                ]);
            }
        }
    }
}

/// Events of one kind: their names, and the schema of their JSON `data`.
type Events = (&'static [&'static str], &'static str);

/// The events each server-sent event stream carries.
const EVENT_STREAMS: &[(&str, &[Events])] = &[
    (
        "/v1/models/events",
        &[(
            &[
                "model_loading",
                "model_ready",
                "model_unloaded",
                "model_waiting_for_memory",
                "model_failed",
            ],
            "ModelEvent",
        )],
    ),
    ("/v1/audio/transcriptions", OPENAI_EVENTS),
    ("/v1/audio/translations", OPENAI_EVENTS),
    (
        "/v1/transcribe/stream",
        &[
            (&["progress"], "ProgressEvent"),
            (&["segment"], "SegmentEvent"),
            (&["done"], "NativeVerbose"),
            (&["error"], "ErrorBody"),
        ],
    ),
];

const OPENAI_EVENTS: &[Events] = &[
    (&["transcript.text.delta"], "TextDelta"),
    (&["transcript.text.done"], "TextDone"),
    (&["error"], "ErrorBody"),
];

/// The document, with each `text/event-stream` response described event
/// by event: an object with the event's name and its `data`, a JSON
/// string (`contentMediaType`) of the given schema (`contentSchema`) —
/// which utoipa's types cannot say.
pub fn document() -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serialises");
    for (path, events) in EVENT_STREAMS {
        let variants: Vec<serde_json::Value> = events
            .iter()
            .map(|(names, schema)| {
                serde_json::json!({
                    "type": "object",
                    "required": ["event", "data"],
                    "properties": {
                        "event": { "type": "string", "enum": names },
                        "data": {
                            "type": "string",
                            "contentMediaType": "application/json",
                            "contentSchema": { "$ref": format!("#/components/schemas/{schema}") },
                        },
                        "id": { "type": "string" },
                    },
                })
            })
            .collect();
        let Some(operations) = doc["paths"].get_mut(*path).and_then(|p| p.as_object_mut()) else {
            continue;
        };
        for operation in operations.values_mut() {
            if let Some(stream) = operation
                .pointer_mut("/responses/200/content/text~1event-stream")
                .and_then(|m| m.as_object_mut())
            {
                stream.insert("schema".into(), serde_json::json!({ "oneOf": variants }));
            }
        }
    }
    doc
}

/// `GET /openapi.json`: this document.
#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document of this server", content_type = "application/json")))]
pub async fn openapi_json() -> Json<serde_json::Value> {
    static DOC: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    Json(DOC.get_or_init(document).clone())
}

#[cfg(test)]
mod tests {
    /// The typed clients are generated from `clients/openapi.json`; this
    /// keeps that copy equal to what the server serves.
    #[test]
    fn the_clients_copy_of_the_document_is_current() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients/openapi.json");
        let served = serde_json::to_string_pretty(&super::document()).unwrap() + "\n";
        if std::env::var_os("GLAGOL_BLESS").is_some() {
            std::fs::write(&path, &served).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == served,
            "clients/openapi.json differs from the served document: run \
             `GLAGOL_BLESS=1 cargo test -p glagol-server the_clients_copy` and then \
             `npm run gen --prefix clients/typescript`"
        );
    }
}
