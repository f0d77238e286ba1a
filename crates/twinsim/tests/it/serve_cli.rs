//! `twinsim serve` as a user runs it: a real server on loopback, its web
//! page driven in real headless Chromium over WebDriver (Debian's chromium
//! and chromium-driver, which `./dev test` installs), and a clean stop on
//! SIGTERM.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{run, train_sample_model, twinsim};
use serde_json::{json, Value};

/// A model trained on the sample and an index of 20 test images per class.
fn fixture() -> &'static (PathBuf, PathBuf) {
    static MADE: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    MADE.get_or_init(|| {
        let model = train_sample_model(
            "serve-cli",
            &["--arch", "cnn", "--per-class", "200", "--epochs", "1"],
        );
        let index = model.with_file_name("gallery.tsi");
        let (ok, _, err) = run(twinsim(model.parent().unwrap())
            .args(["index", "build", "--model"])
            .arg(&model)
            .args(["--dataset", "mnist-sample:test", "--per-class", "20", "-o"])
            .arg(&index));
        assert!(ok, "{err}");
        (model, index)
    })
}

/// A running `twinsim serve` on a free port, stopped when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start() -> Server {
        let (model, index) = fixture();
        let mut child = twinsim(model.parent().unwrap())
            .args(["serve", "--port", "0", "--model"])
            .arg(model)
            .arg("--index")
            .arg(index)
            .stdout(Stdio::piped())
            .spawn()
            .expect("twinsim serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("serving on http://")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .parse()
            .unwrap();
        Server { child, addr }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 exchange on a new connection: (status, body). The body is
/// read by its Content-Length (or chunks): chromedriver keeps connections
/// open whatever the request asks.
fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{payload}",
        payload.len()
    );
    exchange(addr, request.as_bytes())
}

/// Writes `request`, as is, on a new connection; reads the answer as
/// [`http`] does.
fn exchange(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    stream.write_all(request).unwrap();
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (mut length, mut chunked) = (None, false);
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end().to_ascii_lowercase();
        if line.is_empty() {
            break;
        }
        if let Some(n) = line.strip_prefix("content-length:") {
            length = n.trim().parse::<usize>().ok();
        }
        chunked |= line == "transfer-encoding: chunked";
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).unwrap();
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk).unwrap();
            if n == 0 {
                break;
            }
            body.extend(&chunk[..n]);
        }
    } else if let Some(n) = length {
        body.resize(n, 0);
        reader.read_exact(&mut body).unwrap();
    } else {
        reader.read_to_end(&mut body).unwrap();
    }
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn malformed_requests_get_the_json_error_from_the_real_server() {
    let server = Server::start();
    for (request, status) in [
        (
            "POST /v1/embed HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n",
            400,
        ),
        (
            "POST /v1/embed HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            400,
        ),
        (
            "PUT /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            405,
        ),
        (
            "POST /v1/embed HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n",
            413,
        ),
    ] {
        let (got, body) = exchange(server.addr, request.as_bytes());
        let json: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{got}: not JSON: {body:?}"));
        assert_eq!(got, status, "{json}");
        assert!(json["error"].is_string() && json["hint"].is_string(), "{json}");
    }
}

#[test]
fn zero_limits_are_refused_with_the_allowed_range() {
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR"));
    for (flag, most) in [
        ("--max-k", "100000"),
        ("--max-body-bytes", "4294967296"),
        ("--max-files", "10000"),
        ("--max-pixels", "4294967296"),
    ] {
        let (ok, _, err) = run(twinsim(scratch).args(["serve", "--model", "nowhere", flag, "0"]));
        assert!(!ok, "{flag} 0 was accepted");
        assert!(err.contains(flag) && err.contains(most), "{flag}: {err}");
    }
}

#[test]
fn the_server_answers_and_stops_cleanly_on_sigterm() {
    let mut server = Server::start();
    let (status, body) = http(server.addr, "GET", "/v1/health", None);
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    let (status, body) = http(server.addr, "GET", "/v1/model", None);
    assert_eq!(status, 200);
    let model: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(model["index"]["images"], 200);
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) };
    let stopped = Instant::now();
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "exit after SIGTERM: {status}");
            break;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(20),
            "still serving 20 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A chromedriver on a free port, stopped when dropped.
struct Driver {
    child: Child,
    addr: SocketAddr,
}

impl Driver {
    fn start() -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (./dev test installs Debian's chromium-driver)");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let started = Instant::now();
        while TcpStream::connect(addr).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver never listened"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver { child, addr }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, text) = http(self.addr, method, path, body.as_ref());
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert_eq!(status, 200, "WebDriver {method} {path}: {text}");
        v["value"].clone()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A WebDriver session of headless Chromium, closed when dropped.
struct Browser<'a> {
    driver: &'a Driver,
    session: String,
}

impl<'a> Browser<'a> {
    fn open(driver: &'a Driver) -> Browser<'a> {
        let profile = tempfile::tempdir().unwrap().keep();
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1000,1100",
        ];
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": args } } } });
        let session = driver.call("POST", "/session", Some(caps))["sessionId"]
            .as_str()
            .unwrap()
            .to_string();
        Browser { driver, session }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.driver
            .call(method, &format!("/session/{}{path}", self.session), body)
    }

    /// The element matching `css`, waiting up to 60 s for it to appear.
    fn find(&self, css: &str) -> String {
        let started = Instant::now();
        loop {
            let (status, text) = http(
                self.driver.addr,
                "POST",
                &format!("/session/{}/element", self.session),
                Some(&json!({ "using": "css selector", "value": css })),
            );
            if status == 200 {
                let v: Value = serde_json::from_str(&text).unwrap();
                return v["value"]
                    .as_object()
                    .unwrap()
                    .values()
                    .next()
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_string();
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{css} never appeared"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn text(&self, css: &str) -> String {
        let id = self.find(css);
        self.call("GET", &format!("/element/{id}/text"), None)
            .as_str()
            .unwrap()
            .to_string()
    }

    fn upload(&self, input: &str, file: &Path) {
        let id = self.find(input);
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": file.to_str().unwrap() })),
        );
    }
}

impl Drop for Browser<'_> {
    fn drop(&mut self) {
        let _ = http(
            self.driver.addr,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        );
    }
}

fn digit(name: &str) -> PathBuf {
    std::fs::canonicalize(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/digits")
            .join(name),
    )
    .unwrap()
}

#[test]
fn the_page_in_headless_chromium_compares_two_uploads_and_shows_neighbours() {
    let server = Server::start();
    let driver = Driver::start();
    let browser = Browser::open(&driver);
    browser.call(
        "POST",
        "/url",
        Some(json!({ "url": format!("http://{}/", server.addr) })),
    );
    assert_eq!(browser.call("GET", "/title", None), "twinsim");

    browser.upload("#file-a", &digit("seven-a.png"));
    browser.upload("#file-b", &digit("seven-b.png"));
    let shown: f64 = browser.text("#score").parse().expect("the score is a number");
    assert!((0.0..=1.0).contains(&shown), "{shown}");
    let decision = browser.text("#decision");
    assert!(decision == "same" || decision == "different", "{decision}");
    // The page shows what the API answers for the same two files.
    let (ok, out, err) = run(twinsim(Path::new(env!("CARGO_TARGET_TMPDIR")))
        .args(["--json", "compare"])
        .arg(digit("seven-a.png"))
        .arg(digit("seven-b.png"))
        .arg("--model")
        .arg(&fixture().0));
    assert!(ok, "{err}");
    let cli: Value = serde_json::from_str(&out).unwrap();
    assert!(
        (cli["similarity"].as_f64().unwrap() - shown).abs() < 1e-4,
        "page {shown}, CLI {cli}"
    );
    assert_eq!(cli["same"].as_bool().unwrap(), decision == "same");

    browser.upload("#file-q", &digit("two.png"));
    browser.find("#neighbours .hit:nth-child(8) img");
    let first = browser.text("#neighbours .hit:first-child .label");
    assert!(!first.is_empty());

    // Kept for a person to look at: target/tmp/serve-page.png.
    let png = browser.call("GET", "/screenshot", None);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(png.as_str().unwrap())
        .unwrap();
    std::fs::write(
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("serve-page.png"),
        bytes,
    )
    .unwrap();
}
