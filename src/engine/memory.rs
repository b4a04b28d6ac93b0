//! Allocator collection after a build that shrank the configuration.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The most objects a build saw since memory was last handed back.
static LARGEST: AtomicUsize = AtomicUsize::new(0);

/// Hands memory freed by a build back to the kernel at once, when the configuration shrank a
/// quarter below the largest it was since the last time: the process then drops to its new
/// size. Not after every build: the next build would fault the same pages straight back in
/// (BENCHMARKS.md, item 13); mimalloc's own purge delay covers the rest.
pub(super) fn release_freed_memory(objects: usize) {
    let largest = LARGEST.fetch_max(objects, Ordering::Relaxed).max(objects);
    if shrank(largest, objects) {
        LARGEST.store(objects, Ordering::Relaxed);
        release_now();
    }
}

/// Hands freed memory back to the kernel now (after a large one-off batch of work outside a
/// build, e.g. the first status of every object).
pub fn release_now() {
    // SAFETY: mi_collect has no preconditions; `force` also collects abandoned thread heaps.
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
}

/// True when `objects` is less than three quarters of `largest`.
fn shrank(largest: usize, objects: usize) -> bool {
    objects.saturating_mul(4) < largest.saturating_mul(3)
}

#[cfg(test)]
mod tests {
    #[test]
    fn memory_is_collected_only_after_a_shrink_by_a_quarter() {
        assert!(!super::shrank(1_000, 1_000));
        assert!(!super::shrank(1_000, 760));
        assert!(super::shrank(1_000, 740));
        assert!(super::shrank(16_000, 1_600));
        assert!(!super::shrank(0, 0));
    }
}
