//! A small HTTP/1.1 file server for download tests: byte ranges, a mode
//! that drops the connection part-way, and a log of the Range headers seen.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
pub struct State {
    pub files: HashMap<String, Vec<u8>>,
    /// Requests whose body is cut after this many bytes (counts down).
    pub cut_after: Option<usize>,
    pub cuts_left: usize,
    /// Delay between 64 KiB chunks, to make concurrent pulls overlap.
    pub chunk_delay: Duration,
    pub ranges: Vec<Option<String>>,
}

pub struct Server {
    pub base: String,
    pub state: Arc<Mutex<State>>,
    pub requests: Arc<AtomicUsize>,
}

impl Server {
    pub fn start(files: HashMap<String, Vec<u8>>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            files,
            ..Default::default()
        }));
        let requests = Arc::new(AtomicUsize::new(0));
        let (s, r) = (state.clone(), requests.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (s, r) = (s.clone(), r.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &s, &r);
                });
            }
        });
        Server {
            base,
            state,
            requests,
        }
    }

    pub fn ranges(&self) -> Vec<Option<String>> {
        self.state.lock().unwrap().ranges.clone()
    }
}

fn serve(
    mut stream: TcpStream,
    state: &Mutex<State>,
    requests: &AtomicUsize,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .trim_start_matches('/')
        .to_string();
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_string());
            }
        }
    }
    requests.fetch_add(1, Ordering::SeqCst);
    let (body, cut, delay) = {
        let mut st = state.lock().unwrap();
        st.ranges.push(range.clone());
        let cut = if st.cuts_left > 0 {
            st.cuts_left -= 1;
            st.cut_after
        } else {
            None
        };
        (st.files.get(&path).cloned(), cut, st.chunk_delay)
    };
    let Some(body) = body else {
        stream.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
        return Ok(());
    };
    let start = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split('-').next())
        .and_then(|s| s.parse::<usize>().ok());
    let (status, from) = match start {
        Some(s) if s >= body.len() => {
            let h = format!("HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", body.len());
            stream.write_all(h.as_bytes())?;
            return Ok(());
        }
        Some(s) => (206, s),
        None => (200, 0),
    };
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n",
        if status == 200 { "OK" } else { "Partial Content" },
        body.len() - from
    );
    if status == 206 {
        head += &format!(
            "Content-Range: bytes {from}-{}/{}\r\n",
            body.len() - 1,
            body.len()
        );
    }
    head += "\r\n";
    stream.write_all(head.as_bytes())?;
    let payload = &body[from..];
    let limit = cut.unwrap_or(payload.len()).min(payload.len());
    for chunk in payload[..limit].chunks(64 * 1024) {
        stream.write_all(chunk)?;
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
    }
    stream.flush()?;
    // A cut: close without sending the rest of the declared length.
    Ok(())
}
