//! A bounded, open-loop load test of a running `twinsim serve`, from a
//! second process on loopback: requests leave at a fixed rate for a fixed
//! time whatever the server's pace, and each latency counts from the moment
//! its request was due (so a stalled server cannot hide its queue).
//!
//!     cargo run --release -p twinsim-serve --example load -- \
//!         ADDR PATH RATE SECONDS FIELD=FILE [FIELD=FILE | FIELD:TEXT ...]
//!
//! e.g. `127.0.0.1:8000 /v1/compare 50 30 a=seven-a.png b=two.png`. Prints
//! one JSON object: requests sent, errors (no answer or not 2xx), p50, p99
//! and max latency in ms, and answers per second.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 5 {
        eprintln!("usage: load ADDR PATH RATE SECONDS FIELD=FILE|FIELD:TEXT ...");
        std::process::exit(2);
    }
    let addr: SocketAddr = args[0].parse().expect("ADDR is host:port");
    let path = args[1].clone();
    let rate: f64 = args[2].parse().expect("RATE is requests per second");
    let seconds: f64 = args[3].parse().expect("SECONDS is a number");
    let request = Arc::new(build_request(&addr, &path, &args[4..]));

    let total = (rate * seconds).round() as usize;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let results: Arc<Mutex<Vec<Option<f64>>>> = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let start = Instant::now();
    let mut threads = Vec::with_capacity(total);
    for i in 0..total {
        let due = start + interval * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let (request, results) = (request.clone(), results.clone());
        threads.push(std::thread::spawn(move || {
            let ok = send(&addr, &request);
            let latency = ok.then(|| due.elapsed().as_secs_f64() * 1e3);
            results.lock().unwrap().push(latency);
        }));
    }
    for t in threads {
        let _ = t.join();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let results = results.lock().unwrap();
    let mut ok: Vec<f64> = results.iter().flatten().copied().collect();
    ok.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        ok.get(((ok.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "{{\"path\": \"{path}\", \"rate\": {rate}, \"seconds\": {seconds}, \"requests\": {}, \"errors\": {}, \"p50_ms\": {:.2}, \"p99_ms\": {:.2}, \"max_ms\": {:.2}, \"answers_per_s\": {:.2}}}",
        results.len(),
        results.len() - ok.len(),
        pct(0.50),
        pct(0.99),
        ok.last().copied().unwrap_or(f64::NAN),
        ok.len() as f64 / elapsed
    );
}

/// A whole HTTP/1.1 POST of a multipart body made of `parts`: `FIELD=FILE`
/// (the file's bytes) or `FIELD:TEXT`.
fn build_request(addr: &SocketAddr, path: &str, parts: &[String]) -> Vec<u8> {
    let boundary = "twinsim-load-4f1c9a";
    let mut body = Vec::new();
    for part in parts {
        if let Some((field, file)) = part.split_once('=') {
            let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{file}: {e}"));
            body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{field}.png\"\r\n\r\n").as_bytes());
            body.extend(bytes);
        } else if let Some((field, text)) = part.split_once(':') {
            body.extend(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"\r\n\r\n{text}")
                    .as_bytes(),
            );
        } else {
            panic!("{part}: write FIELD=FILE or FIELD:TEXT");
        }
        body.extend(b"\r\n");
    }
    body.extend(format!("--{boundary}--\r\n").as_bytes());
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend(body);
    request
}

/// Sends `request` on a new connection; whether a 2xx answer came back
/// within 30 s.
fn send(addr: &SocketAddr, request: &[u8]) -> bool {
    let attempt = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect_timeout(addr, Duration::from_secs(30))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.write_all(request)?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer)?;
        Ok(answer.starts_with(b"HTTP/1.1 2"))
    };
    attempt().unwrap_or(false)
}
