//! Several nodes sharing one PostgreSQL job store and one job directory:
//! jobs submitted to one node run on all, and a node killed mid-job loses
//! nothing — another node takes the job over when its lease runs out.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use common::hooks::{Receiver, SECRET};
use common::jobs::{accepted, events, long_audio, wait_status};
use common::pg;
use common::server::Server;
use serde_json::Value;

fn node(cluster: &pg::Postgres, dir: &std::path::Path, name: &str, extra: &[&str]) -> Server {
    let mut args = vec![
        "--job-store",
        &cluster.url,
        "--jobs-dir",
        dir.to_str().unwrap(),
        "--node-id",
        name,
        "--job-lease",
        "2",
        "--webhook-allow-private",
        "--webhook-secret",
        SECRET,
        "--webhook-timeout",
        "1",
    ];
    args.extend_from_slice(extra);
    Server::start(&args)
}

#[test]
fn a_node_killed_mid_job_loses_nothing() {
    let cluster = pg::Postgres::start();
    let shared = tempfile::tempdir().unwrap();
    let hook = Receiver::start(vec![]);
    let mut nodes: BTreeMap<String, Server> = ["n1", "n2", "n3"]
        .iter()
        .map(|n| (n.to_string(), node(&cluster, shared.path(), n, &[])))
        .collect();
    let audio = long_audio(30.0);
    let ids: Vec<String> = (0..6)
        .map(|_| {
            accepted(
                &nodes["n1"],
                &[("language", "ru"), ("webhook_url", &hook.url)],
                &audio,
            )
        })
        .collect();

    // Kill the node of a job that is part way through: running for a while
    // (recognising 30 s takes this machine well over 10 s). Progress is no
    // sign of that: chunks that finish together report at once, and the
    // last of them ends the job.
    let start = Instant::now();
    let mut running_since: BTreeMap<String, Instant> = BTreeMap::new();
    let (victim, moved) = 'found: loop {
        for id in &ids {
            let (_, job) = nodes["n1"].get(&format!("/v1/jobs/{id}"));
            if job["status"] != "running" {
                continue;
            }
            let since = *running_since.entry(id.clone()).or_insert_with(Instant::now);
            if since.elapsed() >= Duration::from_millis(1500) {
                let runner = job["attempts"][0]["node"].as_str().unwrap().to_string();
                break 'found (runner, id.clone());
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no job got going"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    nodes.remove(&victim).unwrap().crash();
    let alive = nodes.values().next().unwrap();

    for id in &ids {
        let job = wait_status(
            alive,
            id,
            &["done", "failed", "cancelled"],
            Duration::from_secs(300),
        );
        assert_eq!(job["status"], "done", "{job}");
        // One terminal state, whichever node is asked.
        let terminal = events(alive, id, None)
            .iter()
            .filter(|(_, k, _)| matches!(k.as_str(), "done" | "failed" | "cancelled"))
            .count();
        assert_eq!(terminal, 1, "{id}");
    }
    let (_, job) = alive.get(&format!("/v1/jobs/{moved}"));
    assert_eq!(job["attempt"], 2, "{job}");
    let attempts = job["attempts"].as_array().unwrap();
    assert_eq!(attempts[0]["node"], victim.as_str());
    assert_eq!(attempts[0]["outcome"], "interrupted");
    assert_ne!(attempts[1]["node"], victim.as_str());
    assert_eq!(attempts[1]["outcome"], "done");
    let ran_on: HashSet<String> = ids
        .iter()
        .map(|id| alive.get(&format!("/v1/jobs/{id}")).1)
        .map(|j: Value| j["attempts"].as_array().unwrap().last().unwrap()["node"].to_string())
        .collect();
    assert!(ran_on.len() >= 2, "jobs ran on {ran_on:?} only");
    let (_, health) = alive.get("/health");
    assert_eq!(health["jobs"]["queued"], 0, "{health}");

    // Every job's webhook arrives, signed, at least once.
    let got = hook.wait_for(Duration::from_secs(60), |got| {
        let jobs: HashSet<String> = got
            .iter()
            .map(|r| r.json()["data"]["id"].as_str().unwrap_or("").to_string())
            .collect();
        ids.iter().all(|id| jobs.contains(id))
    });
    for r in &got {
        assert!(r.verify(SECRET));
        assert_eq!(r.json()["type"], "job.done");
    }
}

#[test]
fn api_nodes_accept_and_worker_nodes_run() {
    let cluster = pg::Postgres::start();
    let shared = tempfile::tempdir().unwrap();
    let api = node(&cluster, shared.path(), "api-1", &["--role", "api"]);
    let worker = node(&cluster, shared.path(), "worker-1", &["--role", "worker"]);
    let id = accepted(&api, &[("language", "en")], &common::server::jfk());
    let big = vec![0u8; 24 << 20];
    let job = wait_status(&api, &id, &["done", "failed"], Duration::from_secs(120));
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(job["attempts"][0]["node"], "worker-1");
    // A worker refuses without storing the upload, and reads it to the end
    // first, so the sender gets the answer rather than a reset connection.
    let (code, _, refused) = common::jobs::submit(&worker, &[], &[], Some(("a.wav", &big)));
    assert_eq!(
        (code, refused["error"]["code"].as_str()),
        (503, Some("jobs_not_accepted"))
    );
    let (_, health) = worker.get("/health");
    assert_eq!(health["jobs"]["node"], "worker-1");
}
