//! `/debug/pprof/profile?seconds=N&format=pprof|svg`: a CPU profile of the whole process,
//! sampled at 99 Hz for N seconds (1 to 60, default 10), as a pprof protobuf (for
//! `go tool pprof`, speedscope, Pyroscope) or a flame-graph SVG. One profile at a time; it
//! needs the bearer token, as it costs CPU and shows the code.

use crate::api::AppState;
use crate::error::{ApiError, ErrorBody};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Longest profile.
pub const MAX_SECONDS: u64 = 60;

/// Query of the profile route.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProfileQuery {
    /// Seconds to sample (1 to 60; default 10).
    pub seconds: Option<u64>,
    /// `pprof` (default: protobuf) or `svg` (flame graph).
    pub format: Option<String>,
}

/// A CPU profile of the process.
#[utoipa::path(get, path = "/debug/pprof/profile",
    params(ProfileQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "pprof protobuf (application/octet-stream) or flame-graph SVG (image/svg+xml)", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "Bad seconds or format", body = ErrorBody),
        (status = 401, description = "No bearer token", body = ErrorBody),
        (status = 403, description = "Wrong token", body = ErrorBody),
        (status = 409, description = "A profile is already running", body = ErrorBody),
    ))]
pub async fn profile(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<ProfileQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    crate::api::authorize(&state, &headers)?;
    let Query(q) = q.map_err(|e| ApiError::bad_field("seconds", e.body_text()))?;
    let seconds = q.seconds.unwrap_or(10);
    if !(1..=MAX_SECONDS).contains(&seconds) {
        return Err(ApiError::bad_field(
            "seconds",
            format!("seconds must be from 1 to {MAX_SECONDS}, not {seconds}"),
        ));
    }
    let svg = match q.format.as_deref() {
        None | Some("pprof") => false,
        Some("svg") => true,
        Some(other) => {
            return Err(ApiError::bad_field(
                "format",
                format!("format '{other}' is not 'pprof' or 'svg'"),
            ));
        }
    };
    let running = state.profiling.clone();
    let result = tokio::task::spawn_blocking(move || run(&running, seconds, svg))
        .await
        .map_err(|e| ApiError::internal(format!("the profiler panicked: {e}")))??;
    let content_type = if svg {
        "image/svg+xml"
    } else {
        "application/octet-stream"
    };
    Ok(([(header::CONTENT_TYPE, content_type)], result).into_response())
}

fn run(running: &Arc<Mutex<()>>, seconds: u64, svg: bool) -> Result<Vec<u8>, ApiError> {
    // The sampler is process-wide: one profile at a time.
    let Ok(_running) = running.try_lock() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "profile_running",
            "a CPU profile is already being taken; try again when it ends",
        ));
    };
    let failed = |e: pprof::Error| ApiError::internal(format!("CPU profiler: {e}"));
    let guard = pprof::ProfilerGuardBuilder::default()
        .frequency(99)
        .blocklist(&["libc", "libgcc", "pthread", "vdso"])
        .build()
        .map_err(failed)?;
    std::thread::sleep(Duration::from_secs(seconds));
    let report = guard.report().build().map_err(failed)?;
    let mut out = Vec::new();
    if svg {
        report.flamegraph(&mut out).map_err(failed)?;
    } else {
        use pprof::protos::Message;
        let profile = report.pprof().map_err(failed)?;
        profile
            .encode(&mut out)
            .map_err(|e| ApiError::internal(format!("encoding the profile: {e}")))?;
    }
    Ok(out)
}
