//! The HTTP routes. Translation only: read the request (`request`), make one
//! store call, write the v2 answer (`crate::v2`).
//!
//! - `GET|PUT /new?size=N` → the discovery URL as text.
//! - `GET /<token>` (listing), `GET|PUT|DELETE /<token>/<member>`,
//!   `GET /<token>/_config/size`; `wait=true` long polls.
//! - `GET /health`, `GET /metrics`.

mod request;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, Method, StatusCode};
use tokio_stream::wrappers::ReceiverStream;
use warp::Filter;
use warp::Reply as _;
use warp::reply::Response;

use crate::metrics::Metrics;
use crate::store::{Order, Store, Watch};
use crate::v2::{self, Code};
use request::{Params, Route, Target};

/// The header carrying the token's index.
const ETCD_INDEX: &str = "x-etcd-index";

/// What the routes need.
#[derive(Clone, Debug)]
pub struct State {
    pub store: Store,
    pub metrics: Arc<Metrics>,
    /// Base of handed-out URLs, without a trailing slash.
    pub advertise_url: String,
    /// Longest a long poll is held.
    pub wait_timeout: Duration,
}

/// Every route; never rejects.
pub fn routes(
    state: Arc<State>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static {
    warp::method()
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .then(
            move |method: Method,
                  path: warp::path::FullPath,
                  query: String,
                  headers: HeaderMap,
                  body| {
                let state = state.clone();
                async move {
                    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
                    let form = if method == Method::PUT && request::is_form(content_type) {
                        match request::read_body(body).await {
                            Ok(form) => form,
                            Err(e) => return error(&e, false),
                        }
                    } else {
                        Vec::new()
                    };
                    let params = Params::parse(&query, &form);
                    let response = handle(&state, &method, path.as_str(), &params).await;
                    tracing::debug!(
                        %method,
                        path = path.as_str(),
                        query,
                        status = response.status().as_u16(),
                        "request"
                    );
                    response
                }
            },
        )
        .recover(|_rejection: warp::Rejection| async {
            // None of the filters above rejects a well-formed HTTP request.
            let e = v2::Error::new(Code::InvalidField, "malformed request", 0);
            Ok::<_, Infallible>(error(&e, false))
        })
        .unify()
}

async fn handle(state: &State, method: &Method, path: &str, params: &Params) -> Response {
    let route = match request::route(path) {
        Ok(route) => route,
        Err(e) => return error(&e, false),
    };
    match route {
        Route::New => match *method {
            Method::GET | Method::PUT => new_token(state, params).await,
            _ => not_allowed(method, path, "GET, PUT"),
        },
        Route::Health => match *method {
            Method::GET => health(state).await,
            _ => not_allowed(method, path, "GET"),
        },
        Route::Metrics => match *method {
            Method::GET => metrics(state).await,
            _ => not_allowed(method, path, "GET"),
        },
        Route::NoSuchKey { key } => match *method {
            Method::GET => error(&v2::Error::new(Code::KeyNotFound, key, 0), true),
            Method::PUT | Method::DELETE => error(
                &v2::Error::new(
                    Code::InvalidField,
                    format!("{key}: only /<token>/<member> keys can be written"),
                    0,
                ),
                true,
            ),
            _ => not_allowed(method, path, "GET, PUT, DELETE"),
        },
        Route::Keys { token, target } => {
            let result = match *method {
                Method::GET => get(state, &token, &target, params).await,
                Method::PUT => put(state, &token, &target, params).await,
                Method::DELETE => delete(state, &token, &target, params).await,
                _ => {
                    let allow = match target {
                        Target::Member(_) => "GET, PUT, DELETE",
                        Target::Dir => "GET, PUT",
                        Target::Size => "GET",
                    };
                    return not_allowed(method, path, allow);
                }
            };
            result.unwrap_or_else(|e| error(&e, true))
        }
    }
}

async fn new_token(state: &State, params: &Params) -> Response {
    let size = match params.size() {
        Ok(size) => size,
        Err(e) => return error(&e, false),
    };
    match state.store.create_token(size).await {
        Ok(token) => {
            tracing::info!(%token, size, "created a discovery token");
            let url = format!("{}/{token}", state.advertise_url);
            with_type(
                warp::reply::with_status(url, StatusCode::OK).into_response(),
                "text/plain; charset=utf-8",
            )
        }
        Err(e) => {
            log_store_error(&e);
            error(&e.into(), false)
        }
    }
}

async fn get(
    state: &State,
    token: &str,
    target: &Target,
    params: &Params,
) -> Result<Response, v2::Error> {
    let key = target.read_key(token)?;
    let recursive = params.flag("recursive")?;
    let sorted = params.flag("sorted")?;
    params.flag("quorum")?;
    params.refuse_unsupported()?;
    let wait_index = params.wait_index()?;
    if !params.flag("wait")? {
        let order = if sorted { Order::Key } else { Order::Created };
        let outcome = state
            .store
            .get(token, key, order)
            .await
            .map_err(store_error)?;
        return Ok(json(
            StatusCode::OK,
            outcome.index,
            v2::event_body(&outcome.event),
        ));
    }
    match state
        .store
        .watch(token, key, recursive, wait_index)
        .await
        .map_err(store_error)?
    {
        Watch::Ready { index, event } => Ok(json(StatusCode::OK, index, v2::event_body(&event))),
        Watch::Pending(pending) => {
            // Like etcd: the headers (with the index at the start of the
            // wait) go out now, the event follows when it happens. A wait
            // that times out ends with an empty body, which makes etcd's
            // client poll again from the same index.
            let index = pending.index();
            let timeout = state.wait_timeout;
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, Infallible>>(1);
            tokio::spawn(async move {
                let outcome = tokio::select! {
                    outcome = pending.wait(timeout) => outcome,
                    () = tx.closed() => return, // the client went away
                };
                match outcome {
                    Ok(Some(event)) => {
                        let _ = tx.send(Ok(Bytes::from(v2::event_body(&event)))).await;
                    }
                    Ok(None) => {}
                    Err(e) => log_store_error(&e),
                }
            });
            let body = warp::reply::stream(ReceiverStream::new(rx)).into_response();
            Ok(with_index(with_type(body, "application/json"), index))
        }
    }
}

async fn put(
    state: &State,
    token: &str,
    target: &Target,
    params: &Params,
) -> Result<Response, v2::Error> {
    let key = target.write_key()?;
    params.refuse_unsupported()?;
    if params.flag("wait")? {
        return Err(v2::Error::new(
            Code::InvalidField,
            "\"wait\" can only be used with GET requests",
            0,
        ));
    }
    let prev_exist = params.prev_exist()?;
    let value = params.value()?;
    let outcome = state
        .store
        .set(token, key, value, prev_exist)
        .await
        .map_err(store_error)?;
    if outcome.created {
        tracing::info!(%token, key = %outcome.event.node.key, "member registered");
    }
    let status = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json(status, outcome.index, v2::event_body(&outcome.event)))
}

async fn delete(
    state: &State,
    token: &str,
    target: &Target,
    params: &Params,
) -> Result<Response, v2::Error> {
    let key = target.write_key()?;
    params.refuse_unsupported()?;
    if params.flag("wait")? {
        return Err(v2::Error::new(
            Code::InvalidField,
            "\"wait\" can only be used with GET requests",
            0,
        ));
    }
    let outcome = state.store.delete(token, key).await.map_err(store_error)?;
    tracing::info!(%token, key = %outcome.event.node.key, "member deleted");
    Ok(json(
        StatusCode::OK,
        outcome.index,
        v2::event_body(&outcome.event),
    ))
}

async fn health(state: &State) -> Response {
    let (status, body) = if state.store.healthy().await {
        (StatusCode::OK, "{\"health\":\"true\"}\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "{\"health\":\"false\"}\n")
    };
    with_type(
        warp::reply::with_status(body, status).into_response(),
        "application/json",
    )
}

async fn metrics(state: &State) -> Response {
    match state.store.gauges().await {
        Ok(gauges) => with_type(
            state.metrics.render(gauges).into_response(),
            "text/plain; version=0.0.4; charset=utf-8",
        ),
        Err(e) => {
            log_store_error(&e);
            error(&e.into(), false)
        }
    }
}

fn store_error(e: crate::store::StoreError) -> v2::Error {
    log_store_error(&e);
    e.into()
}

fn log_store_error(e: &crate::store::StoreError) {
    use crate::store::StoreError as E;
    if matches!(
        e,
        E::Sqlite(_) | E::Corrupt(_) | E::Closed | E::NewerSchema { .. } | E::DataDir { .. }
    ) {
        tracing::error!(error = %e, "store failure");
    } else {
        tracing::debug!(error = %e, "request refused");
    }
}

fn json(status: StatusCode, index: u64, body: Vec<u8>) -> Response {
    let response = warp::reply::with_status(body, status).into_response();
    with_index(with_type(response, "application/json"), index)
}

fn error(e: &v2::Error, with_etcd_index: bool) -> Response {
    let response = warp::reply::with_status(e.body(), e.status).into_response();
    let response = with_type(response, "application/json");
    if with_etcd_index {
        with_index(response, e.index)
    } else {
        response
    }
}

fn not_allowed(method: &Method, path: &str, allow: &'static str) -> Response {
    let e = v2::Error::new(
        Code::InvalidField,
        format!("method {method} is not allowed on {path} (allowed: {allow})"),
        0,
    )
    .with_status(StatusCode::METHOD_NOT_ALLOWED);
    let mut response = error(&e, false);
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

fn with_type(mut response: Response, content_type: &'static str) -> Response {
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn with_index(mut response: Response, index: u64) -> Response {
    response
        .headers_mut()
        .insert(ETCD_INDEX, HeaderValue::from(index));
    response
}

#[cfg(test)]
mod tests;
