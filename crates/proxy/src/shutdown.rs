//! Stopping without dropping requests. On SIGTERM or SIGINT, `/ready` answers 503 at once
//! (so that a load balancer stops sending), new connections are still accepted for
//! `server.drain_delay_secs` (until it has noticed), then refused; requests and streams in
//! flight get `server.shutdown_timeout_secs` to finish, and streams still open then end with
//! the error event of their API rather than a cut connection. The process exits 0. A second
//! signal stops at once.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use tokio::sync::Notify;
use tokio::sync::futures::OwnedNotified;

/// The process's drain state, shared by every configuration.
#[derive(Debug, Default)]
pub struct Drain {
    draining: AtomicBool,
    closed: AtomicBool,
    close: Arc<Notify>,
}

/// Completes when open streams must end.
pub type Closing = Pin<Box<OwnedNotified>>;

impl Drain {
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// A future for a stream to end on; already complete when streams are closed.
    pub fn closing(&self) -> Closing {
        let mut closing = Box::pin(Arc::clone(&self.close).notified_owned());
        // Registered now, so that a close between here and the first poll is not missed.
        closing.as_mut().enable();
        if self.closed.load(Ordering::Acquire) {
            self.close.notify_waiters();
        }
        closing
    }

    fn begin(&self) {
        self.draining.store(true, Ordering::Release);
    }

    fn close_streams(&self) {
        self.closed.store(true, Ordering::Release);
        self.close.notify_waiters();
    }
}

/// Waits for SIGTERM or SIGINT.
async fn signalled() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            tracing::warn!("shutdown signals cannot be handled; stop the process with SIGKILL");
            std::future::pending::<()>().await;
        }
    }
}

/// Runs the drain when a signal comes: ready off, the delay, no new connections, the grace
/// period, open streams closed.
pub async fn on_signal(drain: Arc<Drain>, server: ServerHandle, delay: Duration, grace: Duration) {
    signalled().await;
    drain.begin();
    tracing::info!(
        delay_secs = delay.as_secs(),
        grace_secs = grace.as_secs(),
        "shutting down: /ready answers 503; new connections are refused after the delay, and \
         requests in flight have the grace period to finish"
    );
    let forced = server.clone();
    tokio::spawn(async move {
        signalled().await;
        tracing::warn!("second signal: stopping at once");
        forced.stop(false).await;
    });
    tokio::time::sleep(delay).await;
    let stopped = server.stop(true);
    tokio::pin!(stopped);
    tokio::select! {
        () = &mut stopped => return,
        () = tokio::time::sleep(grace) => {}
    }
    tracing::warn!("the grace period is over: open streams are ended");
    drain.close_streams();
    stopped.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stream_registered_before_or_after_the_close_learns_of_it() {
        let drain = Drain::default();
        let before = drain.closing();
        drain.close_streams();
        tokio::time::timeout(Duration::from_secs(1), before)
            .await
            .expect("woken by the close");
        let after = drain.closing();
        tokio::time::timeout(Duration::from_secs(1), after)
            .await
            .expect("complete at once after the close");
    }
}
