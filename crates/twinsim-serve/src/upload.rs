//! A multipart upload read within [`Limits`]: its image files (bytes, kept
//! in memory, their names used only in messages) and its text fields.

use std::collections::BTreeMap;

use axum::extract::Multipart;
use axum::http::StatusCode;

use crate::error::ApiError;
use crate::limits::{Limits, MAX_TEXT_BYTES};

/// One uploaded file: the form field it came in, a name for messages (the
/// client's file name, never used as a path) and its bytes.
#[derive(Debug)]
pub struct File {
    pub field: String,
    pub name: String,
    pub bytes: Vec<u8>,
}

/// Everything a request uploaded.
#[derive(Debug, Default)]
pub struct Upload {
    pub files: Vec<File>,
    pub text: BTreeMap<String, String>,
}

impl Upload {
    /// Reads every field of `form`, refusing the request as soon as it
    /// breaks a limit; a body over the size limit fails with 413 as it
    /// streams in (axum's body limit), Content-Length or not.
    pub async fn read(mut form: Multipart, limits: &Limits) -> Result<Upload, ApiError> {
        let mut upload = Upload::default();
        let mut fields = 0;
        while let Some(field) = form.next_field().await.map_err(|e| multipart_error(e, limits))? {
            fields += 1;
            if fields > limits.max_fields {
                return Err(ApiError::bad_request(
                    format!("more than {} form fields", limits.max_fields),
                    "send only the fields the endpoint takes",
                ));
            }
            let name = field.name().unwrap_or("").to_string();
            match field.file_name().map(str::to_string) {
                Some(file_name) => {
                    if upload.files.len() == limits.max_files {
                        return Err(ApiError::bad_request(
                            format!("more than {} files", limits.max_files),
                            format!("send at most {} images per request", limits.max_files),
                        ));
                    }
                    let bytes = field.bytes().await.map_err(|e| multipart_error(e, limits))?;
                    upload.files.push(File {
                        field: name,
                        name: printable(&file_name),
                        bytes: bytes.to_vec(),
                    });
                }
                None => {
                    let bytes = field.bytes().await.map_err(|e| multipart_error(e, limits))?;
                    if bytes.len() > MAX_TEXT_BYTES {
                        return Err(ApiError::bad_request(
                            format!("field '{}' holds {} bytes of text", printable(&name), bytes.len()),
                            format!("text fields hold at most {MAX_TEXT_BYTES} bytes; send images as files"),
                        ));
                    }
                    upload
                        .text
                        .insert(name, String::from_utf8_lossy(&bytes).into_owned());
                }
            }
        }
        Ok(upload)
    }

    /// Removes and returns the first file sent as field `field`.
    pub fn take(&mut self, field: &str) -> Option<File> {
        let at = self.files.iter().position(|f| f.field == field)?;
        Some(self.files.remove(at))
    }
}

/// The refusal for a multipart stream that broke off or broke the rules.
fn multipart_error(e: axum::extract::multipart::MultipartError, limits: &Limits) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::body_too_large(limits.max_body_bytes);
    }
    ApiError::bad_request(
        format!("not a readable multipart/form-data body: {}", e.body_text()),
        "send the images as multipart/form-data file fields (curl -F a=@one.png -F b=@two.png)",
    )
}

/// A client-given name made safe to print: control characters dropped, cut
/// to 100 characters.
fn printable(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).take(100).collect()
}
