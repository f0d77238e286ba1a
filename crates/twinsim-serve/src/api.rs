//! The HTTP API: routes, and handlers that turn uploads into worker tasks.

use std::sync::Arc;

use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Json, Router};
use serde_json::Value;
use twinsim_learn::model::Preprocess;

use crate::decode;
use crate::error::ApiError;
use crate::guard;
use crate::limits::Limits;
use crate::upload::{File, Upload};
use crate::worker::{self, Answer, Task, Worker};

/// What every handler shares.
pub struct AppState {
    pub worker: Worker,
    pub limits: Limits,
    pub preprocess: Preprocess,
    /// `GET /v1/model`'s answer, fixed at start.
    pub model_info: Value,
    pub has_index: bool,
}

/// The service: API, OpenAPI description and web page, with `state.limits`
/// on requests ([`guard`]) and their bodies; every refusal, 404 and 405
/// included, carries the JSON error.
pub fn router(state: AppState) -> Router {
    let limit = state.limits.max_body_bytes;
    let state = Arc::new(state);
    Router::new()
        .route("/", get(page))
        .route("/openapi.json", get(openapi))
        .route("/v1/health", get(health))
        .route("/v1/model", get(model))
        .route("/v1/compare", post(compare))
        .route("/v1/embed", post(embed))
        .route("/v1/search", post(search))
        .route("/v1/identify", post(identify))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(state.clone(), guard::limit))
        .with_state(state)
}

type Shared = State<Arc<AppState>>;
/// A multipart body, or why the request is not one.
type Form = Result<Multipart, MultipartRejection>;

/// Reads the upload of a request the Multipart extractor accepted.
async fn read(s: &AppState, form: Form) -> Result<Upload, ApiError> {
    let form = form.map_err(|e| {
        ApiError::bad_request(
            format!("not a multipart/form-data request: {}", e.body_text()),
            "send the images as multipart/form-data file fields (curl -F a=@one.png -F b=@two.png)",
        )
    })?;
    Upload::read(form, &s.limits).await
}

async fn page() -> Html<&'static str> {
    Html(include_str!("../static/index.html"))
}

async fn openapi() -> Json<Value> {
    Json(crate::openapi::document())
}

async fn health() -> Json<Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn model(State(s): Shared) -> Json<Value> {
    Json(s.model_info.clone())
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint", "see GET /openapi.json for the endpoints")
}

async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::method_not_allowed(&method)
}

/// `POST /v1/compare`: files `a` and `b` (or any two files).
async fn compare(State(s): Shared, form: Form) -> Result<Response, ApiError> {
    let mut upload = read(&s, form).await?;
    let pair = match (upload.take("a"), upload.take("b")) {
        (Some(a), Some(b)) => vec![a, b],
        (a, b) => a.into_iter().chain(b).chain(upload.files).collect(),
    };
    if pair.len() != 2 {
        return Err(ApiError::bad_request(
            format!("compare takes two images; this request has {}", pair.len()),
            "send two files, as fields a and b (curl -F a=@one.png -F b=@two.png)",
        ));
    }
    run(&s, pair, Task::Compare).await
}

/// `POST /v1/embed`: one or more files.
async fn embed(State(s): Shared, form: Form) -> Result<Response, ApiError> {
    let upload = read(&s, form).await?;
    if upload.files.is_empty() {
        return Err(missing_image("embed", "images"));
    }
    run(&s, upload.files, Task::Embed).await
}

/// `POST /v1/search`: file `image` and text field `k` (default 8).
async fn search(State(s): Shared, form: Form) -> Result<Response, ApiError> {
    let mut upload = read(&s, form).await?;
    let k = parse_k(upload.text.get("k").map(String::as_str), s.limits.max_k)?;
    let thumbnails = upload
        .text
        .get("thumbnails")
        .is_some_and(|v| v == "true" || v == "1");
    let image = one_image(&mut upload, "search")?;
    if !s.has_index {
        return Err(worker::no_index());
    }
    run(&s, vec![image], Task::Search { k, thumbnails }).await
}

/// `POST /v1/identify`: file `image`.
async fn identify(State(s): Shared, form: Form) -> Result<Response, ApiError> {
    let mut upload = read(&s, form).await?;
    let image = one_image(&mut upload, "identify")?;
    if !s.has_index {
        return Err(worker::no_index());
    }
    let answer = run_task(&s, vec![image], Task::Identify).await?;
    let Answer::Identities { mut identities } = answer else {
        return Err(ApiError::internal("identify answered with something else"));
    };
    let id = identities.remove(0);
    let label = id.label.clone().unwrap_or_else(|| "unknown".into());
    Ok(Json(serde_json::json!({
        "label": label,
        "known": id.label.is_some(),
        "similarity": id.similarity,
        "threshold": id.threshold,
        "nearest": id.nearest,
    }))
    .into_response())
}

/// The one file of a search or identification (field `image`, or the only file).
fn one_image(upload: &mut Upload, endpoint: &str) -> Result<File, ApiError> {
    if let Some(f) = upload.take("image") {
        return Ok(f);
    }
    match upload.files.len() {
        1 => Ok(upload.files.remove(0)),
        0 => Err(missing_image(endpoint, "image")),
        more => Err(ApiError::bad_request(
            format!("{endpoint} takes one image; this request has {more}"),
            "send one file, as field image",
        )),
    }
}

fn missing_image(endpoint: &str, field: &str) -> ApiError {
    ApiError::bad_request(
        format!("{endpoint} needs an image file; the request has none"),
        format!("send it as multipart/form-data (curl -F {field}=@photo.png)"),
    )
}

/// `k` from its text field: a whole number from 1 to `max`.
fn parse_k(text: Option<&str>, max: usize) -> Result<usize, ApiError> {
    let Some(text) = text else {
        return Ok(8.min(max));
    };
    match text.trim().parse::<i64>() {
        Ok(k) if k >= 1 && k as u64 <= max as u64 => Ok(k as usize),
        _ => Err(ApiError::bad_request(
            format!(
                "k must be a whole number from 1 to {max}, not '{}'",
                text.chars().take(40).collect::<String>()
            ),
            format!("send k between 1 and {max}"),
        )),
    }
}

/// Decodes `files` off the executor, then runs `task` on the worker.
async fn run_task(s: &AppState, files: Vec<File>, task: Task) -> Result<Answer, ApiError> {
    let (preprocess, max_pixels) = (s.preprocess.clone(), s.limits.max_pixels);
    let images = tokio::task::spawn_blocking(move || decode::images(&files, &preprocess, max_pixels))
        .await
        .map_err(|e| ApiError::internal(format!("decoding failed: {e}")))??;
    s.worker.run(images, task).await
}

async fn run(s: &AppState, files: Vec<File>, task: Task) -> Result<Response, ApiError> {
    Ok((
        StatusCode::OK,
        [(header::CACHE_CONTROL, "no-store")],
        Json(run_task(s, files, task).await?),
    )
        .into_response())
}
