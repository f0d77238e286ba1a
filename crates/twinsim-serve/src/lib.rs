//! twinsim over HTTP (`twinsim serve`): a trained model, and optionally a
//! gallery index, behind a JSON API and a web page to try them.
//!
//! Requests flow one way: each connection is served within [`Limits`]
//! ([`connection`]: header timeout, head size, JSON bodies for the
//! refusals hyper writes itself in [`parse_error`]), each request's head is
//! checked and its body given a deadline ([`guard`]), the body is read
//! within [`Limits`] ([`upload`]),
//! files are checked against the format allow-list and decoded off the
//! async executor ([`decode`]), then the model's one worker thread embeds
//! them, batching requests that wait together ([`worker`]), and the
//! handler answers ([`api`]). Bad input is always a 4xx with a JSON
//! `{"error", "hint"}` ([`error`]).

pub mod api;
pub mod connection;
pub mod decode;
pub mod error;
pub mod guard;
pub mod limits;
pub mod openapi;
pub mod parse_error;
pub mod upload;
pub mod worker;

use std::net::SocketAddr;
use std::path::PathBuf;

use serde_json::{json, Value};
use twinsim_data::LoadOptions;
use twinsim_index::Index;
use twinsim_learn::run::Run;

pub use api::{router, AppState};
pub use connection::serve_until;
pub use error::ApiError;
pub use limits::Limits;

/// What `twinsim serve` was asked for.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub model: PathBuf,
    pub index: Option<PathBuf>,
    pub addr: SocketAddr,
    pub limits: Limits,
    /// Where gallery images are read for search thumbnails.
    pub data: LoadOptions,
}

/// Errors that stop the server from starting.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Learn(Box<twinsim_learn::LearnError>),
    #[error(transparent)]
    Index(Box<twinsim_index::IndexError>),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the server failed: {0}")]
    Io(#[from] std::io::Error),
}

impl From<twinsim_learn::LearnError> for ServeError {
    fn from(e: twinsim_learn::LearnError) -> Self {
        ServeError::Learn(Box::new(e))
    }
}

impl From<twinsim_index::IndexError> for ServeError {
    fn from(e: twinsim_index::IndexError) -> Self {
        ServeError::Index(Box::new(e))
    }
}

impl ServeError {
    /// What the user can change, when known.
    pub fn hint(&self) -> Option<String> {
        match self {
            ServeError::Learn(e) => e.hint(),
            ServeError::Index(e) => e.hint(),
            ServeError::Bind { .. } => Some("pick another --port, or stop what listens there".into()),
            ServeError::Io(_) => None,
        }
    }
}

/// The service for `config`'s model and index, ready to serve: the model is
/// loaded and checked (calibrated, and the one that built the index).
pub fn app(config: &ServeConfig) -> Result<axum::Router, ServeError> {
    let run = Run::open(&config.model, tch::Device::Cpu)?;
    let calibration = run.model.require_calibration(&run.dir)?;
    let index = match &config.index {
        Some(path) => {
            let index = twinsim_index::file::load(path)?;
            index.check_model(&run.model, path)?;
            Some(index)
        }
        None => None,
    };
    let state = AppState {
        model_info: model_info(&run, index.as_ref()),
        has_index: index.is_some(),
        preprocess: run.model.card.preprocess.clone(),
        limits: config.limits.clone(),
        worker: worker::Worker::start(run, calibration, index, config.data.clone()),
    };
    Ok(router(state))
}

/// Serves `config` until SIGTERM or Ctrl-C, then finishes the requests in
/// flight and returns; `ready` is told the address it listens on.
pub async fn serve(config: ServeConfig, ready: impl FnOnce(SocketAddr)) -> Result<(), ServeError> {
    let app = app(&config)?;
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.addr,
            source,
        })?;
    ready(listener.local_addr()?);
    connection::serve_until(listener, app, &config.limits, shutdown()).await;
    Ok(())
}

/// Resolves at SIGTERM or Ctrl-C.
async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler installs");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down: finishing the requests in flight");
}

/// `GET /v1/model`'s answer.
fn model_info(run: &Run, index: Option<&Index>) -> Value {
    let card = &run.model.card;
    let read = |name: &str| -> Value {
        twinsim_data::read::read_file(&run.dir.join(name), twinsim_data::read::MAX_TEXT_BYTES)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null)
    };
    let summary = read("summary.json");
    json!({
        "arch": card.encoder.arch,
        "dataset": card.dataset,
        "loss": card.loss,
        "input": { "channels": card.preprocess.channels, "height": card.preprocess.height, "width": card.preprocess.width },
        "embedding_dim": card.encoder.embedding_dim,
        "metric": card.distance.name(),
        "classes": card.classes,
        "calibration": run.model.calibration(),
        "metrics": {
            "test_precision_at_1": summary.get("test_precision_at_1").cloned().unwrap_or(Value::Null),
            "evaluations": read("metrics.json"),
        },
        "index": index.map(|i| json!({ "images": i.len(), "classes": i.class_counts().len() })),
    })
}
