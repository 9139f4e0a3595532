//! Who runs beside whom: one lock that tests take alone or shared.
//!
//! Tests that load the CPU heavily (real ffmpeg, speech recognition, the
//! browser, the benchmark smoke run), measure latency, or run the server
//! in this process take it alone; every other test that starts processes
//! holds it shared: each [`TestApp`](super::TestApp) for its server's
//! lifetime, a test without one through [`shared`]. On a 2-core machine a
//! transcription or a PostgreSQL fsync storm next door would measure the
//! machine, not recorderd; and a server in this process reaps this
//! process's unowned zombie children, which would take other tests'
//! children's exit statuses from them.
//!
//! A test holds the lock once, however many apps it starts: the lock is
//! fair, so a second shared hold asked for while an exclusive one waits
//! would wait behind it, and the exclusive one behind the first: neither
//! would ever be granted. Each test body runs on its own thread, so the
//! test's hold is found through a thread-local.

use std::sync::{Arc, Weak};

use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

static TURN: RwLock<()> = RwLock::const_new(());

thread_local! {
    /// This test's hold, while anything keeps it.
    static HELD: std::cell::RefCell<Weak<Hold>> = const { std::cell::RefCell::new(Weak::new()) };
}

/// One of the two guards.
struct Hold {
    _alone: Option<RwLockWriteGuard<'static, ()>>,
    _shared: Option<RwLockReadGuard<'static, ()>>,
}

/// This test's hold on the lock; released when the last copy is dropped.
pub struct Turn(Arc<Hold>);

fn held() -> Option<Turn> {
    HELD.with(|held| held.borrow().upgrade()).map(Turn)
}

fn hold(hold: Hold) -> Turn {
    let hold = Arc::new(hold);
    HELD.with(|held| *held.borrow_mut() = Arc::downgrade(&hold));
    Turn(hold)
}

/// Runs the rest of the test with no other test's processes running. Take
/// it before anything else: a test that holds the lock shared cannot also
/// hold it alone.
pub async fn exclusive() -> Turn {
    assert_not_held();
    let guard = TURN.write().await;
    hold(Hold {
        _alone: Some(guard),
        _shared: None,
    })
}

/// [`exclusive`] for tests that are not async.
pub fn exclusive_blocking() -> Turn {
    assert_not_held();
    let guard = TURN.blocking_write();
    hold(Hold {
        _alone: Some(guard),
        _shared: None,
    })
}

/// This test's hold, shared unless it already holds the lock alone. For a
/// test that starts processes without a `TestApp` (which takes one itself).
pub async fn shared() -> Turn {
    match held() {
        Some(turn) => turn,
        None => {
            let guard = TURN.read().await;
            hold(Hold {
                _alone: None,
                _shared: Some(guard),
            })
        }
    }
}

fn assert_not_held() {
    if let Some(Turn(hold)) = held() {
        let how = if hold._alone.is_some() {
            "alone"
        } else {
            "shared"
        };
        panic!("this test holds the turn lock {how} already: take exclusive() first");
    }
}
