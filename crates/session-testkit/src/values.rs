//! Values no other test run uses, and the time as the stores see it.

use std::sync::atomic::{AtomicUsize, Ordering};

/// `label` made unique to this run, in letters, digits and `_` (fit for a URL, a user name,
/// an owner): tests share servers with each other and with other suites, and a value a test
/// searches the log for must not be there by coincidence.
pub fn unique(label: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{label}_{}x{nanos:x}x{n}", std::process::id())
}

/// Milliseconds since the epoch, now (the stores' clock).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}
