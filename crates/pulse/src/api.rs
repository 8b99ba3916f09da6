//! The profile query API, `/v1/…`, on the same HTTP server as the metrics. Every answer is
//! JSON, errors included (`{"error": "…"}` with the matching status). Reads take each
//! partition's lock only while they copy or count, on a blocking thread, so the async
//! runtime that feeds the partitions never waits on a scan.

use crate::read;
pub use crate::read::ApiState;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use pulse_engine::{funnel_summaries, Period};
use pulse_events::time::{format_rfc3339, DAY};
use pulse_kafka::partition_for;
use pulse_telemetry::percent_encode;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

/// Longest page of segment members.
pub const MAX_LIMIT: usize = 10_000;
const DEFAULT_LIMIT: usize = 100;

/// A request's query parameters; a query that does not decode is a JSON 400.
struct Params(HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        match Query::<HashMap<String, String>>::from_request_parts(parts, state).await {
            Ok(Query(q)) => Ok(Self(q)),
            Err(e) => Err(error(StatusCode::BAD_REQUEST, e.body_text())),
        }
    }
}

/// The route's one path parameter, percent-decoded; one that is not UTF-8 is a JSON 400.
struct Segment(String);

impl<S: Send + Sync> FromRequestParts<S> for Segment {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(p)) => Ok(Self(p)),
            Err(e) => Err(error(StatusCode::BAD_REQUEST, e.body_text())),
        }
    }
}

/// The query API, and the status page at `/`.
pub fn routes(s: ApiState) -> Router {
    let status = crate::status::routes(s.clone());
    Router::new()
        .route("/v1/customers/{id}", get(customer))
        .route("/v1/segments", get(segments))
        .route("/v1/segments/{name}/members", get(members))
        .route("/v1/funnels", get(funnels))
        .route("/v1/cohorts", get(cohorts))
        .with_state(s)
        .merge(status)
        .fallback(unknown)
        .method_not_allowed_fallback(not_allowed)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// Runs a read on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Response> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("read failed: {e}"),
        )
    })
}

/// A method other than GET: JSON too.
async fn not_allowed(uri: Uri) -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} answers GET only", uri.path()),
    )
}

/// Any other path: JSON too, like every answer of the API.
async fn unknown(uri: Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!(
            "no endpoint {}; see docs/operations.md#query-api",
            uri.path()
        ),
    )
}

async fn customer(State(s): State<ApiState>, Segment(id): Segment) -> Response {
    if id.len() > 256 {
        return error(StatusCode::BAD_REQUEST, "customer id longer than 256 bytes");
    }
    let state = s.state.clone();
    let wanted = id.clone();
    let found = match blocking(move || {
        let report = read::customer(&state, &wanted);
        let evicted = report.is_none() && read::evicted(&state, &wanted);
        (report, evicted)
    })
    .await
    {
        Ok(r) => r,
        Err(e) => return e,
    };
    match found {
        (Some(report), _) => Json(report).into_response(),
        (None, true) => {
            let body = json!({
                "error": format!(
                    "customer {id:?} was evicted: no event for engine.evict_after ({}); a new \
                     event starts them over",
                    humantime::format_duration(s.engine.spec.evict_after())
                ),
                "evicted": true,
            });
            (StatusCode::NOT_FOUND, Json(body)).into_response()
        }
        (None, false) => {
            let held = s.state.partitions();
            let partition =
                partition_for(id.as_bytes(), s.state.input_partitions(), &s.partitioner);
            let elsewhere = partition.filter(|p| !held.contains(p));
            let owner = match elsewhere {
                Some(p) => {
                    let owners = s.owners.clone();
                    blocking(move || owners.owner(p)).await.ok().flatten()
                }
                None => None,
            };
            let message = match (elsewhere, &owner) {
                (Some(p), Some(o)) => {
                    format!("customer {id:?} lives in partition {p}, held by the worker at {o}")
                }
                (Some(p), None) => format!(
                    "customer {id:?} lives in partition {p}, which another worker of the group holds"
                ),
                _ => format!("no customer {id:?}"),
            };
            let location = owner
                .as_ref()
                .map(|o| format!("{o}/v1/customers/{}", percent_encode(&id)));
            let body = json!({
                "error": message,
                "partition": partition,
                "held_partitions": held,
                "owner": owner,
                "location": location,
            });
            (StatusCode::NOT_FOUND, Json(body)).into_response()
        }
    }
}

async fn segments(State(s): State<ApiState>) -> Response {
    let tally = s.state.tally();
    let list: Vec<Value> = s
        .engine
        .segments()
        .iter()
        .enumerate()
        .map(|(i, r)| {
            json!({
                "name": r.name,
                "version": r.version,
                "rule": r.rule,
                "min_dwell_ms": r.min_dwell,
                "cooldown_ms": r.cooldown,
                "members": tally.segments.get(i).copied().unwrap_or(0),
            })
        })
        .collect();
    Json(json!({ "segments": list, "customers": tally.customers })).into_response()
}

async fn members(State(s): State<ApiState>, Segment(name): Segment, Params(q): Params) -> Response {
    let Some(index) = s.engine.spec.segment_names().position(|n| n == name) else {
        return error(StatusCode::NOT_FOUND, format!("no segment {name:?}"));
    };
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => DEFAULT_LIMIT,
        Some(Ok(n)) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("limit must be a whole number from 1 to {MAX_LIMIT}"),
            )
        }
    };
    let cursor = q.get("cursor").cloned();
    let state = s.state.clone();
    let after = cursor.clone();
    let (page, more) =
        match blocking(move || read::members(&state, index, after.as_deref(), limit)).await {
            Ok(r) => r,
            Err(e) => return e,
        };
    let next = if more { page.last().cloned() } else { None };
    Json(json!({ "segment": name, "members": page, "next_cursor": next })).into_response()
}

async fn funnels(State(s): State<ApiState>) -> Response {
    let s2 = s.clone();
    let mut list = match blocking(move || read::kept_funnels(&s2)).await {
        Ok(r) => r.as_ref().clone(),
        Err(e) => return e,
    };
    if list.is_empty() {
        // No partition held yet: the configured funnels with nothing counted.
        list = funnel_summaries(&s.engine.spec, std::iter::empty());
    }
    Json(json!({ "funnels": list })).into_response()
}

/// A cohort period's label: the Monday of a week (`2026-01-05`) or a month (`2026-01`).
fn period_label(period: Period, n: i64) -> String {
    match period {
        Period::Week => format_rfc3339((n * 7 + 4) * DAY)[..10].to_owned(),
        Period::Month => {
            let (y, m) = (1970 + n.div_euclid(12), n.rem_euclid(12) + 1);
            format!("{y:04}-{m:02}")
        }
    }
}

async fn cohorts(State(s): State<ApiState>, Params(q): Params) -> Response {
    let period = match q.get("period").map(String::as_str) {
        None | Some("week") => Period::Week,
        Some("month") => Period::Month,
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("period must be week or month, not {other:?}"),
            )
        }
    };
    let s2 = s.clone();
    let counts = match blocking(move || read::kept_cohorts(&s2, period)).await {
        Ok(c) => c,
        Err(e) => return e,
    };
    let mut rows: BTreeMap<i64, Vec<u64>> = BTreeMap::new();
    for (&(cohort, offset), &n) in counts.iter() {
        let row = rows.entry(cohort).or_default();
        let at = offset as usize;
        if row.len() <= at {
            row.resize(at + 1, 0);
        }
        row[at] = n;
    }
    let list: Vec<Value> = rows
        .into_iter()
        .map(|(cohort, active)| {
            json!({
                "cohort": period_label(period, cohort),
                "size": active.first().copied().unwrap_or(0),
                "active": active,
            })
        })
        .collect();
    let name = if period == Period::Week {
        "week"
    } else {
        "month"
    };
    Json(json!({ "period": name, "cohorts": list })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulse_events::time::civil_from_days;

    #[test]
    fn period_labels() {
        let monday = 1_767_571_200_000; // 2026-01-05
        assert_eq!(
            period_label(Period::Week, Period::Week.of(monday)),
            "2026-01-05"
        );
        assert_eq!(
            period_label(Period::Month, Period::Month.of(monday)),
            "2026-01"
        );
        let (y, m, _) = civil_from_days(monday / DAY);
        assert_eq!((y, m), (2026, 1));
    }
}
