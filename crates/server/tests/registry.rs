//! Model lifecycle: leases against the idle reaper, load waiters woken by
//! the load, one load per model at a time, failed loads backing off.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use glagol_core::engine::testing::FakeEngine;
use glagol_core::engine::{Engine, EngineConfig, EngineError};
use glagol_server::models::{LoadEngine, Registry, State};
use glagol_server::scheduler::SchedulerConfig;

fn registry(load: LoadEngine) -> (tempfile::TempDir, Arc<Registry>) {
    let (dir, store) = common::store();
    let scheduling = SchedulerConfig {
        workers: 1,
        queue_depth: 4,
        max_batch: 1,
        max_wait: Duration::from_millis(5),
    };
    (
        dir,
        Registry::new(store, EngineConfig::default(), scheduling, load),
    )
}

fn state(r: &Registry) -> State {
    r.get("fake").unwrap().1.state
}

async fn wait_for(r: &Registry, want: State) {
    for _ in 0..500 {
        if state(r) == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never reached {want:?}; now {:?}", state(r));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leased_model_survives_the_idle_ttl_and_unloads_after_the_lease_ends() {
    let (_dir, r) = registry(common::loader(&FakeEngine::new("fake")));
    let lease = r
        .acquire("fake", Some(Duration::from_secs(30)))
        .await
        .unwrap();
    let ttl = Duration::from_secs(1);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let reaper = r.clone();
    tokio::task::spawn_blocking(move || reaper.reap_idle(ttl))
        .await
        .unwrap();
    assert_eq!(state(&r), State::Ready, "unloaded while leased");
    drop(lease);
    let reaper = r.clone();
    tokio::task::spawn_blocking(move || reaper.reap_idle(ttl))
        .await
        .unwrap();
    assert_eq!(state(&r), State::Ready, "the release counts as a use");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let reaper = r.clone();
    tokio::task::spawn_blocking(move || reaper.reap_idle(ttl))
        .await
        .unwrap();
    assert_eq!(state(&r), State::Unloaded);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_load_waiter_wakes_on_the_load_event() {
    let (release, gate) = mpsc::channel::<()>();
    let gate = Mutex::new(gate);
    let fake = FakeEngine::new("fake");
    let load: LoadEngine = Arc::new(move |_, _| {
        gate.lock().unwrap().recv().ok();
        Ok(Box::new(fake.clone()) as Box<dyn Engine>)
    });
    let (_dir, r) = registry(load);
    let waiter = {
        let r = r.clone();
        tokio::spawn(async move {
            r.acquire("fake", Some(Duration::from_secs(60)))
                .await
                .map(|_| ())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "woke before the model loaded");
    assert_eq!(state(&r), State::Loading);
    // Without `wait`, a request is told to come back.
    let err = r.acquire("fake", None).await.err().unwrap();
    assert_eq!(err.code, "model_not_ready");
    assert!(err.retry_after.is_some());
    release.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the waiter was not woken by the load")
        .unwrap()
        .unwrap();
    assert_eq!(state(&r), State::Ready);
}

#[tokio::test(flavor = "multi_thread")]
async fn load_unload_churn_runs_one_load_per_model_at_a_time() {
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let loads = Arc::new(AtomicUsize::new(0));
    let fake = FakeEngine::new("fake");
    let load: LoadEngine = {
        let (running, most, loads) = (running.clone(), most.clone(), loads.clone());
        Arc::new(move |_, _| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            loads.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(30));
            running.fetch_sub(1, Ordering::SeqCst);
            Ok(Box::new(fake.clone()) as Box<dyn Engine>)
        })
    };
    let (_dir, r) = registry(load);
    for i in 0..50 {
        if i % 2 == 0 {
            r.load("fake").unwrap();
        } else {
            let r = r.clone();
            tokio::task::spawn_blocking(move || r.unload("fake").unwrap())
                .await
                .unwrap();
        }
    }
    r.load("fake").unwrap();
    wait_for(&r, State::Ready).await;
    assert_eq!(
        most.load(Ordering::SeqCst),
        1,
        "loads of one model overlapped"
    );
    assert!(loads.load(Ordering::SeqCst) <= 26);
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_all_returns_only_after_a_running_load_has_ended() {
    let ended = Arc::new(AtomicUsize::new(0));
    let fake = FakeEngine::new("fake");
    let load: LoadEngine = {
        let ended = ended.clone();
        Arc::new(move |_, _| {
            std::thread::sleep(Duration::from_millis(400));
            ended.fetch_add(1, Ordering::SeqCst);
            Ok(Box::new(fake.clone()) as Box<dyn Engine>)
        })
    };
    let (_dir, r) = registry(load);
    r.load("fake").unwrap();
    // The load thread is inside the engine's constructor now.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopping = r.clone();
    tokio::task::spawn_blocking(move || stopping.stop_all())
        .await
        .unwrap();
    assert_eq!(
        ended.load(Ordering::SeqCst),
        1,
        "stop_all left a load running"
    );
    // The cancelled load does not come back as a ready model.
    assert_eq!(state(&r), State::Unloaded);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_load_answers_model_failed_with_the_reason_and_backs_off() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let load: LoadEngine = {
        let attempts = attempts.clone();
        Arc::new(move |m, _| {
            attempts.fetch_add(1, Ordering::SeqCst);
            Err(EngineError::Load {
                path: m.path.display().to_string(),
                message: "the file is not a model".into(),
            })
        })
    };
    let (_dir, r) = registry(load);
    let err = r
        .acquire("fake", Some(Duration::from_secs(10)))
        .await
        .err()
        .unwrap();
    // The waiter is woken by the failure and sees the reason.
    assert_eq!(err.code, "model_failed", "{err:?}");
    assert!(
        err.message.contains("the file is not a model"),
        "{}",
        err.message
    );
    assert!(err.retry_after.unwrap() > Duration::from_secs(5));
    for _ in 0..5 {
        let err = r.acquire("fake", None).await.err().unwrap();
        assert_eq!(err.code, "model_failed");
    }
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        1,
        "reloads did not back off"
    );
    // An explicit load retries at once.
    r.load("fake").unwrap();
    for _ in 0..500 {
        if attempts.load(Ordering::SeqCst) == 2 && state(&r) == State::Failed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_models_are_not_found() {
    let (_dir, r) = registry(common::loader(&FakeEngine::new("fake")));
    let err = r.acquire(&"x".repeat(5000), None).await.err().unwrap();
    assert_eq!(err.code, "model_not_found");
    assert!(
        err.message.len() < 300,
        "the name is echoed whole: {}",
        err.message.len()
    );
}
