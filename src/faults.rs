//! Fault injection for tests: the suite arms a directory so that its next write panics
//! inside the write transaction, proving that one failed request cannot wedge the pool
//! for other tenants. Disarmed (the normal state) it costs one atomic load per write.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

static ANY_ARMED: AtomicBool = AtomicBool::new(false);
static ARMED: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// Makes the next write of `directory_id` panic after it wrote, before it commits.
#[doc(hidden)]
pub fn panic_in_next_write(directory_id: &str) {
    if let Ok(mut armed) = ARMED.lock() {
        armed
            .get_or_insert_with(HashSet::new)
            .insert(directory_id.to_string());
        ANY_ARMED.store(true, Ordering::SeqCst);
    }
}

/// Called by writes inside their transaction.
pub(crate) fn write_point(directory_id: &str) {
    if !ANY_ARMED.load(Ordering::Relaxed) {
        return;
    }
    let hit = ARMED
        .lock()
        .ok()
        .and_then(|mut armed| armed.as_mut().map(|set| set.remove(directory_id)))
        .unwrap_or(false);
    if hit {
        panic!("fault injected into a write of directory {directory_id}");
    }
}
