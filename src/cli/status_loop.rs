//! The controller's status loop: when to plan and write status, while this replica leads.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use gatehouse::engine::Shared;
use gatehouse::source::kube::KubeState;
use gatehouse::status::StatusWriter;
use gatehouse::status::events::{Events, transitions};
use tokio::sync::{Notify, watch};

/// Least time between two status plans: in a burst of changes, a Gateway's status (its
/// attached route count) is written a few times a second, not once per change — each write
/// costs the API server its CRD validation, and it shares the machine with the proxies.
const STATUS_BATCH: Duration = Duration::from_millis(250);
/// Status yields to configuration: while the model keeps changing (a burst of changes), the
/// plan waits until it has been quiet this long, so the API server's time goes to the changes
/// themselves (each status write costs it the CRD's validation too) ...
const STATUS_QUIET: Duration = Duration::from_millis(100);
/// ... but no longer than this after the first change of the burst.
const STATUS_MAX_DEFER: Duration = Duration::from_secs(1);
/// Status writes this many in a row (the first status of every object) are followed by handing
/// the memory they used back to the kernel.
const LARGE_STATUS_BATCH: usize = 1000;
/// Every object's status is re-checked this often, not only the changed ones (repairs what
/// no event told of).
const STATUS_RESYNC: Duration = Duration::from_secs(300);

/// Writes status after each build, after changes to stored objects (our own writes' echoes,
/// someone else's edits) and periodically, while this replica leads.
pub(super) async fn write_status(
    mut writer: StatusWriter,
    events: Events,
    state: Arc<KubeState>,
    shared: Arc<Shared>,
    built: Arc<Notify>,
    mut leading: watch::Receiver<bool>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut resync = tokio::time::interval(STATUS_RESYNC);
    let mut planned = tokio::time::Instant::now();
    // Written since the writer last had nothing more to plan.
    let mut in_a_row = 0;
    // The status the last round looked at, for Events; `None` after gaining leadership, so
    // that a new leader does not announce every failure that is already in status.
    let mut previous: Option<gatehouse::model::Status> = None;
    loop {
        // A full plan left objects for the next one, which follows at once.
        let more = writer.has_more() && *leading.borrow() && shared.ready();
        if more {
            if (&mut shutdown).now_or_never().is_some() {
                return;
            }
        } else {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = built.notified() => {}
                _ = state.observed() => {}
                // A proxy rejecting (or accepting again) shows on its Gateway within a second.
                _ = shared.status_changed.notified() => {}
                _ = resync.tick() => writer.forget(),
                changed = leading.changed() => {
                    if changed.is_err() { return }
                    writer.forget();
                    previous = None;
                }
            }
            if !*leading.borrow() || !shared.ready() {
                continue;
            }
            let deadline = tokio::time::Instant::now() + STATUS_MAX_DEFER;
            loop {
                tokio::select! {
                    _ = &mut shutdown => return,
                    _ = tokio::time::sleep(STATUS_QUIET) => break,
                    _ = built.notified() => {
                        if tokio::time::Instant::now() >= deadline { break }
                    }
                }
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep_until(planned + STATUS_BATCH) => {}
            }
        }
        planned = tokio::time::Instant::now();
        let view = shared.view();
        let status = view.status();
        let plan = state.with_store(|store| writer.plan(store, &status, state.take_touched()));
        let noted = previous
            .as_ref()
            .map(|before| transitions(before, &status))
            .unwrap_or_default();
        previous = Some(status.into_owned());
        drop(view);
        let written = if plan.is_empty() {
            0
        } else {
            writer.write(plan).await
        };
        // After the status: an Event repeats news the status already carries.
        if !noted.is_empty() {
            events.publish(noted).await;
        }
        if written > 0 {
            tracing::info!(written, "status written");
        }
        in_a_row += written;
        if !writer.has_more() {
            if in_a_row >= LARGE_STATUS_BATCH {
                gatehouse::engine::release_freed_memory();
            }
            in_a_row = 0;
        }
    }
}
