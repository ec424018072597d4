//! The process-wide stop: raised by SIGINT or SIGTERM or by the admin RPC's `stop`, watched by
//! every task that runs until shutdown (the wait for the node, the indexer, the event
//! coordinator, the monitor).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// A stop request shared by clones. Once raised it stays raised: every task that checks it, or
/// waits on it, from then on sees it. The indexer stops at the next block boundary, after
/// committing what it has.
#[derive(Clone, Default)]
pub struct StopSignal {
    flag: Arc<AtomicBool>,
    wake: Arc<Notify>,
}

impl StopSignal {
    pub fn stop(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.wake.notify_waiters();
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    pub(crate) async fn wait(&self) {
        loop {
            // Registered before the check, so a stop between the two still wakes us.
            let notified = self.wake.notified();
            if self.is_stopped() {
                return;
            }
            notified.await;
        }
    }
}
