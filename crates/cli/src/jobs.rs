//! `glagol jobs`: a client for a running server's durable jobs — submit
//! files (streamed, never read whole into memory), list, read, fetch
//! results, cancel, and watch progress from the job's event stream.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;

#[derive(clap::Args)]
pub struct Server {
    /// The server's base URL.
    #[arg(
        long,
        global = true,
        env = "GLAGOL_SERVER",
        default_value = "http://127.0.0.1:8765"
    )]
    server: String,
    /// API key, when the server requires one.
    #[arg(long, global = true, env = "GLAGOL_API_KEY")]
    api_key: Option<String>,
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    server: Server,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Upload files as jobs; prints each job's id (or, with --wait, its transcript).
    Submit(SubmitArgs),
    /// List jobs, newest first.
    List {
        /// queued, running, done, failed or cancelled.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, short)]
        model: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Jobs older than this id (the last one of the previous page).
        #[arg(long)]
        after: Option<String>,
    },
    /// Print a job as JSON.
    Get { id: String },
    /// Print a finished job's transcript.
    Result {
        id: String,
        /// txt, json, verbose_json, srt or vtt.
        #[arg(long, short, default_value = "txt")]
        format: String,
    },
    /// Cancel a queued or running job (or, with --purge, delete a finished one).
    Cancel {
        id: String,
        #[arg(long)]
        purge: bool,
    },
    /// Show a job's progress until it ends.
    Watch { id: String },
}

#[derive(clap::Args)]
struct SubmitArgs {
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[arg(long, short)]
    model: Option<String>,
    #[arg(long, short)]
    language: Option<String>,
    /// Translate into English (Whisper).
    #[arg(long)]
    translate: bool,
    #[arg(long)]
    word_timestamps: bool,
    /// Recognise only the speech the VAD finds.
    #[arg(long)]
    vad: bool,
    #[arg(long)]
    prompt: Option<String>,
    /// Gets a signed POST when each job ends.
    #[arg(long)]
    webhook: Option<String>,
    /// A JSON object echoed on every read and webhook.
    #[arg(long)]
    metadata: Option<String>,
    /// -100…100; higher runs first.
    #[arg(long)]
    priority: Option<i64>,
    /// Makes the submission safe to repeat (one file only).
    #[arg(long)]
    idempotency_key: Option<String>,
    /// Wait for each job and print its transcript.
    #[arg(long)]
    wait: bool,
    /// The transcript's format with --wait: txt, json, verbose_json, srt or vtt.
    #[arg(long, short, default_value = "txt")]
    format: String,
}

struct Client {
    base: String,
    key: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    fn new(server: &Server) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .build()
            .into();
        Client {
            base: server.server.trim_end_matches('/').to_string(),
            key: server.api_key.clone(),
            agent,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn auth<B>(&self, req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.key {
            Some(k) => req.header("authorization", format!("Bearer {k}")),
            None => req,
        }
    }

    /// The body of a 2xx answer, else the server's error as an error.
    fn read(
        &self,
        sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> anyhow::Result<String> {
        let mut response = sent.with_context(|| format!("cannot reach {}", self.base))?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        if (200..300).contains(&status) {
            return Ok(text);
        }
        let error: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        match (
            error["error"]["code"].as_str(),
            error["error"]["message"].as_str(),
        ) {
            (Some(code), Some(message)) => bail!("the server answered {status} {code}: {message}"),
            _ => bail!("the server answered {status}: {}", text.trim()),
        }
    }

    fn get(&self, path: &str) -> anyhow::Result<String> {
        self.read(self.auth(self.agent.get(&self.url(path))).call())
    }

    fn json(&self, path: &str) -> anyhow::Result<Value> {
        Ok(serde_json::from_str(&self.get(path)?)?)
    }
}

/// A multipart body streamed from the file: fields, then the file's bytes.
fn multipart(path: &Path, fields: &[(&str, String)]) -> anyhow::Result<(String, u64, impl Read)> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let boundary = format!("glagol-{}-{nanos:x}", std::process::id());
    let mut head = String::new();
    for (name, value) in fields {
        head += &format!(
            "--{boundary}\r\ncontent-disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        );
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().replace(['"', '\r', '\n'], "_"))
        .unwrap_or_else(|| "audio".into());
    head += &format!(
        "--{boundary}\r\ncontent-disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
         content-type: application/octet-stream\r\n\r\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    let file = File::open(path).with_context(|| format!("{}", path.display()))?;
    let size = file.metadata()?.len();
    let length = head.len() as u64 + size + tail.len() as u64;
    let body = std::io::Cursor::new(head.into_bytes())
        .chain(file)
        .chain(std::io::Cursor::new(tail.into_bytes()));
    Ok((
        format!("multipart/form-data; boundary={boundary}"),
        length,
        body,
    ))
}

fn submit(client: &Client, args: &SubmitArgs) -> anyhow::Result<ExitCode> {
    if args.idempotency_key.is_some() && args.files.len() > 1 {
        bail!("--idempotency-key names one submission: give one file");
    }
    let mut fields = Vec::new();
    let mut add = |name, value: Option<String>| {
        if let Some(v) = value {
            fields.push((name, v));
        }
    };
    add("model", args.model.clone());
    add("language", args.language.clone());
    add("task", args.translate.then(|| "translate".into()));
    add(
        "word_timestamps",
        args.word_timestamps.then(|| "true".into()),
    );
    add("vad", args.vad.then(|| "true".into()));
    add("prompt", args.prompt.clone());
    add("webhook_url", args.webhook.clone());
    add("metadata", args.metadata.clone());
    add("priority", args.priority.map(|p| p.to_string()));
    let mut ids = Vec::new();
    for path in &args.files {
        let (content_type, length, mut body) = multipart(path, &fields)?;
        let mut req = client
            .auth(client.agent.post(&client.url("/v1/jobs")))
            .header("content-type", content_type)
            .header("content-length", length.to_string());
        if let Some(key) = &args.idempotency_key {
            req = req.header("idempotency-key", key);
        }
        let job: Value =
            serde_json::from_str(&client.read(req.send(ureq::SendBody::from_reader(&mut body)))?)?;
        let id = job["id"].as_str().unwrap_or_default().to_string();
        if !args.wait {
            println!("{id}");
        }
        ids.push(id);
    }
    if !args.wait {
        return Ok(ExitCode::SUCCESS);
    }
    let mut code = ExitCode::SUCCESS;
    for id in ids {
        let job = follow(client, &id, |_, _| {})?;
        if job["status"] == "done" {
            print!(
                "{}",
                client.get(&format!("/v1/jobs/{id}/result?format={}", args.format))?
            );
        } else {
            eprintln!("glagol: job {id} {}", ending(&job));
            code = ExitCode::from(crate::exit::RECOGNITION);
        }
    }
    Ok(code)
}

/// How a job that did not finish ended, in words.
fn ending(job: &Value) -> String {
    match job["error"]["code"].as_str() {
        Some(code) => format!(
            "{}: {code}: {}",
            job["status"].as_str().unwrap_or("?"),
            job["error"]["message"].as_str().unwrap_or("")
        ),
        None => job["status"].as_str().unwrap_or("?").to_string(),
    }
}

/// Reads the job's events until its terminal one (reconnecting after the
/// last event seen when the stream breaks); `on` sees every event.
fn follow(client: &Client, id: &str, mut on: impl FnMut(&str, &Value)) -> anyhow::Result<Value> {
    let mut last = String::new();
    let mut failures = 0;
    loop {
        let mut req = client.auth(
            client
                .agent
                .get(&client.url(&format!("/v1/jobs/{id}/events"))),
        );
        if !last.is_empty() {
            req = req.header("last-event-id", &last);
        }
        let response = match req.call() {
            Ok(r) if r.status().is_success() => r,
            other => {
                client.read(other)?;
                bail!("the event stream of job {id} could not be read");
            }
        };
        let reader = BufReader::new(response.into_body().into_reader());
        let (mut event, mut data) = (String::new(), String::new());
        for line in reader.lines() {
            let Ok(line) = line else { break };
            if let Some(v) = line.strip_prefix("event:") {
                event = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                data += v.strip_prefix(' ').unwrap_or(v);
            } else if let Some(v) = line.strip_prefix("id:") {
                last = v.trim().to_string();
            } else if line.is_empty() && !event.is_empty() {
                let value: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
                on(&event, &value);
                if matches!(event.as_str(), "done" | "failed" | "cancelled") {
                    return Ok(value);
                }
                event.clear();
                data.clear();
            }
        }
        failures += 1;
        if failures > 10 {
            bail!("the event stream of job {id} keeps breaking");
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn watch(client: &Client, id: &str) -> anyhow::Result<ExitCode> {
    let bar = indicatif::ProgressBar::new(1000);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {percent:>3}% {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let job = follow(client, id, |event, data| match event {
        "progress" => {
            bar.set_position((data["percent"].as_f64().unwrap_or(0.0) * 10.0) as u64);
            bar.set_message(format!(
                "{:.1} s of {:.1} s",
                data["seconds_processed"].as_f64().unwrap_or(0.0),
                data["duration"].as_f64().unwrap_or(0.0)
            ));
        }
        "started" => bar.set_message(format!("attempt {}", data["attempt"])),
        "queued" => bar.set_message("queued".to_string()),
        _ => {}
    })?;
    bar.finish_and_clear();
    if job["status"] == "done" {
        println!("{id} done");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{id} {}", ending(&job));
        Ok(ExitCode::from(crate::exit::RECOGNITION))
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.server);
    match args.command {
        Command::Submit(s) => submit(&client, &s),
        Command::List {
            status,
            model,
            limit,
            after,
        } => {
            let mut query = format!("?limit={limit}");
            for (k, v) in [("status", status), ("model", model), ("after", after)] {
                if let Some(v) = v {
                    query += &format!("&{k}={v}");
                }
            }
            let page = client.json(&format!("/v1/jobs{query}"))?;
            for job in page["data"].as_array().into_iter().flatten() {
                println!(
                    "{}  {:<9}  {:>5.1}%  {:<16}  {}",
                    job["id"].as_str().unwrap_or(""),
                    job["status"].as_str().unwrap_or(""),
                    job["progress"]["percent"].as_f64().unwrap_or(0.0),
                    job["model"].as_str().unwrap_or(""),
                    job["file"]["name"].as_str().unwrap_or(""),
                );
            }
            if page["has_more"] == true {
                eprintln!("more: --after {}", page["last_id"].as_str().unwrap_or(""));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Get { id } => {
            let job = client.json(&format!("/v1/jobs/{id}"))?;
            println!("{}", serde_json::to_string_pretty(&job)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Result { id, format } => {
            print!(
                "{}",
                client.get(&format!("/v1/jobs/{id}/result?format={format}"))?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Cancel { id, purge } => {
            let path = format!("/v1/jobs/{id}{}", if purge { "?purge=true" } else { "" });
            let text = client.read(client.auth(client.agent.delete(&client.url(&path))).call())?;
            let answer: Value = serde_json::from_str(&text)?;
            match (purge, answer["status"].as_str()) {
                (true, _) => println!("{id} deleted"),
                (false, Some("running")) => println!("{id} stops at its next segment"),
                (false, status) => println!("{id} {}", status.unwrap_or("?")),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Watch { id } => watch(&client, &id),
    }
}
