//! The server on a real loopback socket, as slow, careless and hostile
//! clients use it: stalled heads are cut off, an announced over-limit body
//! and a stalled body are refused at once, and every refusal, including
//! those hyper writes itself while parsing, carries the JSON error.

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use twinsim_serve::{app, serve_until, Limits};

use common::config;

/// Every answer here must come within this: far above the 1 s timeouts the
/// tests set, far below the minutes a missing limit would take.
const PROMPTLY: Duration = Duration::from_secs(5);

/// A server with `limits` on a free loopback port, until the test ends.
async fn listening(limits: Limits) -> SocketAddr {
    let app = app(&config(false, limits.clone())).expect("the app starts");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { serve_until(listener, app, &limits, std::future::pending()).await });
    addr
}

/// Limits with 1 s timeouts.
fn impatient() -> Limits {
    Limits {
        header_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(1),
        ..Limits::default()
    }
}

/// Sends `request` on a new connection; returns the status and JSON body
/// of the answer, read by its Content-Length.
async fn exchange(addr: SocketAddr, request: &[u8]) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let answer = tokio::time::timeout(PROMPTLY, read_answer(&mut stream))
        .await
        .expect("an answer within 5 s");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a whole head");
    let status = head[9..12].parse().unwrap();
    let json = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {answer:?}"));
    (status, json)
}

/// One answer: its head, then as many body bytes as it announces.
async fn read_answer(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|n| n.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= length {
                return text;
            }
        }
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before a whole answer: {text:?}");
        got.extend_from_slice(&buf[..n]);
    }
}

/// Asserts `answer` is `status` with a JSON error containing `needle`, and a hint.
fn refused((status, body): (u16, Value), want: u16, needle: &str) {
    assert_eq!(status, want, "{body}");
    let error = body["error"].as_str().expect("an error message");
    assert!(error.contains(needle), "{error:?} lacks {needle:?}");
    assert!(!body["hint"].as_str().unwrap_or("").is_empty(), "no hint: {body}");
}

/// Whether the server closes `stream` within [`PROMPTLY`], reading what it sends.
async fn closed_promptly(stream: &mut TcpStream) -> bool {
    let mut sink = Vec::new();
    // A reset counts as closed too: either way the server let go.
    tokio::time::timeout(PROMPTLY, stream.read_to_end(&mut sink))
        .await
        .is_ok()
}

#[tokio::test]
async fn a_client_that_stalls_in_its_head_or_sends_nothing_is_disconnected() {
    let addr = listening(impatient()).await;
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let mut idle = TcpStream::connect(addr).await.unwrap();
    assert!(
        closed_promptly(&mut half).await,
        "a half-sent head held the connection"
    );
    assert!(
        closed_promptly(&mut idle).await,
        "a silent client held the connection"
    );
}

#[tokio::test]
async fn an_announced_over_limit_body_is_refused_before_it_is_sent() {
    // The body timeout is long: the answer must not be waiting for it.
    let limits = Limits {
        max_body_bytes: 1000,
        body_timeout: Duration::from_secs(600),
        ..Limits::default()
    };
    let addr = listening(limits).await;
    let request = b"POST /v1/compare HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 1000000\r\n\r\n";
    refused(exchange(addr, request).await, 413, "over 1000 bytes");
}

#[tokio::test]
async fn a_body_that_stalls_gets_408() {
    let addr = listening(impatient()).await;
    let request = b"POST /v1/compare HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 500\r\n\r\n--b\r\n";
    refused(exchange(addr, request).await, 408, "did not arrive within 1 s");
}

#[tokio::test]
async fn refusals_of_the_router_carry_the_json_error() {
    let addr = listening(Limits::default()).await;
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    refused(
        exchange(addr, get("/v1/compare").as_bytes()).await,
        405,
        "does not take GET",
    );
    refused(
        exchange(addr, b"DELETE /v1/health HTTP/1.1\r\nHost: x\r\n\r\n").await,
        405,
        "does not take DELETE",
    );
    refused(
        exchange(addr, get("/v2/nothing").as_bytes()).await,
        404,
        "no such endpoint",
    );
    let long = format!("/v1/health?q={}", "a".repeat(9000));
    refused(
        exchange(addr, get(&long).as_bytes()).await,
        414,
        "over 8192 bytes",
    );
}

#[tokio::test]
async fn refusals_hyper_writes_while_parsing_carry_the_json_error() {
    let addr = listening(Limits::default()).await;
    let post = |headers: &str| format!("POST /v1/embed HTTP/1.1\r\nHost: x\r\n{headers}\r\n");
    for bad in [
        "Content-Length: ten\r\n",
        "Content-Length: 5\r\nContent-Length: 6\r\n",
        "Content-Length: 99999999999999999999999\r\n",
        "Transfer-Encoding: gzip, chunked, identity\r\n",
        "Bad Header: x\r\n",
    ] {
        refused(
            exchange(addr, post(bad).as_bytes()).await,
            400,
            "not valid HTTP/1.1",
        );
    }
    let big = format!("X-Big: {}\r\n", "a".repeat(40_000));
    refused(
        exchange(addr, post(&big).as_bytes()).await,
        431,
        "over 32768 bytes",
    );
    let many: String = (0..150).map(|i| format!("X-{i}: y\r\n")).collect();
    refused(
        exchange(addr, post(&many).as_bytes()).await,
        431,
        "over 100 headers",
    );
    // A head that fills hyper's 64 KiB read buffer unfinished: refused
    // before hyper's own 64 KiB URI limit could answer 414. Exactly the
    // buffer's size, so no unread byte makes the close a reset.
    let mut endless = b"GET /v1/health?q=".to_vec();
    endless.resize(64 << 10, b'a');
    refused(exchange(addr, &endless).await, 431, "over 32768 bytes");
}
