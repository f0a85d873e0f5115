//! Durable jobs: submit (`submit`), list, read, results in every format,
//! the event stream, cancel and purge.

pub mod submit;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::Stream;
use serde::Deserialize;

use crate::config::Scope;
use crate::error::{ErrorKind, ServiceError};
use crate::http::extract::{Path, Query};
use crate::http::policy::{auth::Caller, scope};
use crate::http::types::{
    CancelAnswer, JobDeleted, JobErrors, JobList, JobSseEvent, NativeVerbose,
};
use crate::jobs::model::now_ms;
use crate::jobs::{Cancelled, Job, JobEvent, JobStatus, Jobs, ListQuery};
use crate::state::AppState;

/// The jobs subsystem, or 503 where this server runs without it.
pub fn jobs_of(state: &AppState) -> Result<&Arc<Jobs>, ServiceError> {
    state.jobs().ok_or_else(|| {
        ServiceError::unavailable("jobs_unavailable", "this server does not run durable jobs")
    })
}

/// The job `id` as `caller` may see it: its own, or any for `admin`.
/// Another tenant's job is "no such job", so existence is not revealed.
async fn job(
    jobs: &Jobs,
    caller: &Caller,
    id: &str,
) -> Result<crate::jobs::JobRecord, ServiceError> {
    let tenant = caller.tenant();
    jobs.store
        .get(id)
        .await?
        .filter(|job| tenant.is_admin() || job.owner == tenant.owner)
        .ok_or_else(|| ServiceError::new(ErrorKind::NotFound, "job_not_found", "no such job"))
}

/// Whose jobs a listing shows: the caller's own; for `admin`, everyone's
/// or those of `?owner=` (a key's name). Another tenant's list takes `admin`.
fn listed_owner(
    state: &AppState,
    caller: &Caller,
    asked: Option<String>,
) -> Result<Option<String>, ServiceError> {
    let tenant = caller.tenant();
    match asked {
        Some(name) if !tenant.is_admin() && name != tenant.name => {
            Err(scope::missing(Scope::Admin))
        }
        _ if !tenant.is_admin() => Ok(Some(tenant.owner.clone())),
        None => Ok(None),
        Some(name) => {
            let config = state.config();
            let named = config.keys.values().find(|t| t.name == name);
            // A removed key's jobs stay listed under its name.
            Ok(Some(named.map_or(name, |t| t.owner.clone())))
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only jobs in this status: queued, running, done, failed, cancelled.
    status: Option<String>,
    /// Only jobs of this model.
    model: Option<String>,
    /// Jobs older than this id (the `last_id` of the previous page).
    after: Option<String>,
    /// 1–100 (default 20).
    limit: Option<usize>,
    /// Only jobs of this API key's name (`admin` keys only; others see only their own jobs).
    owner: Option<String>,
}

/// `GET /v1/jobs`: newest first, a page at a time.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", operation_id = "list_jobs", params(ListParams),
    responses((status = 200, description = "A page of jobs", body = JobList), JobErrors))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> Result<Json<JobList>, ServiceError> {
    let jobs = jobs_of(&state)?;
    let status = match params.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(JobStatus::parse(s).ok_or_else(|| {
            ServiceError::invalid(
                "invalid_request",
                format!("status must be queued, running, done, failed or cancelled, got {s:?}"),
            )
        })?),
    };
    let limit = params.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ServiceError::invalid(
            "invalid_request",
            "limit must be from 1 to 100",
        ));
    }
    let mut page = jobs
        .store
        .list(&ListQuery {
            owner: listed_owner(&state, &caller, params.owner)?,
            status,
            model: params.model,
            before: params.after,
            limit: limit + 1,
        })
        .await?;
    let has_more = page.len() > limit;
    page.truncate(limit);
    let now = now_ms();
    Ok(Json(JobList {
        object: "list",
        first_id: page.first().map(|j| j.id.clone()),
        last_id: page.last().map(|j| j.id.clone()),
        data: page.iter().map(|j| j.document(now)).collect(),
        has_more,
    }))
}

/// `GET /v1/jobs/{id}`.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs", operation_id = "get_job",
    params(("id" = String, Path, description = "The job's id")),
    responses((status = 200, description = "The job", body = Job), JobErrors))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Job>, ServiceError> {
    let jobs = jobs_of(&state)?;
    Ok(Json(job(jobs, &caller, &id).await?.document(now_ms())))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ResultParams {
    /// txt, json, verbose_json, srt, vtt (default verbose_json).
    format: Option<String>,
}

/// `GET /v1/jobs/{id}/result`.
#[utoipa::path(get, path = "/v1/jobs/{id}/result", tag = "jobs", operation_id = "get_job_result",
    params(("id" = String, Path, description = "The job's id"), ResultParams),
    responses(
        (status = 200, description = "The transcript: verbose_json (with `model`) by default, or txt, json, srt, vtt",
            content(
                (NativeVerbose = "application/json"),
                (String = "text/plain"),
                (String = "application/x-subrip"),
                (String = "text/vtt"),
            )),
        JobErrors,
    ))]
pub async fn result(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query<ResultParams>,
) -> Result<Response, ServiceError> {
    let jobs = jobs_of(&state)?;
    let format = super::native::output_format(params.format.as_deref())?;
    let record = job(jobs, &caller, &id).await?;
    let path = match (&record.status, &record.result_path) {
        (JobStatus::Done, Some(path)) => path.clone(),
        (status, _) => {
            let why = match &record.error_code {
                Some(code) => format!(
                    " ({code}: {})",
                    record.error_message.as_deref().unwrap_or("")
                ),
                None => String::new(),
            };
            return Err(ServiceError::new(
                ErrorKind::Conflict,
                "job_not_done",
                format!(
                    "the job is {}{why}; its result exists once it is done",
                    status.as_str()
                ),
            ));
        }
    };
    let t = jobs.files.read_result(&path).await.map_err(|e| {
        ServiceError::new(
            ErrorKind::NotFound,
            "result_not_found",
            format!("the job's result is no longer stored: {e}"),
        )
    })?;
    Ok(super::native::transcript_response(&t, record.model, format))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CancelParams {
    /// Delete a finished job with its audio and result instead.
    #[serde(default)]
    purge: bool,
}

/// `DELETE /v1/jobs/{id}`: cancel (or, with `purge`, delete a finished job).
#[utoipa::path(delete, path = "/v1/jobs/{id}", tag = "jobs", operation_id = "cancel_job",
    params(("id" = String, Path, description = "The job's id"), CancelParams),
    responses(
        (status = 200, description = "A queued job, now cancelled; or, with `purge`, the deletion", body = CancelAnswer),
        (status = 202, description = "A running job, asked to stop at its next segment (`cancel_requested`)", body = Job),
        JobErrors,
    ))]
pub async fn cancel(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query<CancelParams>,
) -> Result<Response, ServiceError> {
    let jobs = jobs_of(&state)?;
    // A job's owner never changes, so checking it first is enough.
    job(jobs, &caller, &id).await?;
    if params.purge {
        let files = jobs.store.purge(&id).await.map_err(|e| match e {
            crate::jobs::StoreError::Conflict(status) => ServiceError::new(
                ErrorKind::Conflict,
                "job_not_finished",
                format!(
                    "the job is {}; cancel it before purging it",
                    status.as_str()
                ),
            ),
            other => other.into(),
        })?;
        jobs.files.remove(&files).await;
        return Ok(Json(CancelAnswer::Deleted(JobDeleted {
            id,
            object: "transcription.job.deleted",
            deleted: true,
        }))
        .into_response());
    }
    let now = now_ms();
    Ok(match jobs.cancel(&id).await? {
        Cancelled::Now(job) => (
            StatusCode::OK,
            Json(CancelAnswer::Job(Box::new(job.document(now)))),
        )
            .into_response(),
        Cancelled::Requested(job) => {
            (StatusCode::ACCEPTED, Json(job.document(now))).into_response()
        }
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// Resume after this event id (as the `Last-Event-ID` header does).
    #[param(minimum = 0)]
    after: Option<i32>,
}

/// `GET /v1/jobs/{id}/events`: the job's events, then those to come.
#[utoipa::path(get, path = "/v1/jobs/{id}/events", tag = "jobs", operation_id = "job_events",
    params(("id" = String, Path, description = "The job's id"), EventParams,
        ("Last-Event-ID" = Option<i32>, Header, description = "Resume after this event")),
    responses(
        (status = 200, description = "Server-sent events, each with an `id`: `queued`, `started` (`attempt`, `node`), \
            `progress` (JobEventData), `segment` (a decoded segment with its `attempt`), and one terminal \
            `done`, `failed` or `cancelled` carrying the job; the stream ends after it. A finished job replays its \
            events and ends. A retried job (its node stopped) shows `queued` and `started` again and restarts its segments",
            content_type = "text/event-stream", body = JobSseEvent),
        JobErrors,
    ))]
pub async fn events(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query<EventParams>,
    headers: HeaderMap,
) -> Result<Response, ServiceError> {
    let jobs = jobs_of(&state)?.clone();
    job(&jobs, &caller, &id).await?;
    let header = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<i32>().ok())
                .filter(|v| *v >= 0)
                .ok_or_else(|| {
                    ServiceError::invalid("invalid_request", "Last-Event-ID must be an event id")
                })?,
        ),
    };
    if params.after.is_some_and(|a| a < 0) {
        return Err(ServiceError::invalid(
            "invalid_request",
            "after must be an event id",
        ));
    }
    let after = header.or(params.after).unwrap_or(0) as u64;
    Ok(Sse::new(event_stream(jobs, id, after))
        .keep_alive(KeepAlive::default())
        .into_response())
}

struct Tail {
    jobs: Arc<Jobs>,
    id: String,
    after: u64,
    pending: std::collections::VecDeque<JobEvent>,
    written: tokio::sync::watch::Receiver<u64>,
    ended: bool,
}

fn event_stream(
    jobs: Arc<Jobs>,
    id: String,
    after: u64,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let tail = Tail {
        written: jobs.subscribe(),
        jobs,
        id,
        after,
        pending: Default::default(),
        ended: false,
    };
    futures_util::stream::unfold(tail, |mut t| async move {
        loop {
            if let Some(e) = t.pending.pop_front() {
                t.after = e.seq;
                t.ended = e.is_terminal();
                let event = SseEvent::default()
                    .id(e.seq.to_string())
                    .event(&e.kind)
                    .data(e.data);
                return Some((Ok(event), t));
            }
            if t.ended {
                return None;
            }
            t.written.mark_unchanged();
            match t.jobs.store.events(&t.id, t.after).await {
                Ok(events) if !events.is_empty() => {
                    t.pending.extend(events);
                    continue;
                }
                Ok(_) => {}
                Err(_) => return None,
            }
            // The job may be gone (purged, expired): then the stream ends.
            // So does a finished job's when the client resumes at or past
            // its terminal event (a browser reconnecting after `done`).
            match t.jobs.store.get(&t.id).await {
                Ok(Some(job)) if !job.status.is_terminal() => {}
                Ok(Some(_)) => {
                    // Its status and terminal event are written together:
                    // one more read catches an end between the two reads.
                    match t.jobs.store.events(&t.id, t.after).await {
                        Ok(events) if !events.is_empty() => {
                            t.pending.extend(events);
                            continue;
                        }
                        _ => return None,
                    }
                }
                _ => return None,
            }
            // Events written on this node wake the stream at once; other
            // writers (another node) are seen within a second.
            let _ = tokio::time::timeout(Duration::from_secs(1), t.written.changed()).await;
        }
    })
}
