//! The scheduler's ordering, batching and concurrency, with a fake engine.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use glagol_core::engine::testing::FakeEngine;
use glagol_core::engine::{Engine, TranscribeOptions};
use glagol_server::error::ServiceError;
use glagol_server::scheduler::{Class, Fresh, Scheduler, SchedulerConfig, WorkItem};
use std::sync::mpsc;

fn config(workers: usize, max_batch: usize) -> SchedulerConfig {
    SchedulerConfig {
        workers,
        queue_depth: 16,
        max_batch,
        max_wait: Duration::from_millis(50),
    }
}

type Outcome = (String, Result<String, String>);

/// An item named `name` with `seconds` of audio whose outcome goes to `tx`.
fn item(
    name: &str,
    seconds: f64,
    class: Class,
    stream: Option<u64>,
    tx: &mpsc::Sender<Outcome>,
) -> WorkItem {
    let (tx, name) = (tx.clone(), name.to_string());
    WorkItem {
        audio: vec![0.0; (seconds * 16_000.0) as usize],
        options: TranscribeOptions {
            cancel: Some(Arc::new(AtomicBool::new(false))),
            ..Default::default()
        },
        vad: None,
        class,
        stream,
        account: None,
        deadline: None,
        started: None,
        refresh: None,
        done: Box::new(move |r: Result<_, ServiceError>| {
            let _ = tx.send((name, r.map(|t| t.text).map_err(|e| e.code.to_string())));
        }),
    }
}

fn start(fake: &FakeEngine, config: SchedulerConfig) -> Arc<Scheduler> {
    let engine: Arc<dyn Engine> = Arc::new(fake.clone());
    Scheduler::start("fake", engine, config).unwrap()
}

/// Waits until the engine is busy, so later items queue.
fn wait_running(fake: &FakeEngine) {
    let until = Instant::now() + Duration::from_secs(5);
    while fake.running() == 0 {
        assert!(Instant::now() < until, "the engine never started");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn order(rx: &mpsc::Receiver<Outcome>, n: usize) -> Vec<Outcome> {
    (0..n)
        .map(|_| rx.recv_timeout(Duration::from_secs(30)).unwrap())
        .collect()
}

#[test]
fn an_interactive_request_queued_behind_background_work_runs_first() {
    let fake = FakeEngine::new("fake").cost_per_second(Duration::from_millis(100));
    let s = start(&fake, config(1, 1));
    let (tx, rx) = mpsc::channel();
    s.submit(item("job-1", 3.0, Class::Background, None, &tx))
        .unwrap();
    wait_running(&fake);
    s.submit(item("job-2", 1.0, Class::Background, None, &tx))
        .unwrap();
    s.submit(item("job-3", 1.0, Class::Background, None, &tx))
        .unwrap();
    s.submit(item("request", 5.0, Class::Interactive, None, &tx))
        .unwrap();
    let names: Vec<String> = order(&rx, 4)
        .into_iter()
        .map(|(n, r)| {
            r.unwrap();
            n
        })
        .collect();
    assert_eq!(names, ["job-1", "request", "job-2", "job-3"]);
}

#[test]
fn short_requests_overtake_long_ones_by_virtual_arrival() {
    let fake = FakeEngine::new("fake").cost_per_second(Duration::from_millis(20));
    let s = start(&fake, config(1, 1));
    let (tx, rx) = mpsc::channel();
    s.submit(item("running", 10.0, Class::Interactive, None, &tx))
        .unwrap();
    wait_running(&fake);
    for (name, seconds) in [("long", 60.0), ("medium", 20.0), ("short", 2.0)] {
        s.submit(item(name, seconds, Class::Interactive, None, &tx))
            .unwrap();
    }
    let names: Vec<String> = order(&rx, 4).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["running", "short", "medium", "long"]);
}

#[test]
fn a_stale_partial_is_dropped_when_newer_audio_of_its_stream_arrives() {
    let fake = FakeEngine::new("fake").cost_per_second(Duration::from_millis(100));
    let s = start(&fake, config(1, 1));
    let (tx, rx) = mpsc::channel();
    s.submit(item("busy", 2.0, Class::Interactive, None, &tx))
        .unwrap();
    wait_running(&fake);
    s.submit(item("partial-1", 1.0, Class::LivePartial, Some(7), &tx))
        .unwrap();
    s.submit(item("other-stream", 1.0, Class::LivePartial, Some(8), &tx))
        .unwrap();
    s.submit(item("partial-2", 1.5, Class::LivePartial, Some(7), &tx))
        .unwrap();
    // Superseded at once, while the engine is still busy.
    let (name, result) = rx.recv_timeout(Duration::from_secs(1)).unwrap();
    assert_eq!(
        (name.as_str(), result),
        ("partial-1", Err("partial_superseded".into()))
    );
    // A final drops the stream's queued partial too.
    s.submit(item("final", 2.0, Class::LiveFinal, Some(7), &tx))
        .unwrap();
    let (name, result) = rx.recv_timeout(Duration::from_secs(1)).unwrap();
    assert_eq!(
        (name.as_str(), result),
        ("partial-2", Err("partial_superseded".into()))
    );
    let rest: Vec<(String, bool)> = order(&rx, 3)
        .into_iter()
        .map(|(n, r)| (n, r.is_ok()))
        .collect();
    assert_eq!(
        rest,
        [
            ("busy".into(), true),
            ("final".into(), true),
            ("other-stream".into(), true)
        ]
    );
}

#[test]
fn a_stream_that_queued_many_finals_does_not_hold_another_streams_final_behind_them() {
    let fake = FakeEngine::new("fake").cost_per_second(Duration::from_millis(20));
    let s = start(&fake, config(1, 1));
    let (tx, rx) = mpsc::channel();
    s.submit(item("busy", 2.0, Class::Interactive, None, &tx))
        .unwrap();
    wait_running(&fake);
    // A fast sender's utterances, ended at once, then one of a paced stream.
    for i in 1..=6 {
        s.submit(item(
            &format!("flood-{i}"),
            4.0,
            Class::LiveFinal,
            Some(1),
            &tx,
        ))
        .unwrap();
    }
    s.submit(item("paced", 3.0, Class::LiveFinal, Some(2), &tx))
        .unwrap();
    let names: Vec<String> = order(&rx, 8).into_iter().map(|(n, _)| n).collect();
    // The paced stream's final waits for one of the flood's, not six; the
    // flood's stay in their order.
    assert_eq!(
        names,
        ["busy", "flood-1", "paced", "flood-2", "flood-3", "flood-4", "flood-5", "flood-6"]
    );
}

#[test]
fn a_key_that_queued_many_requests_does_not_hold_another_keys_behind_them() {
    let fake = FakeEngine::new("fake").cost_per_second(Duration::from_millis(20));
    let s = start(&fake, config(1, 1));
    let (tx, rx) = mpsc::channel();
    s.submit(item("busy", 2.0, Class::Interactive, None, &tx))
        .unwrap();
    wait_running(&fake);
    let of = |name: &str, account: &str| WorkItem {
        account: Some(account.to_string()),
        ..item(name, 4.0, Class::Interactive, None, &tx)
    };
    for i in 1..=5 {
        s.submit(of(&format!("flood-{i}"), "a")).unwrap();
    }
    s.submit(of("other", "b")).unwrap();
    let names: Vec<String> = order(&rx, 7).into_iter().map(|(n, _)| n).collect();
    // Key b's request waits for one of key a's, not five; a's stay in order.
    assert_eq!(
        names,
        ["busy", "flood-1", "other", "flood-2", "flood-3", "flood-4", "flood-5"]
    );
}

#[test]
fn an_utterance_first_partial_goes_before_partials_of_streams_already_shown() {
    let fake = FakeEngine::new("fake").cost_per_second(Duration::from_millis(100));
    let s = start(&fake, config(1, 1));
    let (tx, rx) = mpsc::channel();
    s.submit(item("busy", 2.0, Class::Interactive, None, &tx))
        .unwrap();
    wait_running(&fake);
    for (name, class, stream) in [
        ("later-1", Class::LivePartial, 1),
        ("later-2", Class::LivePartial, 2),
        ("first", Class::LiveFirstPartial, 3),
        ("final", Class::LiveFinal, 4),
    ] {
        s.submit(item(name, 1.0, class, Some(stream), &tx)).unwrap();
    }
    let names: Vec<String> = order(&rx, 5).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["busy", "final", "first", "later-1", "later-2"]);
}

/// A live stream whose newest audio is always `age` old.
struct Stream {
    age: Duration,
    audio: Vec<f32>,
}

impl Fresh for Stream {
    fn arrived(&self) -> Option<Instant> {
        Instant::now().checked_sub(self.age)
    }

    fn take(self: Box<Self>) -> Option<Vec<f32>> {
        Some(self.audio)
    }
}

#[test]
fn of_partials_that_waited_alike_the_freshest_audio_goes_first() {
    let fake = FakeEngine::new("fake").cost_per_second(Duration::from_millis(100));
    let s = start(&fake, config(1, 1));
    let (tx, rx) = mpsc::channel();
    let partial = |name: &str, stream: u64, age_ms: u64| {
        let mut it = item(name, 1.0, Class::LivePartial, Some(stream), &tx);
        it.refresh = Some(Box::new(Stream {
            age: Duration::from_millis(age_ms),
            audio: vec![0.0; 16_000],
        }));
        it
    };
    s.submit(item("busy", 10.0, Class::Interactive, None, &tx))
        .unwrap();
    wait_running(&fake);
    // Waited 0.6 s longer: more than any staleness weighs.
    s.submit(partial("patient", 1, 1000)).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    s.submit(partial("stale", 2, 90)).unwrap();
    s.submit(partial("fresh", 3, 0)).unwrap();
    let names: Vec<String> = order(&rx, 4).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["busy", "patient", "fresh", "stale"]);
}

#[test]
fn a_full_queue_answers_busy_and_cancelled_items_leave_it() {
    let fake = FakeEngine::new("fake").cost_per_second(Duration::from_millis(100));
    let s = start(
        &fake,
        SchedulerConfig {
            queue_depth: 2,
            ..config(1, 1)
        },
    );
    let (tx, rx) = mpsc::channel();
    s.submit(item("running", 2.0, Class::Interactive, None, &tx))
        .unwrap();
    wait_running(&fake);
    let gone = item("gone", 1.0, Class::Interactive, None, &tx);
    let flag = gone.options.cancel.clone().unwrap();
    s.submit(gone).unwrap();
    s.submit(item("waiting", 1.0, Class::Interactive, None, &tx))
        .unwrap();
    let refused = s.submit(item("refused", 1.0, Class::Interactive, None, &tx));
    assert_eq!(refused.unwrap_err().code, "busy");
    // Background work is bounded by its source, not the request queue.
    s.submit(item("job", 0.5, Class::Background, None, &tx))
        .unwrap();
    flag.store(true, Ordering::SeqCst);
    assert_eq!(s.queued(), 2);
    let mut outcomes = order(&rx, 4);
    outcomes.sort();
    assert_eq!(
        outcomes
            .iter()
            .map(|(n, r)| (n.as_str(), r.is_ok()))
            .collect::<Vec<_>>(),
        [
            ("gone", false),
            ("job", true),
            ("running", true),
            ("waiting", true)
        ]
    );
}

#[test]
fn waiting_items_are_gathered_into_one_batch_where_the_engine_gains() {
    let fake = FakeEngine::new("fake")
        .batching(true)
        .cost_per_second(Duration::from_millis(100));
    let s = start(&fake, config(1, 4));
    let (tx, rx) = mpsc::channel();
    s.submit(item("first", 2.0, Class::Interactive, None, &tx))
        .unwrap();
    wait_running(&fake);
    for i in 0..5 {
        s.submit(item(&format!("r{i}"), 0.5, Class::Interactive, None, &tx))
            .unwrap();
    }
    for (_, r) in order(&rx, 6) {
        r.unwrap();
    }
    assert_eq!(fake.batch_sizes(), [1, 4, 1]);
    // An engine that does not gain from batching gets one item per call.
    let plain = FakeEngine::new("plain").cost_per_second(Duration::from_millis(50));
    let s = start(&plain, config(1, 4));
    s.submit(item("first", 1.0, Class::Interactive, None, &tx))
        .unwrap();
    wait_running(&plain);
    for i in 0..3 {
        s.submit(item(&format!("p{i}"), 0.5, Class::Interactive, None, &tx))
            .unwrap();
    }
    order(&rx, 4);
    assert_eq!(plain.batch_sizes(), [1, 1, 1, 1]);
}

#[test]
fn a_batch_holds_one_kind_of_work_of_similar_lengths() {
    let fake = FakeEngine::new("fake")
        .batching(true)
        .cost_per_second(Duration::from_millis(100));
    let s = start(&fake, config(1, 8));
    let (tx, rx) = mpsc::channel();
    s.submit(item("first", 2.0, Class::Interactive, None, &tx))
        .unwrap();
    wait_running(&fake);
    let waiting = [
        ("partial-1", 1.0, Class::LivePartial, Some(1)),
        ("partial-2", 1.1, Class::LivePartial, Some(2)),
        ("final-3", 1.0, Class::LiveFinal, Some(3)),
        ("short", 0.5, Class::Interactive, None),
        ("long-1", 3.0, Class::Interactive, None),
        ("long-2", 2.9, Class::Interactive, None),
    ];
    for (name, seconds, class, stream) in waiting {
        s.submit(item(name, seconds, class, stream, &tx)).unwrap();
    }
    for (_, r) in order(&rx, 7) {
        r.unwrap();
    }
    // The final alone (partials would hold it up), the two partials
    // together, the short request alone (padded to 3 s it would cost six
    // times its length), the two long ones together.
    assert_eq!(fake.batch_sizes(), [1, 1, 2, 1, 2]);
}

#[test]
fn stopping_fails_waiting_items_and_refuses_new_ones() {
    let fake = FakeEngine::new("fake").cost_per_second(Duration::from_millis(100));
    let s = start(&fake, config(1, 1));
    let (tx, rx) = mpsc::channel();
    s.submit(item("running", 1.0, Class::Interactive, None, &tx))
        .unwrap();
    wait_running(&fake);
    s.submit(item("waiting", 1.0, Class::Interactive, None, &tx))
        .unwrap();
    s.stop();
    let mut outcomes = order(&rx, 2);
    outcomes.sort();
    assert_eq!(outcomes[0].0, "running");
    assert!(outcomes[0].1.is_ok());
    assert_eq!(
        outcomes[1],
        ("waiting".into(), Err("model_unloaded".into()))
    );
    let late = s.submit(item("late", 1.0, Class::Interactive, None, &tx));
    assert_eq!(late.unwrap_err().code, "model_unloaded");
}

#[test]
fn where_keys_share_a_model_one_key_leaves_a_quarter_of_the_places_to_the_others() {
    let fake = FakeEngine::new("fake");
    let config = SchedulerConfig {
        queue_depth: 7,
        ..config(1, 1)
    };
    let s = start(&fake, config);
    // 8 places: a key may hold 6 of them.
    let mut a: Vec<_> = (0..6).map(|_| s.admit(Some("a"), true).unwrap()).collect();
    let refused = s.admit(Some("a"), true).err().unwrap();
    assert_eq!(refused.code, "busy");
    assert!(
        refused.message.contains("this API key holds 6 of the 8"),
        "{}",
        refused.message
    );
    let b: Vec<_> = (0..2).map(|_| s.admit(Some("b"), true).unwrap()).collect();
    // Full now, for everyone.
    assert_eq!(s.admit(Some("c"), true).err().unwrap().code, "busy");
    drop(b);
    a.pop();
    a.push(s.admit(Some("a"), true).unwrap());
    drop(a);
    // A single tenant (or a server without keys) has every place.
    let all: Vec<_> = (0..8).map(|_| s.admit(Some("a"), false).unwrap()).collect();
    assert_eq!(all.len(), 8);
    assert!(s.admit(None, false).is_err());
}
