use tokio::sync::watch;

/// One shutdown signal for every task: SIGINT or SIGTERM, or `trigger`.
#[derive(Clone)]
pub struct Shutdown {
    tx: watch::Sender<bool>,
}

impl Shutdown {
    /// Starts listening for SIGINT and SIGTERM.
    pub fn install() -> Self {
        let (tx, _) = watch::channel(false);
        let this = Self { tx };
        let signals = this.clone();
        tokio::spawn(async move {
            let term = async {
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen for SIGTERM");
                        std::future::pending::<()>().await;
                    }
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term => {}
            }
            tracing::info!("shutting down");
            signals.trigger();
        });
        this
    }

    /// Signals every waiter.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// Resolves once shutdown is signalled.
    pub fn wait(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.tx.subscribe();
        async move {
            // An error means the sender is gone, which also means shutdown.
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }
}
