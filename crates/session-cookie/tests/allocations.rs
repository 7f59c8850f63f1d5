//! Reading a request's one session cookie allocates nothing (the hot path of every request).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]
// A counting global allocator needs `unsafe`; it only forwards to the system allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use session_cookie::{Incoming, SessionCookies};

struct Counting;
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call forwards to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from `alloc` above, which is the system allocator's.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

#[test]
fn reading_one_session_cookie_allocates_nothing() {
    let config = session_core::Config::builder()
        .key(b"a key of thirty-two bytes or more".to_vec())
        .build()
        .unwrap();
    let jar = SessionCookies::from_config(&config).unwrap();
    let set = jar.write("realvalue", None, 0, false).unwrap();
    let sig = set.sig.unwrap().split(';').next().unwrap().to_owned();
    let header = format!("other=1; koa.sess=realvalue; {sig}");
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    for _ in 0..1000 {
        let got = jar.read([header.as_bytes()]);
        assert!(matches!(got, Incoming::Valid { .. }));
    }
    assert_eq!(ALLOCATIONS.load(Ordering::SeqCst) - before, 0);
}
