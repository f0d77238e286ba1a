//! `GET /openapi.json`: the API described in OpenAPI 3.1, so clients and
//! tools (schemathesis, code generators) know every endpoint.

use serde_json::{json, Value};

/// The OpenAPI document.
pub fn document() -> Value {
    let error = json!({ "$ref": "#/components/schemas/Error" });
    let refusals = |codes: &[&str]| -> Value {
        let mut m = serde_json::Map::new();
        for c in codes {
            m.insert(
                (*c).into(),
                json!({ "description": reason(c), "content": { "application/json": { "schema": error } } }),
            );
        }
        Value::Object(m)
    };
    let upload = |props: Value, required: &[&str]| {
        json!({ "required": true, "content": { "multipart/form-data": { "schema": {
            "type": "object", "properties": props, "required": required } } } })
    };
    let file = json!({ "type": "string", "format": "binary" });
    let with = |ok: Value, codes: &[&str]| {
        let mut r = refusals(codes);
        r["200"] = json!({ "description": "OK", "content": { "application/json": { "schema": ok } } });
        r
    };
    let image_codes = ["400", "408", "413", "415", "422"];
    let index_codes = ["400", "408", "409", "413", "415", "422"];
    json!({
        "openapi": "3.1.0",
        "info": { "title": "twinsim", "version": env!("CARGO_PKG_VERSION"),
                  "description": "Compare, embed, search and identify images with a trained twinsim model." },
        "paths": {
            "/v1/health": { "get": { "summary": "Liveness", "responses": with(json!({ "type": "object" }), &[]) } },
            "/v1/model": { "get": { "summary": "The model: architecture, dataset, metrics, calibration, index",
                                    "responses": with(json!({ "type": "object" }), &[]) } },
            "/v1/compare": { "post": {
                "summary": "Similarity of two images in [0, 1], the same / different decision and the threshold",
                "requestBody": upload(json!({ "a": file, "b": file }), &["a", "b"]),
                "responses": with(json!({ "$ref": "#/components/schemas/Comparison" }), &image_codes) } },
            "/v1/embed": { "post": {
                "summary": "Embeddings of one or more images",
                "requestBody": upload(json!({ "images": { "type": "array", "items": file } }), &["images"]),
                "responses": with(json!({ "type": "object", "properties": {
                    "embeddings": { "type": "array", "items": { "type": "array", "items": { "type": "number" } } },
                    "dim": { "type": "integer" }, "metric": { "type": "string" } } }), &image_codes) } },
            "/v1/search": { "post": {
                "summary": "The k nearest gallery images of an image, with similarity, label and source",
                "requestBody": upload(json!({ "image": file,
                    "k": { "type": "integer", "minimum": 1, "default": 8 },
                    "thumbnails": { "type": "boolean", "default": false } }), &["image"]),
                "responses": with(json!({ "type": "object" }), &index_codes) } },
            "/v1/identify": { "post": {
                "summary": "The class of an image among those enrolled, or unknown",
                "requestBody": upload(json!({ "image": file }), &["image"]),
                "responses": with(json!({ "type": "object" }), &index_codes) } }
        },
        "components": { "schemas": {
            "Error": { "type": "object", "required": ["error", "hint"],
                       "properties": { "error": { "type": "string" }, "hint": { "type": "string" } } },
            "Comparison": { "type": "object", "required": ["similarity", "same", "threshold"], "properties": {
                "similarity": { "type": "number", "minimum": 0, "maximum": 1 },
                "same": { "type": "boolean" }, "threshold": { "type": "number" }, "distance": { "type": "number" } } }
        } }
    })
}

fn reason(code: &str) -> &'static str {
    match code {
        "400" => "a missing or malformed field, an empty file, too many files, or k out of range",
        "408" => "the body did not arrive within the server's body timeout",
        "409" => "no gallery index is loaded",
        "413" => "the body or an image's pixels are over the limit",
        "415" => "a file in a format the server does not take",
        "422" => "an image that cannot be decoded (truncated or damaged)",
        _ => "refused",
    }
}
