//! The steady path allocates nothing: a master and a backup exchange advertisements (and the
//! actions are drained) under a counting global allocator.
//!
//! One test in this binary on purpose: the counter is global.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use vrrp::router::{Action, Config, Input, State, VirtualRouter};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call unchanged to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, passed on as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as for `alloc` and `dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn router(last: u8, priority: u8) -> VirtualRouter {
    let mut c = Config::new(9, IpAddr::V4(Ipv4Addr::new(10, 99, 0, last)));
    c.priority = priority;
    for i in 0..8 {
        c.virtual_addresses
            .push(IpAddr::V4(Ipv4Addr::new(10, 99, 1, i)));
    }
    VirtualRouter::new(c).unwrap()
}

#[test]
fn steady_state_exchange_does_not_allocate() {
    let t0 = Instant::now();
    let mut master = router(1, 200);
    let mut backup = router(2, 100);
    master.handle(t0, Input::Startup);
    backup.handle(t0, Input::Startup);
    let mut now = t0;
    let mut sent = 0u64;
    let mut steady_from = None;
    for round in 0..20_000u32 {
        // Wake the master at its deadline; deliver what it sends to the backup.
        now = master
            .poll_timeout()
            .unwrap_or(now + Duration::from_millis(10));
        master.handle_timeout(now);
        while let Some(a) = backup.poll_action() {
            std::hint::black_box(a);
        }
        if round == 100 {
            steady_from = Some(ALLOCATIONS.load(Ordering::Relaxed));
        }
        let src = master.config().primary_address;
        while let Some(action) = master.poll_action() {
            if let Action::SendAdvertisement { advert, .. } = action {
                backup.handle(now, Input::Advertisement { src, advert });
                sent += 1;
            }
        }
        backup.handle_timeout(now);
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - steady_from.unwrap_or(0);
    assert_eq!(master.state(), State::Master);
    assert_eq!(backup.state(), State::Backup);
    assert!(sent > 19_000, "{sent}");
    assert_eq!(backup.counters().adverts_received, sent);
    assert_eq!(allocations, 0, "allocations on the steady path");
}
