//! The HTTP API in-process: real requests (multipart bodies, streamed or
//! not) through the real router, a model trained on the embedded MNIST
//! sample and an index of its test images; every kind of bad input is a 4xx
//! with a JSON error, and a property run finds no 5xx.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use proptest::prelude::*;
use serde_json::Value;
use tower::ServiceExt;
use twinsim_index::gallery::Gallery;
use twinsim_learn::run::Run;
use twinsim_serve::{app, Limits, ServeConfig};

use common::{config, fixture, save_index};

fn service(index: bool) -> Router {
    app(&config(index, Limits::default())).expect("the app starts")
}

fn digit(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/digits")
            .join(name),
    )
    .unwrap()
}

/// A multipart/form-data body of `files` (field, file name, bytes) and
/// `text` (field, value).
fn multipart(files: &[(&str, &str, &[u8])], text: &[(&str, &str)]) -> (String, Vec<u8>) {
    let boundary = "twinsim-test-boundary-7MA4YWxkTrZu0gW".to_string();
    let mut body = Vec::new();
    for (field, name, bytes) in files {
        body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes());
        body.extend(*bytes);
        body.extend(b"\r\n");
    }
    for (field, value) in text {
        body.extend(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    body.extend(format!("--{boundary}--\r\n").as_bytes());
    (boundary, body)
}

fn post(path: &str, files: &[(&str, &str, &[u8])], text: &[(&str, &str)]) -> Request<Body> {
    let (boundary, body) = multipart(files, text);
    Request::post(path)
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )
        .header(header::CONTENT_LENGTH, body.len())
        .body(Body::from(body))
        .unwrap()
}

/// Sends `req`; returns the status and the body as JSON.
async fn call(app: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("{status}: not JSON: {}", String::from_utf8_lossy(&bytes)));
    (status, value)
}

/// `POST /v1/compare` of `a` and `b`.
async fn compare(app: &Router, a: &[u8], b: &[u8]) -> (StatusCode, Value) {
    call(
        app,
        post("/v1/compare", &[("a", "a.png", a), ("b", "b.png", b)], &[]),
    )
    .await
}

/// Asserts a refusal: `status`, a JSON error containing `needle`, a hint.
fn refused((status, body): (StatusCode, Value), want: StatusCode, needle: &str) {
    assert_eq!(status, want, "{body}");
    let error = body["error"].as_str().expect("an error message");
    assert!(error.contains(needle), "{error:?} lacks {needle:?}");
    assert!(!body["hint"].as_str().unwrap_or("").is_empty(), "no hint: {body}");
}

#[tokio::test]
async fn health_model_and_openapi_describe_the_server() {
    let app = service(true);
    let (s, health) = call(&app, Request::get("/v1/health").body(Body::empty()).unwrap()).await;
    assert_eq!((s, health["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (_, model) = call(&app, Request::get("/v1/model").body(Body::empty()).unwrap()).await;
    assert_eq!(model["arch"], "cnn");
    assert_eq!(model["index"]["images"], 200);
    assert!(model["calibration"]["threshold"].is_number(), "{model}");
    assert!(model["metrics"]["test_precision_at_1"].is_number());
    let (_, doc) = call(&app, Request::get("/openapi.json").body(Body::empty()).unwrap()).await;
    for path in [
        "/v1/compare",
        "/v1/embed",
        "/v1/search",
        "/v1/identify",
        "/v1/health",
        "/v1/model",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} undocumented");
    }
    let page = app
        .clone()
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&html).contains("/v1/compare"));
    refused(
        call(&app, Request::get("/v2/nothing").body(Body::empty()).unwrap()).await,
        StatusCode::NOT_FOUND,
        "no such endpoint",
    );
}

#[tokio::test]
async fn compare_scores_two_uploads_with_the_calibrated_threshold() {
    let app = service(false);
    let (a, b, two) = (digit("seven-a.png"), digit("seven-b.png"), digit("two.png"));
    let (s, same) = compare(&app, &a, &b).await;
    assert_eq!(s, StatusCode::OK, "{same}");
    let (_, other) = compare(&app, &a, &two).await;
    let (_, itself) = compare(&app, &a, &a).await;
    let sim = |v: &Value| v["similarity"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&sim(&same)) && (0.0..=1.0).contains(&sim(&other)));
    assert!(
        sim(&itself) >= sim(&same) && sim(&same) > sim(&other),
        "{itself} {same} {other}"
    );
    assert_eq!(itself["same"], true);
    assert_eq!(same["threshold"], other["threshold"]);
    assert_eq!(
        same["same"].as_bool().unwrap(),
        sim(&same) >= same["threshold"].as_f64().unwrap()
    );
}

#[tokio::test]
async fn embed_search_and_identify_answer_from_the_index() {
    let app = service(true);
    let (a, two) = (digit("seven-a.png"), digit("two.png"));
    let (s, e) = call(
        &app,
        post(
            "/v1/embed",
            &[("images", "a.png", &a), ("images", "b.png", &two)],
            &[],
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{e}");
    let rows = e["embeddings"].as_array().unwrap();
    assert_eq!((rows.len(), e["dim"].as_u64()), (2, Some(128)));
    let norm: f64 = rows[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap().powi(2))
        .sum();
    assert!((norm - 1.0).abs() < 1e-4, "cosine embeddings have norm 1: {norm}");

    let (s, found) = call(
        &app,
        post(
            "/v1/search",
            &[("image", "a.png", &a)],
            &[("k", "5"), ("thumbnails", "true")],
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{found}");
    let hits = found["results"][0].as_array().unwrap();
    assert_eq!(hits.len(), 5);
    let sims: Vec<f64> = hits.iter().map(|h| h["similarity"].as_f64().unwrap()).collect();
    assert!(sims.windows(2).all(|w| w[0] >= w[1]), "nearest first: {sims:?}");
    assert_eq!(hits[0]["label"], "7", "{found}");
    assert!(hits.iter().all(|h| h["thumbnail"]
        .as_str()
        .unwrap()
        .starts_with("data:image/png;base64,")));
    assert!(hits[0]["source"]
        .as_str()
        .unwrap()
        .starts_with("mnist-sample:test#"));

    let (s, id) = call(&app, post("/v1/identify", &[("image", "a.png", &a)], &[])).await;
    assert_eq!(s, StatusCode::OK, "{id}");
    assert_eq!(
        id["known"].as_bool().unwrap(),
        id["similarity"].as_f64().unwrap() >= id["threshold"].as_f64().unwrap()
    );
    assert_eq!(
        id["label"],
        if id["known"] == true { "7" } else { "unknown" },
        "{id}"
    );
    assert_eq!(id["nearest"]["label"], "7", "{id}");
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused_with_413_with_or_without_content_length() {
    let limits = Limits {
        max_body_bytes: 64 << 10,
        ..Limits::default()
    };
    let app = app(&config(false, limits)).unwrap();
    let big = vec![7u8; 200 << 10];
    refused(
        call(&app, post("/v1/embed", &[("images", "big.png", &big)], &[])).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "over 65536 bytes",
    );
    // Streamed in chunks, no Content-Length: refused as it arrives.
    let (boundary, body) = multipart(&[("images", "big.png", &big)], &[]);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = body.chunks(8192).map(|c| Ok(c.to_vec())).collect();
    let req = Request::post("/v1/embed")
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(Body::from_stream(futures_stream(chunks)))
        .unwrap();
    assert!(req.headers().get(header::CONTENT_LENGTH).is_none());
    refused(
        call(&app, req).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "over 65536 bytes",
    );
}

/// A stream of `chunks`, as a client that does not announce its length sends.
fn futures_stream(
    chunks: Vec<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send {
    futures_util::stream::iter(chunks)
}

/// A blank 28x28 grey image encoded as `format`.
fn blank(format: image::ImageFormat) -> Vec<u8> {
    let mut bytes = Vec::new();
    image::DynamicImage::new_luma8(28, 28)
        .write_to(&mut std::io::Cursor::new(&mut bytes), format)
        .unwrap();
    bytes
}

/// A small real PNG whose header is rewritten to declare `w` x `h` pixels:
/// a decompression bomb as far as its header goes.
fn png_declaring(w: u32, h: u32) -> Vec<u8> {
    let mut png = blank(image::ImageFormat::Png);
    // Signature (8), IHDR length (4), "IHDR" at 12..16, width and height at 16..24.
    png[16..20].copy_from_slice(&w.to_be_bytes());
    png[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[tokio::test]
async fn bad_uploads_are_4xx_with_a_json_error_and_a_hint() {
    let app = service(false);
    let seven = digit("seven-a.png");
    // A decompression bomb: 100,000 x 100,000 pixels declared in a tiny file.
    refused(
        compare(&app, &seven, &png_declaring(100_000, 100_000)).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "too large",
    );
    // Truncated PNG and JPEG.
    refused(
        compare(&app, &seven, &seven[..seven.len() / 2]).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "cannot be decoded",
    );
    let jpeg = blank(image::ImageFormat::Jpeg);
    refused(
        compare(&app, &seven, &jpeg[..jpeg.len() - 40]).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "truncated",
    );
    // Formats outside the allow-list, whatever their names say.
    let tiff = blank(image::ImageFormat::Tiff);
    refused(
        compare(&app, &seven, &tiff).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "Tiff",
    );
    let svg = br#"<svg xmlns="http://www.w3.org/2000/svg" width="28" height="28"><rect width="28" height="28"/></svg>"#;
    refused(
        compare(&app, &seven, svg).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "not an image",
    );
    let eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\nnewpath 0 0 moveto 28 28 lineto stroke\n";
    refused(
        compare(&app, &seven, eps).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "not an image",
    );
    // Empty file, missing field, not multipart at all.
    refused(
        compare(&app, &seven, b"").await,
        StatusCode::BAD_REQUEST,
        "is empty",
    );
    refused(
        call(&app, post("/v1/compare", &[("a", "a.png", &seven)], &[])).await,
        StatusCode::BAD_REQUEST,
        "two images",
    );
    refused(
        call(&app, post("/v1/embed", &[], &[("note", "hi")])).await,
        StatusCode::BAD_REQUEST,
        "needs an image",
    );
    let json = Request::post("/v1/compare")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{}"))
        .unwrap();
    refused(call(&app, json).await, StatusCode::BAD_REQUEST, "multipart");
    // Too many files and fields.
    let many: Vec<(&str, &str, &[u8])> = (0..40).map(|_| ("images", "x.png", seven.as_slice())).collect();
    refused(
        call(&app, post("/v1/embed", &many, &[])).await,
        StatusCode::BAD_REQUEST,
        "more than 32 files",
    );
    let fields: Vec<(&str, &str)> = (0..50).map(|_| ("note", "x")).collect();
    refused(
        call(&app, post("/v1/embed", &[], &fields)).await,
        StatusCode::BAD_REQUEST,
        "more than 40 form fields",
    );
    // A search or identification without an index.
    refused(
        call(&app, post("/v1/search", &[("image", "a.png", &seven)], &[])).await,
        StatusCode::CONFLICT,
        "no gallery index",
    );
    refused(
        call(&app, post("/v1/identify", &[("image", "a.png", &seven)], &[])).await,
        StatusCode::CONFLICT,
        "no gallery index",
    );
}

#[tokio::test]
async fn k_must_be_between_1_and_the_limit() {
    let app = service(true);
    let seven = digit("seven-a.png");
    for k in ["0", "-3", "101", "1e9", "seven", ""] {
        refused(
            call(
                &app,
                post("/v1/search", &[("image", "a.png", &seven)], &[("k", k)]),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "k must be",
        );
    }
    let (s, found) = call(
        &app,
        post("/v1/search", &[("image", "a.png", &seven)], &[("k", "100")]),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(found["results"][0].as_array().unwrap().len(), 100);
}

#[tokio::test]
async fn a_k_larger_than_the_gallery_gets_the_whole_gallery() {
    let limits = Limits {
        max_k: 1000,
        ..Limits::default()
    };
    let app = app(&config(true, limits)).unwrap();
    let seven = digit("seven-a.png");
    let (s, found) = call(
        &app,
        post("/v1/search", &[("image", "a.png", &seven)], &[("k", "500")]),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{found}");
    assert_eq!(found["results"][0].as_array().unwrap().len(), 200);
}

#[tokio::test]
async fn a_gallery_whose_files_are_gone_answers_without_thumbnails() {
    let tmp = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = ["seven-a.png", "two.png"]
        .iter()
        .map(|name| {
            let path = tmp.path().join(name);
            std::fs::write(&path, digit(name)).unwrap();
            path
        })
        .collect();
    let (model, _) = fixture();
    let run = Run::open(model, tch::Device::Cpu).unwrap();
    let g = Gallery::files(&files, "digit", &run.model).unwrap();
    let index_path = tmp.path().join("files.tsi");
    save_index(&run, &g, &index_path);
    for f in &files {
        std::fs::remove_file(f).unwrap();
    }
    let app = app(&ServeConfig {
        index: Some(index_path),
        ..config(false, Limits::default())
    })
    .unwrap();
    let seven = digit("seven-a.png");
    let (s, found) = call(
        &app,
        post(
            "/v1/search",
            &[("image", "a.png", &seven)],
            &[("thumbnails", "true")],
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{found}");
    let hits = found["results"][0].as_array().unwrap();
    assert_eq!(hits.len(), 2, "k = 8 clamped to the 2 images");
    assert!(hits.iter().all(|h| h.get("thumbnail").is_none()), "{found}");
}

#[tokio::test]
async fn concurrent_requests_are_all_answered_each_with_its_own_result() {
    let app = service(false);
    let (a, b, two) = (digit("seven-a.png"), digit("seven-b.png"), digit("two.png"));
    let (_, alone_same) = compare(&app, &a, &b).await;
    let (_, alone_other) = compare(&app, &a, &two).await;
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let app = app.clone();
            let (a, other) = (a.clone(), if i % 2 == 0 { b.clone() } else { two.clone() });
            tokio::spawn(async move { (i, compare(&app, &a, &other).await) })
        })
        .collect();
    for t in tasks {
        let (i, (s, v)) = t.await.unwrap();
        assert_eq!(s, StatusCode::OK);
        let want = if i % 2 == 0 { &alone_same } else { &alone_other };
        assert!(
            (v["similarity"].as_f64().unwrap() - want["similarity"].as_f64().unwrap()).abs() < 1e-5,
            "request {i} got another's answer"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Any endpoint, any mix of files (random bytes, real images, cut
    /// images), text fields and k: never a 5xx.
    #[test]
    fn no_request_gets_a_5xx(
        endpoint in prop::sample::select(vec!["/v1/compare", "/v1/embed", "/v1/search", "/v1/identify"]),
        files in prop::collection::vec((prop::sample::select(vec!["a", "b", "image", "images", ""]), 0usize..3, prop::collection::vec(any::<u8>(), 0..64), any::<u16>()), 0..4),
        k in prop::option::of(prop::sample::select(vec!["1", "0", "-1", "8", "100", "101", "x", "99999999999999999999"])),
    ) {
        let seven = digit("seven-a.png");
        let owned: Vec<(String, Vec<u8>)> = files.iter().map(|(field, kind, noise, cut)| {
            let bytes = match kind {
                0 => noise.clone(),
                1 => seven.clone(),
                _ => seven[..(*cut as usize % seven.len())].to_vec(),
            };
            (field.to_string(), bytes)
        }).collect();
        let parts: Vec<(&str, &str, &[u8])> = owned.iter().map(|(f, b)| (f.as_str(), "x.png", b.as_slice())).collect();
        let text: Vec<(&str, &str)> = k.iter().map(|k| ("k", *k)).collect();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let status = rt.block_on(async {
            let app = shared_app();
            app.oneshot(post(endpoint, &parts, &text)).await.unwrap().status()
        });
        prop_assert!(!status.is_server_error(), "{endpoint} answered {status}");
    }
}

/// One app with the index for the property run (its worker outlives runtimes).
fn shared_app() -> Router {
    static APP: OnceLock<Router> = OnceLock::new();
    APP.get_or_init(|| service(true)).clone()
}
