//! Watches a manifest directory and rebuilds on change, debounced.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::dir::DirSource;

/// Quiet time that ends a burst while some file may still be being written.
pub const QUIET: Duration = Duration::from_millis(20);
/// Quiet time that ends a burst once every file it touched is complete (closed after writing,
/// renamed into place or removed): only long enough to take in files written together.
pub const SETTLED: Duration = Duration::from_millis(2);
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
        let mut burst = Burst::default();
        burst.add(first);
        let deadline = Instant::now() + MAX_DELAY;
        loop {
            let wait = if burst.writing.is_empty() {
                SETTLED
            } else {
                QUIET
            };
            match tokio::time::timeout_at((Instant::now() + wait).min(deadline), rx.recv()).await {
                Ok(Some(ev)) => burst.add(ev),
                Ok(None) => return Ok(()),
                Err(_) => break,
            }
        }
        let problems = source.problems();
        let changed = if burst.full {
            source.rescan()
        } else {
            burst
                .paths
                .iter()
                .fold(false, |acc, p| source.reload(p) | acc)
        };
        // A file that broke (or was fixed) while its last good objects stay is still news:
        // the rebuild publishes the problem (metrics, /debug/status) and sends Envoy nothing.
        if changed || source.problems() != problems {
            on_change(&source);
        } else {
            tracing::debug!(paths = burst.paths.len(), "file events changed no object");
        }
    }
}

/// The file events of one burst.
#[derive(Debug, Default)]
struct Burst {
    /// Paths to reload.
    paths: BTreeSet<PathBuf>,
    /// Files created or written and not closed yet: reading them now could see half a file.
    writing: BTreeSet<PathBuf>,
    /// Events were lost or the watch failed: rescan everything.
    full: bool,
}

impl Burst {
    fn add(&mut self, ev: notify::Result<notify::Event>) {
        use notify::EventKind::{Access, Create, Modify, Remove};
        use notify::event::{AccessKind, AccessMode, CreateKind, DataChange, ModifyKind};
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                tracing::warn!(error = %e, "file watch error; rescanning the directory");
                self.full = true;
                return;
            }
        };
        if ev.need_rescan() {
            self.full = true;
        }
        // Opening or reading changes nothing, and the rescan that reloading the directory
        // triggers opens it: counting those events looped, rescanning ~300 times a second.
        if matches!(ev.kind, Access(kind) if kind != AccessKind::Close(AccessMode::Write)) {
            return;
        }
        for path in &ev.paths {
            match ev.kind {
                Create(CreateKind::File)
                | Modify(ModifyKind::Data(DataChange::Any | DataChange::Content))
                | Modify(ModifyKind::Any) => {
                    self.writing.insert(path.clone());
                }
                Access(AccessKind::Close(AccessMode::Write))
                | Modify(ModifyKind::Name(_))
                | Remove(_) => {
                    self.writing.remove(path);
                }
                _ => {}
            }
        }
        self.paths.extend(ev.paths);
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use notify::event::{AccessKind, AccessMode, CreateKind, DataChange, ModifyKind, RenameMode};
    use notify::{Event, EventKind};
    use tokio::sync::mpsc;

    use super::{Burst, watch};
    use crate::store::ObjKey;

    /// A Service `ns/NAME` on port 80.
    fn svc(name: &str) -> String {
        crate::testing::service("ns", name, 80)
    }

    /// Waits for the next change the watcher reports, as the set of Service names.
    async fn next(rx: &mut mpsc::UnboundedReceiver<Vec<String>>) -> Vec<String> {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a change is reported")
            .expect("watcher alive")
    }

    fn event(kind: EventKind, path: &str) -> notify::Result<Event> {
        Ok(Event::new(kind).add_path(PathBuf::from(path)))
    }

    #[test]
    fn a_burst_is_settled_only_when_every_written_file_is_complete() {
        let mut b = Burst::default();
        b.add(event(EventKind::Create(CreateKind::File), "a.yaml"));
        b.add(event(
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            "a.yaml",
        ));
        b.add(event(
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            "b.yaml",
        ));
        assert_eq!(b.writing.len(), 2, "two files open for writing");
        b.add(event(
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            "a.yaml",
        ));
        assert_eq!(b.writing.len(), 1, "a.yaml closed, b.yaml still open");
        b.add(event(
            EventKind::Remove(notify::event::RemoveKind::File),
            "b.yaml",
        ));
        assert!(b.writing.is_empty());
        // Renamed into place: complete from the first event.
        b.add(event(
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            "c.yaml",
        ));
        assert!(b.writing.is_empty());
        // Closing after reading says nothing about a writer.
        b.add(event(
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            "d.yaml",
        ));
        b.add(event(
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            "d.yaml",
        ));
        assert!(!b.writing.is_empty());
        let paths: Vec<_> = b.paths.iter().map(|p| p.display().to_string()).collect();
        assert_eq!(paths, ["a.yaml", "b.yaml", "c.yaml", "d.yaml"]);
        assert!(!b.full);
        b.add(Err(notify::Error::generic("queue overflow")));
        assert!(b.full, "a watch error rescans everything");
    }

    #[test]
    fn opening_and_reading_are_not_changes() {
        let mut b = Burst::default();
        for kind in [
            AccessKind::Open(notify::event::AccessMode::Any),
            AccessKind::Read,
            AccessKind::Close(AccessMode::Read),
            AccessKind::Any,
        ] {
            b.add(event(EventKind::Access(kind), "manifests"));
        }
        assert!(b.paths.is_empty() && b.writing.is_empty() && !b.full);
        b.add(event(
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            "a.yaml",
        ));
        assert_eq!(b.paths.len(), 1, "a writer closing is a change");
    }

    #[tokio::test]
    async fn written_renamed_and_removed_files_each_trigger_one_rebuild() {
        let dir = tempfile::tempdir().expect("tempdir");
        let watched = dir.path().join("m");
        std::fs::create_dir(&watched).expect("mkdir");
        std::fs::write(watched.join("a.yaml"), svc("a")).expect("write");
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

        std::fs::write(watched.join("b.yaml"), svc("b")).expect("write in place");
        assert_eq!(next(&mut rx).await, ["a", "b"]);

        let tmp = dir.path().join("c.tmp");
        std::fs::write(&tmp, svc("c")).expect("write tmp");
        std::fs::rename(&tmp, watched.join("c.yaml")).expect("rename into place");
        assert_eq!(next(&mut rx).await, ["a", "b", "c"]);

        std::fs::remove_file(watched.join("a.yaml")).expect("remove");
        assert_eq!(next(&mut rx).await, ["b", "c"]);

        std::fs::write(watched.join("d.yaml"), svc("d")).expect("write");
        assert_eq!(next(&mut rx).await, ["b", "c", "d"]);
        // A broken rewrite keeps what the file held; the rebuild only reports the problem.
        std::fs::write(watched.join("b.yaml"), "kind: [").expect("break");
        assert_eq!(next(&mut rx).await, ["b", "c", "d"]);

        let _ = stop_tx.send(());
        task.await.expect("join").expect("watch ends cleanly");
    }
}
