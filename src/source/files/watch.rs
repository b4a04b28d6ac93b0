//! Watches a manifest directory and rebuilds on change, debounced.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::dir::DirSource;

/// Quiet time that ends a burst of file events.
pub const QUIET: Duration = Duration::from_millis(20);
/// Longest a burst may delay a rebuild.
pub const MAX_DELAY: Duration = Duration::from_millis(60);

/// Why watching could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot watch {dir}: {source}")]
    Notify { dir: PathBuf, source: notify::Error },
}

/// Loads `dir`, calls `on_change` with the source, then again after each debounced burst of
/// changes that altered some file's objects, until `shutdown` resolves.
pub async fn watch(
    dir: PathBuf,
    mut on_change: impl FnMut(&DirSource) + Send,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), WatchError> {
    let root = dir.canonicalize().unwrap_or(dir);
    let (tx, mut rx) = mpsc::unbounded_channel::<notify::Result<notify::Event>>();
    let mut watcher = notify::recommended_watcher(move |ev| {
        // The receiver only goes away at shutdown.
        let _ = tx.send(ev);
    })
    .map_err(|source| WatchError::Notify {
        dir: root.clone(),
        source,
    })?;
    watcher
        .watch(&root, RecursiveMode::Recursive)
        .map_err(|source| WatchError::Notify {
            dir: root.clone(),
            source,
        })?;

    let mut source = DirSource::new(&root);
    source.rescan();
    on_change(&source);

    tokio::pin!(shutdown);
    loop {
        let first = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            ev = rx.recv() => match ev { Some(ev) => ev, None => return Ok(()) },
        };
        let mut paths = BTreeSet::new();
        let mut full = false;
        collect(first, &mut paths, &mut full);
        let deadline = Instant::now() + MAX_DELAY;
        loop {
            let quiet = (Instant::now() + QUIET).min(deadline);
            match tokio::time::timeout_at(quiet, rx.recv()).await {
                Ok(Some(ev)) => collect(ev, &mut paths, &mut full),
                Ok(None) => return Ok(()),
                Err(_) => break,
            }
        }
        let problems = source.problems();
        let changed = if full {
            source.rescan()
        } else {
            paths.iter().fold(false, |acc, p| source.reload(p) | acc)
        };
        // A file that broke (or was fixed) while its last good objects stay is still news:
        // the rebuild publishes the problem (metrics, /debug/status) and sends Envoy nothing.
        if changed || source.problems() != problems {
            on_change(&source);
        } else {
            tracing::debug!(paths = paths.len(), "file events changed no object");
        }
    }
}

fn collect(ev: notify::Result<notify::Event>, paths: &mut BTreeSet<PathBuf>, full: &mut bool) {
    match ev {
        Ok(ev) => {
            if ev.need_rescan() {
                *full = true;
            }
            paths.extend(ev.paths);
        }
        Err(e) => {
            tracing::warn!(error = %e, "file watch error; rescanning the directory");
            *full = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::mpsc;

    use super::watch;
    use crate::store::ObjKey;

    const SVC: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: NAME, namespace: ns}\nspec: {ports: [{port: 80}]}\n";

    /// Waits for the next change the watcher reports, as the set of Service names.
    async fn next(rx: &mut mpsc::UnboundedReceiver<Vec<String>>) -> Vec<String> {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a change is reported")
            .expect("watcher alive")
    }

    #[tokio::test]
    async fn written_renamed_and_removed_files_each_trigger_one_rebuild() {
        let dir = tempfile::tempdir().expect("tempdir");
        let watched = dir.path().join("m");
        std::fs::create_dir(&watched).expect("mkdir");
        std::fs::write(watched.join("a.yaml"), SVC.replace("NAME", "a")).expect("write");
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(watch(
            watched.clone(),
            move |src| {
                let names = src
                    .store()
                    .services
                    .keys()
                    .map(|k: &ObjKey| k.name.clone())
                    .collect();
                let _ = tx.send(names);
            },
            async move {
                let _ = stop_rx.await;
            },
        ));
        assert_eq!(next(&mut rx).await, ["a"], "initial load");

        std::fs::write(watched.join("b.yaml"), SVC.replace("NAME", "b")).expect("write in place");
        assert_eq!(next(&mut rx).await, ["a", "b"]);

        let tmp = dir.path().join("c.tmp");
        std::fs::write(&tmp, SVC.replace("NAME", "c")).expect("write tmp");
        std::fs::rename(&tmp, watched.join("c.yaml")).expect("rename into place");
        assert_eq!(next(&mut rx).await, ["a", "b", "c"]);

        std::fs::remove_file(watched.join("a.yaml")).expect("remove");
        assert_eq!(next(&mut rx).await, ["b", "c"]);

        // A broken rewrite keeps what the file held and reports no change.
        std::fs::write(watched.join("b.yaml"), "kind: [").expect("break");
        std::fs::write(watched.join("d.yaml"), SVC.replace("NAME", "d")).expect("write");
        assert_eq!(next(&mut rx).await, ["b", "c", "d"]);

        let _ = stop_tx.send(());
        task.await.expect("join").expect("watch ends cleanly");
    }
}
