//! Drive one VRRP virtual router by hand: no socket, no thread, no real clock.
//!
//! The router is sans-IO: we hand it the time and what happened, it tells us what to do and
//! when to wake it next. Run with `cargo run --example router_by_hand`.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use vrrp::router::{Action, Config, Input, VirtualRouter};
use vrrp::wire::{Addresses, Advertisement, Auth, Version};

fn main() -> Result<(), vrrp::router::ConfigError> {
    let mut cfg = Config::new(51, IpAddr::V4(Ipv4Addr::new(10, 99, 0, 2)));
    cfg.priority = 150;
    cfg.virtual_addresses
        .push(IpAddr::V4(Ipv4Addr::new(10, 99, 0, 100)));
    let mut router = VirtualRouter::new(cfg)?;
    let t0 = Instant::now(); // the only clock read: everything below is "t0 + something"
    let at = |t: Instant| format!("{:>9.3} s", (t - t0).as_secs_f64());

    // 1. Startup: a non-owner starts as backup and arms its Master_Down_Timer.
    router.handle(t0, Input::Startup);
    drain(&mut router, &at(t0));
    println!(
        "  Master_Down_Interval = {:?}",
        router.master_down_interval()
    );

    // 2. A peer (10.99.0.1, priority 200) advertises: it is the master; our timer restarts.
    let vip = [10, 99, 0, 100];
    let peer = Advertisement {
        version: Version::V3,
        vrid: 51,
        priority: 200,
        interval_cs: 100,
        auth: Auth::None,
        addresses: Addresses::V4(&vip),
    };
    let src = IpAddr::V4(Ipv4Addr::new(10, 99, 0, 1));
    for s in 0..3 {
        let t = t0 + Duration::from_secs(s);
        router.handle(t, Input::Advertisement { src, advert: peer });
        println!(
            "{} advert from {src} (priority 200); next deadline {}",
            at(t),
            at(router.poll_timeout().unwrap())
        );
    }

    // 3. The peer falls silent: sleep until the deadline, then let the timer fire.
    let deadline = router.poll_timeout().unwrap();
    router.handle_timeout(deadline);
    drain(&mut router, &at(deadline));

    // 4. As master we advertise every interval; run two of them.
    for _ in 0..2 {
        let t = router.poll_timeout().unwrap();
        router.handle_timeout(t);
        drain(&mut router, &at(t));
    }

    // 5. The peer returns and steps us down; then we shut down cleanly (nothing to release).
    let t = deadline + Duration::from_millis(2500);
    router.handle(t, Input::Advertisement { src, advert: peer });
    drain(&mut router, &at(t));
    router.handle(t, Input::Shutdown);
    drain(&mut router, &at(t));
    println!("counters: {:?}", router.counters());
    Ok(())
}

/// What a runtime does with the actions: here, print them.
fn drain(router: &mut VirtualRouter, when: &str) {
    while let Some(action) = router.poll_action() {
        match action {
            Action::SendAdvertisement { advert, checksum } => {
                println!(
                    "{when} send advertisement priority {} ({checksum:?} checksum)",
                    advert.priority
                )
            }
            Action::AddAddresses(a) => println!("{when} add {:?}", a.iter().collect::<Vec<_>>()),
            Action::RemoveAddresses(a) => {
                println!("{when} remove {:?}", a.iter().collect::<Vec<_>>())
            }
            Action::Announce { addresses, count } => {
                println!(
                    "{when} announce {} address(es) x{count} (gratuitous ARP)",
                    addresses.len()
                )
            }
            Action::StateChanged { from, to, reason } => {
                println!("{when} {from} -> {to}: {reason}")
            }
        }
    }
}
