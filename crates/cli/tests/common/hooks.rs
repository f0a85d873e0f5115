//! A webhook receiver on a loopback port: answers each request by a
//! script (a status, or hanging past the sender's timeout), then 200; keeps
//! every request it got; verifies signatures with the official
//! `standardwebhooks` library. Plain HTTP, or HTTPS behind a private CA.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A fixed test secret (whsec_ + base64 of 24 bytes).
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[derive(Debug, Clone, Copy)]
pub enum Reply {
    Status(u16),
    /// Say nothing for this long, then close.
    Hang(Duration),
}

#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// What the receiver answered (0: hung up).
    pub answered: u16,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// Checks the signature the way a receiver would.
    pub fn verify(&self, secret: &str) -> bool {
        let mut headers = http::HeaderMap::new();
        for (k, v) in &self.headers {
            headers.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        standardwebhooks::Webhook::new(secret)
            .unwrap()
            .verify(&self.body, &headers)
            .is_ok()
    }
}

pub struct Receiver {
    pub url: String,
    got: Arc<Mutex<Vec<Received>>>,
}

type Script = Mutex<std::vec::IntoIter<Reply>>;

/// Reads one request, records it with the answer the script gives, answers.
fn serve_one(stream: impl Read + Write, script: &Script, got: &Mutex<Vec<Received>>) {
    let mut reader = BufReader::new(stream);
    let mut headers = HashMap::new();
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.trim().split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    let _ = reader.read_exact(&mut body);
    let reply = script.lock().unwrap().next().unwrap_or(Reply::Status(200));
    let answered = match reply {
        Reply::Status(code) => code,
        Reply::Hang(_) => 0,
    };
    got.lock().unwrap().push(Received {
        headers,
        body,
        answered,
    });
    match reply {
        Reply::Status(code) => {
            let stream = reader.get_mut();
            let _ = write!(
                stream,
                "HTTP/1.1 {code} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            let _ = stream.flush();
        }
        Reply::Hang(d) => std::thread::sleep(d),
    }
}

/// A CA of the test's own and a server certificate for 127.0.0.1 it
/// signed: (the CA's PEM, the receiver's TLS settings).
pub fn private_ca() -> (String, Arc<rustls::ServerConfig>) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // A name of its own: two test CAs must not look like one.
    static MADE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    ca.distinguished_name
        .push(DnType::CommonName, format!("glagol test CA {n}"));
    let ca_key = KeyPair::generate().unwrap();
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der().clone()], key)
    .unwrap();
    (ca_pem, Arc::new(config))
}

impl Receiver {
    pub fn start(script: Vec<Reply>) -> Receiver {
        Self::listen(script, None)
    }

    /// A receiver behind HTTPS with `tls`'s certificate (see [`private_ca`]).
    pub fn start_tls(script: Vec<Reply>, tls: Arc<rustls::ServerConfig>) -> Receiver {
        Self::listen(script, Some(tls))
    }

    fn listen(script: Vec<Reply>, tls: Option<Arc<rustls::ServerConfig>>) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}/hook", listener.local_addr().unwrap());
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let mine = got.clone();
        let script = Arc::new(Mutex::new(script.into_iter()));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (script, got, tls) = (script.clone(), mine.clone(), tls.clone());
                // One thread per request: a hung answer does not hold up the next one.
                std::thread::spawn(move || match tls {
                    None => serve_one(stream, &script, &got),
                    Some(tls) => {
                        let conn = rustls::ServerConnection::new(tls).unwrap();
                        let mut stream = rustls::StreamOwned::new(conn, stream);
                        serve_one(&mut stream, &script, &got);
                        stream.conn.send_close_notify();
                        let _ = stream.flush();
                    }
                });
            }
        });
        Receiver { url, got }
    }

    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until `done` holds for what was received.
    pub fn wait_for(&self, limit: Duration, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let start = Instant::now();
        loop {
            let got = self.received();
            if done(&got) {
                return got;
            }
            assert!(
                start.elapsed() < limit,
                "webhooks not received in {limit:?}; got {got:#?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
