//! Stopping: a [`Stop`] is handed to everything that runs until told otherwise (the traffic,
//! a scenario's phases, the health wait), and a [`StopSwitch`] flips it. The binary flips it
//! on Ctrl-C or SIGTERM (what `docker stop` sends); tests flip it by hand.

use tokio::sync::watch;

/// Flips every [`Stop`] made with it.
#[derive(Debug)]
pub struct StopSwitch(watch::Sender<bool>);

/// Resolves once stopping was asked for. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Stop(watch::Receiver<bool>);

/// A switch and the stop it controls.
pub fn stop_pair() -> (StopSwitch, Stop) {
    let (sender, receiver) = watch::channel(false);
    (StopSwitch(sender), Stop(receiver))
}

impl StopSwitch {
    /// Asks everything holding a matching [`Stop`] to stop.
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

impl Stop {
    /// A stop that follows Ctrl-C and SIGTERM. Needs a Tokio runtime.
    pub fn on_signal() -> Self {
        let (switch, stop) = stop_pair();
        tokio::spawn(async move {
            signal().await;
            tracing::info!("stop requested");
            switch.stop();
        });
        stop
    }

    /// Whether stopping was asked for already.
    pub fn is_stopped(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves when stopping is asked for. A dropped switch counts as a stop: nothing could
    /// ask any more, and running forever unstoppable would be worse.
    pub async fn stopped(&mut self) {
        // An error only means the switch is gone, which is a stop as well.
        let _gone = self.0.wait_for(|stopped| *stopped).await;
    }
}

/// Resolves on Ctrl-C or, on Unix, SIGTERM.
async fn signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn flipping_the_switch_stops_every_clone() {
        let (switch, stop) = stop_pair();
        let mut clone = stop.clone();
        assert!(!stop.is_stopped());
        switch.stop();
        clone.stopped().await;
        assert!(stop.is_stopped());
    }

    #[tokio::test]
    async fn a_dropped_switch_counts_as_a_stop() {
        let (switch, mut stop) = stop_pair();
        drop(switch);
        tokio::time::timeout(std::time::Duration::from_secs(1), stop.stopped())
            .await
            .expect("a stop whose switch is gone resolves");
    }
}
