//! The job stores' protocol, in-process, for SQLite and PostgreSQL alike:
//! claims are exclusive, every write of an attempt is fenced, recovery
//! requeues or gives up, terminal states write their event and webhook
//! outbox row.

mod pg;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use glagol_server::jobs::model::{new_job_id, now_ms, JobParams, NewJob, Outcome};
use glagol_server::jobs::postgres::PgStore;
use glagol_server::jobs::sqlite::SqliteStore;
use glagol_server::jobs::store::{
    Cancelled, DeliveryResult, Inserted, JobStore, ListQuery, StoreError,
};
use glagol_server::jobs::JobStatus;

const LEASE: Duration = Duration::from_secs(30);

/// What keeps a store alive: its directory or its cluster.
type Keep = Box<dyn std::any::Any>;

/// Both stores, empty.
async fn stores() -> Vec<(Keep, Arc<dyn JobStore>)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(&dir.path().join("jobs.db")).unwrap();
    let cluster = pg::Postgres::start();
    let pg = PgStore::connect(&cluster.url).await.unwrap();
    vec![
        (Box::new(dir), Arc::new(sqlite)),
        (Box::new(cluster), Arc::new(pg)),
    ]
}

fn job(model: &str) -> NewJob {
    let id = new_job_id();
    NewJob {
        audio_path: format!("audio/{id}"),
        id,
        owner: String::new(),
        idempotency_key: None,
        model: model.into(),
        params: JobParams {
            task: "transcribe".into(),
            ..Default::default()
        },
        file_name: Some("a.wav".into()),
        audio_bytes: 10,
        audio_sha256: "00".into(),
        metadata: Some(serde_json::json!({"k": "v"})),
        webhook_url: Some("http://127.0.0.1:9/hook".into()),
        priority: 0,
        max_attempts: 2,
        created_at: now_ms(),
    }
}

async fn insert(store: &dyn JobStore, job: NewJob) -> String {
    match store.insert(job).await.unwrap() {
        Inserted::New(j) => j.id,
        Inserted::Existing(j) => panic!("{} existed", j.id),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_claimers_take_each_job_exactly_once() {
    for (_keep, store) in stores().await {
        for _ in 0..60 {
            insert(&*store, job("m")).await;
        }
        let mut racers = Vec::new();
        for node in 0..6 {
            let store = store.clone();
            racers.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                while let Some(j) = store
                    .claim(&format!("n{node}"), &["m".to_string()], LEASE)
                    .await
                    .unwrap()
                {
                    assert_eq!((j.status, j.attempt), (JobStatus::Running, 1));
                    mine.push(j.id);
                }
                mine
            }));
        }
        let mut seen = HashSet::new();
        let mut total = 0;
        for r in racers {
            for id in r.await.unwrap() {
                total += 1;
                assert!(seen.insert(id), "a job was claimed twice");
            }
        }
        assert_eq!((total, seen.len()), (60, 60));
        // Only models a claimer serves are claimed.
        insert(&*store, job("other")).await;
        assert!(store
            .claim("n", &["m".into()], LEASE)
            .await
            .unwrap()
            .is_none());
    }
}

#[tokio::test]
async fn claims_follow_priority_then_age() {
    for (_keep, store) in stores().await {
        let old = insert(&*store, job("m")).await;
        let mut urgent = job("m");
        urgent.priority = 5;
        let urgent = insert(&*store, urgent).await;
        let young = insert(&*store, job("m")).await;
        let mut order = Vec::new();
        for _ in 0..3 {
            order.push(
                store
                    .claim("n", &["m".into()], LEASE)
                    .await
                    .unwrap()
                    .unwrap()
                    .id,
            );
        }
        assert_eq!(order, vec![urgent, old, young]);
    }
}

#[tokio::test]
async fn a_stale_attempt_is_fenced_after_recovery() {
    for (_keep, store) in stores().await {
        let id = insert(&*store, job("m")).await;
        let first = store
            .claim("a", &["m".into()], LEASE)
            .await
            .unwrap()
            .unwrap();
        // The node died: everything running is requeued (single-node start).
        assert_eq!(store.recover(true).await.unwrap(), 1);
        let got = store.get(&id).await.unwrap().unwrap();
        assert_eq!((got.status, got.attempt), (JobStatus::Queued, 1));
        tokio::time::sleep(Duration::from_millis(1100)).await; // the retry delay
        let second = store
            .claim("b", &["m".into()], LEASE)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(second.attempt, 2);
        // The first attempt's late writes are all refused.
        let beat = store
            .heartbeat(&id, first.attempt, LEASE, None, vec![])
            .await;
        assert!(matches!(beat, Err(StoreError::Fenced)));
        let end = store
            .finish(
                &id,
                first.attempt,
                Outcome::Failed {
                    code: "x".into(),
                    message: "y".into(),
                },
            )
            .await;
        assert!(matches!(end, Err(StoreError::Fenced)));
        let done = store
            .finish(
                &id,
                2,
                Outcome::Done {
                    result_path: format!("results/{id}.json"),
                },
            )
            .await
            .unwrap();
        assert_eq!((done.status, done.attempt), (JobStatus::Done, 2));
        // One terminal event, one outbox row.
        let events = store.events(&id, 0).await.unwrap();
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["queued", "started", "queued", "started", "done"]);
        assert_eq!(done.deliveries.len(), 1);
        assert_eq!(done.deliveries[0].event, "job.done");
        let ran: Vec<(&str, Option<&str>)> = done
            .attempts
            .iter()
            .map(|a| (a.node.as_str(), a.outcome.as_deref()))
            .collect();
        assert_eq!(ran, [("a", Some("interrupted")), ("b", Some("done"))]);
        assert_eq!(done.deliveries[0].state, "pending");
    }
}

#[tokio::test]
async fn a_job_handed_back_runs_again_under_the_same_attempt() {
    for (_keep, store) in stores().await {
        let id = insert(&*store, job("m")).await;
        let first = store
            .claim("a", &["m".into()], LEASE)
            .await
            .unwrap()
            .unwrap();
        store
            .release(&id, first.attempt, Duration::ZERO, "stopping")
            .await
            .unwrap();
        // Released: the attempt's writes are fenced off.
        assert!(store.heartbeat(&id, 1, LEASE, None, vec![]).await.is_err());
        let again = store
            .claim("b", &["m".into()], LEASE)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again.attempt, 1);
        let done = store
            .finish(
                &id,
                1,
                Outcome::Done {
                    result_path: "r".into(),
                },
            )
            .await
            .unwrap();
        let ran: Vec<&str> = done.attempts.iter().map(|a| a.node.as_str()).collect();
        assert_eq!(ran, ["b"]);
        let kinds: Vec<String> = store
            .events(&id, 0)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, ["queued", "started", "queued", "started", "done"]);
    }
}

#[tokio::test]
async fn attempts_run_out_into_a_failure() {
    for (_keep, store) in stores().await {
        let id = insert(&*store, job("m")).await;
        for attempt in 1..=2 {
            tokio::time::sleep(Duration::from_millis(1100)).await;
            let j = store
                .claim("a", &["m".into()], LEASE)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(j.attempt, attempt);
            store.recover(true).await.unwrap();
        }
        let j = store.get(&id).await.unwrap().unwrap();
        assert_eq!(j.status, JobStatus::Failed);
        assert_eq!(j.error_code.as_deref(), Some("attempts_exhausted"));
        assert_eq!(j.deliveries.len(), 1);
    }
}

#[tokio::test]
async fn cancel_queued_at_once_running_on_request_finished_never() {
    for (_keep, store) in stores().await {
        let queued = insert(&*store, job("m")).await;
        let running = insert(&*store, job("m")).await;
        let r = store
            .claim("a", &["m".into()], LEASE)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.id, queued, "the older job is claimed first");
        // Now `queued` is the running one; cancel the other (queued) one.
        match store.cancel(&running).await.unwrap() {
            Cancelled::Now(j) => assert_eq!(j.status, JobStatus::Cancelled),
            other => panic!("{other:?}"),
        }
        match store.cancel(&queued).await.unwrap() {
            Cancelled::Requested(j) => assert!(j.cancel_requested),
            other => panic!("{other:?}"),
        }
        let beat = store
            .heartbeat(&queued, 1, LEASE, None, vec![])
            .await
            .unwrap();
        assert!(beat.cancel_requested);
        store.finish(&queued, 1, Outcome::Cancelled).await.unwrap();
        assert!(matches!(
            store.cancel(&queued).await,
            Err(StoreError::Conflict(JobStatus::Cancelled))
        ));
        let files = store.purge(&queued).await.unwrap();
        assert_eq!(files, vec![format!("audio/{queued}")]);
        assert!(store.get(&queued).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn idempotency_keys_are_per_owner() {
    for (_keep, store) in stores().await {
        let mut a = job("m");
        a.idempotency_key = Some("k".into());
        let first = insert(&*store, a.clone()).await;
        a.id = new_job_id();
        match store.insert(a.clone()).await.unwrap() {
            Inserted::Existing(j) => assert_eq!(j.id, first),
            Inserted::New(j) => panic!("a second job {}", j.id),
        }
        a.id = new_job_id();
        a.owner = "someone else".into();
        insert(&*store, a).await;
    }
}

#[tokio::test]
async fn listing_pages_newest_first() {
    for (_keep, store) in stores().await {
        let mut ids = Vec::new();
        for _ in 0..5 {
            ids.push(insert(&*store, job("m")).await);
        }
        ids.reverse();
        let page = |before: Option<String>| {
            let s = store.clone();
            async move {
                s.list(&ListQuery {
                    before,
                    limit: 2,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_iter()
                .map(|j| j.id)
                .collect::<Vec<_>>()
            }
        };
        let p1 = page(None).await;
        let p2 = page(p1.last().cloned()).await;
        let p3 = page(p2.last().cloned()).await;
        assert_eq!([p1, p2, p3].concat(), ids);
    }
}

#[tokio::test]
async fn deliveries_retry_then_settle_and_410_disables_the_url() {
    for (_keep, store) in stores().await {
        let id = insert(&*store, job("m")).await;
        store.claim("a", &["m".into()], LEASE).await.unwrap();
        store
            .finish(
                &id,
                1,
                Outcome::Done {
                    result_path: "r".into(),
                },
            )
            .await
            .unwrap();
        let due = store.claim_deliveries("a", LEASE, 10).await.unwrap();
        assert_eq!(due.len(), 1);
        // Leased: nobody else gets it meanwhile.
        assert!(store
            .claim_deliveries("b", LEASE, 10)
            .await
            .unwrap()
            .is_empty());
        let d = &due[0];
        store
            .delivery_result(
                &d.id,
                0,
                DeliveryResult::Retry {
                    status: Some(500),
                    error: "500".into(),
                    next_at: now_ms(),
                },
            )
            .await
            .unwrap();
        // A stale attempt count is refused.
        assert!(store
            .delivery_result(&d.id, 0, DeliveryResult::Delivered { status: 200 })
            .await
            .is_err());
        let again = store.claim_deliveries("a", LEASE, 10).await.unwrap();
        assert_eq!((again.len(), again[0].attempts), (1, 1));
        store
            .delivery_result(&d.id, 1, DeliveryResult::Disabled { status: 410 })
            .await
            .unwrap();
        assert!(store.is_disabled("http://127.0.0.1:9/hook").await.unwrap());
        let j = store.get(&id).await.unwrap().unwrap();
        assert_eq!(
            (j.deliveries[0].state.as_str(), j.deliveries[0].attempts),
            ("disabled", 2)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_of_four_workers_claim_each_job_once_on_postgres() {
    let cluster = pg::Postgres::start();
    let first = PgStore::connect(&cluster.url).await.unwrap();
    for _ in 0..200 {
        insert(&first, job("m")).await;
    }
    let nodes = [
        Arc::new(first),
        Arc::new(PgStore::connect(&cluster.url).await.unwrap()),
        Arc::new(PgStore::connect(&cluster.url).await.unwrap()),
    ];
    let started = std::time::Instant::now();
    let mut racers = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for w in 0..4 {
            let store = node.clone();
            racers.push(tokio::spawn(async move {
                let name = format!("node{n}-worker{w}");
                let mut mine = Vec::new();
                while let Some(j) = store.claim(&name, &["m".to_string()], LEASE).await.unwrap() {
                    store
                        .finish(
                            &j.id,
                            j.attempt,
                            Outcome::Done {
                                result_path: "r".into(),
                            },
                        )
                        .await
                        .unwrap();
                    mine.push(j.id);
                }
                mine
            }));
        }
    }
    let mut seen = HashSet::new();
    for r in racers {
        for id in r.await.unwrap() {
            assert!(seen.insert(id), "a job ran twice");
        }
    }
    let elapsed = started.elapsed();
    assert_eq!(seen.len(), 200);
    println!(
        "claim+finish: 200 jobs by 3 nodes x 4 workers in {:.2} s = {:.0} jobs/s",
        elapsed.as_secs_f64(),
        200.0 / elapsed.as_secs_f64()
    );
    let done = nodes[0]
        .list(&ListQuery {
            status: Some(JobStatus::Done),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(done.len(), 200);
    assert!(done.iter().all(|j| j.attempts.len() == 1 && j.attempt == 1));
}
