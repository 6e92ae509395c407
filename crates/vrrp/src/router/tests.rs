//! Unit tests of single RFC rules, one router driven by hand.

use super::*;
use core::net::{Ipv4Addr, Ipv6Addr};

const VIP: [u8; 4] = [10, 99, 0, 100];

fn cfg(priority: u8) -> Config {
    let mut c = Config::new(51, IpAddr::V4(Ipv4Addr::new(10, 99, 0, 2)));
    c.priority = priority;
    c.virtual_addresses.push(IpAddr::V4(Ipv4Addr::from(VIP)));
    c.announce = AnnounceSchedule {
        burst: 2,
        repeat_after: None,
        refresh: None,
    };
    c
}

fn adv(priority: u8) -> Advertisement<'static> {
    Advertisement {
        version: Version::V3,
        vrid: 51,
        priority,
        interval_cs: 100,
        auth: Auth::None,
        addresses: Addresses::V4(&VIP),
    }
}

fn peer(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 99, 0, last))
}

fn drain(r: &mut VirtualRouter) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(a) = r.poll_action() {
        out.push(match a {
            Action::SendAdvertisement { advert, .. } => format!("send {}", advert.priority),
            Action::AddAddresses(_) => "add".into(),
            Action::RemoveAddresses(_) => "remove".into(),
            Action::Announce { count, .. } => format!("announce {count}"),
            Action::StateChanged { from, to, reason } => format!("{from}->{to} ({reason})"),
        });
    }
    out
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn started(priority: u8) -> (VirtualRouter, Instant) {
    let mut r = VirtualRouter::new(cfg(priority)).unwrap();
    let t0 = Instant::now();
    r.handle(t0, Input::Startup);
    drain(&mut r);
    (r, t0)
}

fn master(priority: u8) -> (VirtualRouter, Instant) {
    let (mut r, _) = started(priority);
    let t = r.poll_timeout().unwrap();
    r.handle_timeout(t);
    drain(&mut r);
    assert_eq!(r.state(), State::Master);
    (r, t)
}

#[test]
fn backup_takes_over_after_master_down_interval() {
    let (mut r, t0) = started(100);
    assert_eq!(r.state(), State::Backup);
    assert_eq!(
        r.poll_timeout(),
        Some(t0 + Duration::from_nanos(3_609_375_000))
    );
    // Not yet.
    r.handle_timeout(t0 + ms(3_609));
    assert_eq!(r.state(), State::Backup);
    r.handle_timeout(t0 + Duration::from_nanos(3_609_375_000));
    assert_eq!(
        drain(&mut r),
        [
            "send 100",
            "add",
            "announce 2",
            "backup->master (master down)"
        ]
    );
    assert_eq!(r.counters().to_master, 1);
}

#[test]
fn owner_goes_straight_to_master() {
    let mut r = VirtualRouter::new(cfg(255)).unwrap();
    let t0 = Instant::now();
    r.handle(t0, Input::Startup);
    assert_eq!(r.state(), State::Master);
    assert_eq!(
        drain(&mut r),
        [
            "send 255",
            "add",
            "announce 2",
            "initialize->master (address owner startup)"
        ]
    );
    // The owner master does not process advertisements (RFC 5798 section 7.1).
    r.handle(
        t0,
        Input::Advertisement {
            src: peer(9),
            advert: adv(254),
        },
    );
    assert_eq!(r.counters().dropped_owner, 1);
    assert!(drain(&mut r).is_empty());
}

#[test]
fn adverts_reset_the_backup_timer_and_v3_learns_the_interval() {
    let (mut r, t0) = started(100);
    let mut a = adv(150);
    a.interval_cs = 50;
    r.handle(
        t0 + ms(1000),
        Input::Advertisement {
            src: peer(1),
            advert: a,
        },
    );
    assert_eq!(r.master_adver_interval(), ms(500));
    // 3 x 0.5 s + 156/256 x 0.5 s.
    assert_eq!(
        r.master_down_interval(),
        Duration::from_nanos(1_804_687_500)
    );
    assert_eq!(
        r.poll_timeout(),
        Some(t0 + ms(1000) + r.master_down_interval())
    );
}

#[test]
fn priority_zero_makes_the_backup_wait_skew_time_only() {
    let (mut r, t0) = started(100);
    r.handle(
        t0 + ms(500),
        Input::Advertisement {
            src: peer(1),
            advert: adv(0),
        },
    );
    let t = t0 + ms(500) + Duration::from_nanos(609_375_000);
    assert_eq!(r.poll_timeout(), Some(t));
    r.handle_timeout(t);
    assert_eq!(
        drain(&mut r).last().unwrap(),
        "backup->master (master sent priority 0)"
    );
}

#[test]
fn master_answers_priority_zero_at_once() {
    let (mut r, t) = master(100);
    r.handle(
        t + ms(300),
        Input::Advertisement {
            src: peer(1),
            advert: adv(0),
        },
    );
    assert_eq!(drain(&mut r), ["send 100"]);
    assert_eq!(r.poll_timeout(), Some(t + ms(1300)));
}

#[test]
fn master_yields_to_higher_priority_and_to_higher_address_on_a_tie() {
    let (mut r, t) = master(100);
    r.handle(
        t,
        Input::Advertisement {
            src: peer(1),
            advert: adv(101),
        },
    );
    assert_eq!(
        drain(&mut r),
        ["remove", "master->backup (higher priority advertisement)"]
    );
    assert_eq!(r.counters().preempted, 1);

    // Equal priority: our primary is 10.99.0.2; .1 loses, .3 wins.
    let (mut r, t) = master(100);
    r.handle(
        t,
        Input::Advertisement {
            src: peer(1),
            advert: adv(100),
        },
    );
    assert_eq!(r.state(), State::Master);
    // RFC 9568: the master answers a lower priority at once.
    assert_eq!(drain(&mut r), ["send 100"]);
    assert_eq!(r.counters().master_answered_lower, 1);
    r.handle(
        t,
        Input::Advertisement {
            src: peer(3),
            advert: adv(100),
        },
    );
    assert_eq!(r.state(), State::Backup);
}

#[test]
fn ipv6_tie_break_compares_link_local_sources_unsigned() {
    let ll = |x: u16| IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, x));
    let vip = [0xfd, 0x99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x64];
    let mut c = Config::new(51, ll(0x7f));
    c.virtual_addresses.push(IpAddr::V6(Ipv6Addr::from(vip)));
    let mut r = VirtualRouter::new(c).unwrap();
    let t0 = Instant::now();
    r.handle(t0, Input::Startup);
    let t = r.poll_timeout().unwrap();
    r.handle_timeout(t);
    drain(&mut r);
    let a = Advertisement {
        addresses: Addresses::V6(&vip),
        ..adv(100)
    };
    r.handle(
        t,
        Input::Advertisement {
            src: ll(0x7e),
            advert: a,
        },
    );
    assert_eq!(r.state(), State::Master);
    r.handle(
        t,
        Input::Advertisement {
            src: ll(0x80),
            advert: a,
        },
    );
    assert_eq!(r.state(), State::Backup, "{:?}", r.counters());
    // An IPv4 source is dropped as the wrong family.
    r.handle(
        t,
        Input::Advertisement {
            src: peer(1),
            advert: a,
        },
    );
    assert_eq!(r.counters().dropped_family, 1);
}

#[test]
fn preempt_on_discards_lower_and_preempt_off_accepts_it() {
    let (mut r, t0) = started(150);
    let deadline = r.poll_timeout().unwrap();
    r.handle(
        t0 + ms(1000),
        Input::Advertisement {
            src: peer(1),
            advert: adv(100),
        },
    );
    assert_eq!(
        r.poll_timeout(),
        Some(deadline),
        "discarded: timer not reset"
    );
    assert_eq!(r.counters().backup_discarded_lower, 1);

    let mut c = cfg(150);
    c.preempt = false;
    let mut r = VirtualRouter::new(c).unwrap();
    r.handle(t0, Input::Startup);
    r.handle(
        t0 + ms(1000),
        Input::Advertisement {
            src: peer(1),
            advert: adv(100),
        },
    );
    assert_eq!(
        r.poll_timeout(),
        Some(t0 + ms(1000) + r.master_down_interval())
    );
}

#[test]
fn preempt_delay_accepts_lower_adverts_until_it_ends() {
    let mut c = cfg(150);
    c.preempt_delay = ms(2500);
    let mut r = VirtualRouter::new(c).unwrap();
    let t0 = Instant::now();
    r.handle(t0, Input::Startup);
    for s in 1..=3u64 {
        r.handle(
            t0 + ms(1000 * s),
            Input::Advertisement {
                src: peer(1),
                advert: adv(100),
            },
        );
    }
    // Window opened at 1 s, ends at 3.5 s: adverts at 1, 2 and 3 s were accepted.
    assert_eq!(r.counters().preempt_delayed, 3);
    assert_eq!(
        r.poll_timeout(),
        Some(t0 + ms(3000) + r.master_down_interval())
    );
    r.handle(
        t0 + ms(4000),
        Input::Advertisement {
            src: peer(1),
            advert: adv(100),
        },
    );
    assert_eq!(r.counters().backup_discarded_lower, 1);
    assert_eq!(
        r.poll_timeout(),
        Some(t0 + ms(3000) + r.master_down_interval())
    );
}

#[test]
fn validation_drops_are_counted() {
    let (mut r, t0) = started(100);
    let before = r.poll_timeout();
    let mut a = adv(200);
    a.vrid = 52;
    r.handle(
        t0,
        Input::Advertisement {
            src: peer(1),
            advert: a,
        },
    );
    let mut a = adv(200);
    a.version = Version::V2;
    r.handle(
        t0,
        Input::Advertisement {
            src: peer(1),
            advert: a,
        },
    );
    let mut a = adv(200);
    a.addresses = Addresses::V4(&[10, 99, 0, 101]);
    r.handle(
        t0,
        Input::Advertisement {
            src: peer(1),
            advert: a,
        },
    );
    let mut a = adv(200);
    a.interval_cs = 0;
    r.handle(
        t0,
        Input::Advertisement {
            src: peer(1),
            advert: a,
        },
    );
    let c = *r.counters();
    assert_eq!(
        (
            c.dropped_vrid,
            c.dropped_version,
            c.dropped_addresses,
            c.dropped_interval
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(r.poll_timeout(), before);
    // A mismatched list from the owner is processed (and counted).
    let mut a = adv(255);
    a.addresses = Addresses::V4(&[10, 99, 0, 101]);
    r.handle(
        t0 + ms(10),
        Input::Advertisement {
            src: peer(1),
            advert: a,
        },
    );
    assert_eq!(r.counters().address_mismatch_from_owner, 1);
    assert_ne!(r.poll_timeout(), before);
}

#[test]
fn v2_drops_other_interval_and_wrong_auth() {
    let mut c = cfg(100);
    c.version = Version::V2;
    c.auth = Auth::SimplePassword(*b"pass\0\0\0\0");
    let mut r = VirtualRouter::new(c).unwrap();
    let t0 = Instant::now();
    r.handle(t0, Input::Startup);
    let before = r.poll_timeout();
    let good = Advertisement {
        version: Version::V2,
        auth: Auth::SimplePassword(*b"pass\0\0\0\0"),
        ..adv(200)
    };
    r.handle(
        t0,
        Input::Advertisement {
            src: peer(1),
            advert: Advertisement {
                interval_cs: 200,
                ..good
            },
        },
    );
    r.handle(
        t0,
        Input::Advertisement {
            src: peer(1),
            advert: Advertisement {
                auth: Auth::None,
                ..good
            },
        },
    );
    assert_eq!(
        (r.counters().dropped_interval, r.counters().dropped_auth),
        (1, 1)
    );
    assert_eq!(r.poll_timeout(), before);
    r.handle(
        t0 + ms(1),
        Input::Advertisement {
            src: peer(1),
            advert: good,
        },
    );
    assert_eq!(
        r.poll_timeout(),
        Some(t0 + ms(1) + Duration::from_nanos(3_609_375_000))
    );
    // v2 Skew_Time does not scale with the interval, and the interval is not learned.
    assert_eq!(r.master_adver_interval(), ms(1000));
}

#[test]
fn shutdown_sends_priority_zero_and_releases() {
    let (mut r, t) = master(100);
    r.handle(t, Input::Shutdown);
    assert_eq!(
        drain(&mut r),
        ["send 0", "remove", "master->initialize (shutdown)"]
    );
    assert_eq!(r.poll_timeout(), None);
    // Startup again works.
    r.handle(t, Input::Startup);
    assert_eq!(r.state(), State::Backup);
}

#[test]
fn release_steps_back_and_does_not_preempt_until_master_again() {
    let (mut r, t) = master(200);
    r.handle(t, Input::Release);
    assert_eq!(
        drain(&mut r),
        [
            "send 0",
            "remove",
            "master->backup (administrative release)"
        ]
    );
    assert!(r.is_released());
    // A lower-priority master's adverts now reset our timer (as with preempt off).
    r.handle(
        t + ms(700),
        Input::Advertisement {
            src: peer(1),
            advert: adv(100),
        },
    );
    assert_eq!(
        r.poll_timeout(),
        Some(t + ms(700) + r.master_down_interval())
    );
    assert_eq!(r.counters().backup_discarded_lower, 0);
}

#[test]
fn takeover_advertises_254_until_released() {
    let (mut r, t0) = started(100);
    r.handle(t0, Input::Takeover);
    assert_eq!(
        drain(&mut r),
        [
            "send 254",
            "add",
            "announce 2",
            "backup->master (administrative takeover)"
        ]
    );
    // A 200 master is below the takeover priority: answered, not obeyed.
    r.handle(
        t0,
        Input::Advertisement {
            src: peer(1),
            advert: adv(200),
        },
    );
    assert_eq!(r.state(), State::Master);
    r.handle(t0, Input::Release);
    assert_eq!(r.priority(), 100);
    assert_eq!(r.state(), State::Backup);
}

#[test]
fn passive_backup_neither_listens_nor_times_out() {
    let mut c = cfg(100);
    c.mode = Mode::Passive;
    let mut r = VirtualRouter::new(c).unwrap();
    let t0 = Instant::now();
    r.handle(t0, Input::Startup);
    assert_eq!(r.state(), State::Backup);
    assert_eq!(r.poll_timeout(), None);
    r.handle(
        t0,
        Input::Advertisement {
            src: peer(1),
            advert: adv(0),
        },
    );
    assert_eq!(r.counters().dropped_passive, 1);
    assert_eq!(r.poll_timeout(), None);
    r.handle(t0 + ms(5), Input::SetMode(Mode::Active));
    assert_eq!(
        r.poll_timeout(),
        Some(t0 + ms(5) + r.master_down_interval())
    );
}

#[test]
fn fault_releases_and_recovers_through_startup() {
    let (mut r, t) = master(100);
    r.handle(t, Input::Fault(true));
    assert_eq!(drain(&mut r), ["send 0", "remove", "master->fault (fault)"]);
    r.handle(
        t,
        Input::Advertisement {
            src: peer(1),
            advert: adv(50),
        },
    );
    assert_eq!(r.counters().dropped_not_listening, 1);
    r.handle(t, Input::Takeover);
    assert_eq!(r.counters().inputs_refused, 1);
    r.handle(t + ms(10), Input::Fault(false));
    assert_eq!(drain(&mut r), ["fault->backup (fault cleared)"]);
    // A fault reported before startup holds at startup.
    let mut r = VirtualRouter::new(cfg(100)).unwrap();
    r.handle(t, Input::Fault(true));
    r.handle(t, Input::Startup);
    assert_eq!(r.state(), State::Fault);
}

#[test]
fn priority_offset_is_clamped_and_spares_the_owner() {
    let (mut r, _) = started(100);
    r.handle(Instant::now(), Input::SetPriorityOffset(-150));
    assert_eq!(r.priority(), 1);
    r.handle(Instant::now(), Input::SetPriorityOffset(300));
    assert_eq!(r.priority(), 254);
    let (mut o, _) = started(255);
    o.handle(Instant::now(), Input::SetPriorityOffset(-50));
    assert_eq!(o.priority(), 255);
}

#[test]
fn announcement_schedule_repeats_then_refreshes() {
    let mut c = cfg(255);
    c.announce = AnnounceSchedule {
        burst: 3,
        repeat_after: Some(ms(2000)),
        refresh: Some(ms(10_000)),
    };
    let mut r = VirtualRouter::new(c).unwrap();
    let t0 = Instant::now();
    r.handle(t0, Input::Startup);
    drain(&mut r);
    let mut announced = Vec::new();
    let end = t0 + ms(25_000);
    while let Some(t) = r.poll_timeout().filter(|&t| t <= end) {
        r.handle_timeout(t);
        for a in drain(&mut r) {
            if a == "announce 3" {
                announced.push((t - t0).as_millis());
            }
        }
    }
    assert_eq!(announced, [2000, 12_000, 22_000]);
    assert_eq!(r.counters().announcements, 4);
}

#[test]
fn undrained_actions_are_counted_not_grown() {
    let (mut r, mut t) = master(100);
    for _ in 0..40 {
        t += ms(1000);
        r.handle_timeout(t);
    }
    assert_eq!(r.counters().actions_dropped, 40 - 16);
    assert_eq!(drain(&mut r).len(), 16);
}

#[test]
fn preempt_hold_yields_to_a_lower_master_until_released_then_preempts() {
    // Started with preemption held (a returning node whose data is older than the master's).
    let mut c = cfg(200);
    c.preempt = false;
    let mut r = VirtualRouter::new(c).unwrap();
    let t0 = Instant::now();
    r.handle(t0, Input::Startup);
    drain(&mut r);
    assert!(!r.preempt());
    // A lower-priority master (100) is heard every second: each advert resets the timer, for
    // as long as the hold lasts.
    let mut t = t0;
    for _ in 0..10 {
        t += ms(1000);
        r.handle(
            t,
            Input::Advertisement {
                src: peer(1),
                advert: adv(100),
            },
        );
        r.handle_timeout(t);
        assert_eq!(r.state(), State::Backup);
        assert_eq!(r.poll_timeout(), Some(t + r.master_down_interval()));
    }
    assert_eq!(r.counters().backup_discarded_lower, 0);
    // The hold ends: the next lower advert is discarded (RFC 5798 section 6.4.2 (465)-(470))
    // and we take over when the Master_Down_Timer armed by the last accepted one runs out.
    r.handle(t, Input::SetPreempt(true));
    assert!(r.preempt());
    let armed = t + r.master_down_interval();
    r.handle(
        t + ms(1000),
        Input::Advertisement {
            src: peer(1),
            advert: adv(100),
        },
    );
    assert_eq!(r.counters().backup_discarded_lower, 1);
    assert_eq!(r.poll_timeout(), Some(armed));
    r.handle_timeout(armed);
    assert_eq!(r.state(), State::Master);
    assert_eq!(
        drain(&mut r),
        [
            "send 200",
            "add",
            "announce 2",
            "backup->master (master down)"
        ]
    );
}

#[test]
fn preempt_hold_does_not_stop_a_takeover_when_no_master_is_heard() {
    let mut c = cfg(200);
    c.preempt = false;
    let mut r = VirtualRouter::new(c).unwrap();
    let t0 = Instant::now();
    r.handle(t0, Input::Startup);
    // Holding, but nobody advertises: Master_Down_Interval as always (RFC 5798 6.4.2).
    let deadline = r.poll_timeout().unwrap();
    assert_eq!(deadline - t0, r.master_down_interval());
    r.handle_timeout(deadline);
    assert_eq!(r.state(), State::Master);
    // Turning preemption off as master changes nothing now.
    r.handle(deadline, Input::SetPreempt(false));
    assert_eq!(r.state(), State::Master);
}

#[test]
fn preempt_off_at_run_time_closes_the_preempt_delay_window() {
    let mut c = cfg(150);
    c.preempt_delay = ms(2500);
    let mut r = VirtualRouter::new(c).unwrap();
    let t0 = Instant::now();
    r.handle(t0, Input::Startup);
    let lower = |r: &mut VirtualRouter, at| {
        r.handle(
            at,
            Input::Advertisement {
                src: peer(1),
                advert: adv(100),
            },
        )
    };
    lower(&mut r, t0 + ms(1000));
    assert_eq!(r.counters().preempt_delayed, 1);
    r.handle(t0 + ms(1500), Input::SetPreempt(false));
    lower(&mut r, t0 + ms(4000));
    // Held: accepted as with preemption off, not counted as delayed.
    assert_eq!(r.counters().preempt_delayed, 1);
    assert_eq!(r.counters().backup_discarded_lower, 0);
    // On again: a fresh window of 2.5 s from the next lower advert.
    r.handle(t0 + ms(4500), Input::SetPreempt(true));
    lower(&mut r, t0 + ms(5000));
    lower(&mut r, t0 + ms(7000));
    assert_eq!(r.counters().preempt_delayed, 3);
    lower(&mut r, t0 + ms(8000));
    assert_eq!(r.counters().backup_discarded_lower, 1);
}

#[test]
fn set_priority_master_advertises_the_new_value_and_a_higher_backup_preempts() {
    // RFC 5798 section 6.4: everything is computed from the current priority.
    let (mut r, t) = master(200);
    r.handle(t + ms(100), Input::SetPriority(50));
    assert_eq!(r.priority(), 50);
    assert_eq!(r.config().priority, 50);
    // Sent at once with the new value, Adver_Timer restarted.
    assert_eq!(drain(&mut r), ["send 50"]);
    assert_eq!(r.poll_timeout(), Some(t + ms(100) + ms(1000)));
    assert_eq!(r.state(), State::Master);
    // A backup at 100 now outranks us: its advert makes us step down (6.4.3 (740)-(765)).
    r.handle(
        t + ms(200),
        Input::Advertisement {
            src: peer(1),
            advert: adv(100),
        },
    );
    assert_eq!(r.state(), State::Backup);
    // The same value again sends nothing.
    r.handle(t + ms(300), Input::SetPriority(50));
    drain(&mut r);
    r.handle(t + ms(300), Input::SetPriority(50));
    assert!(drain(&mut r).is_empty());
}

#[test]
fn set_priority_raised_backup_preempts_a_lower_master() {
    let (mut r, t0) = started(100);
    let lower = |r: &mut VirtualRouter, at| {
        r.handle(
            at,
            Input::Advertisement {
                src: peer(1),
                advert: adv(150),
            },
        )
    };
    lower(&mut r, t0 + ms(1000));
    assert_eq!(
        r.poll_timeout(),
        Some(t0 + ms(1000) + r.master_down_interval())
    );
    r.handle(t0 + ms(1500), Input::SetPriority(200));
    assert!(drain(&mut r).is_empty(), "a backup sends nothing");
    // The master at 150 is now lower: discarded, and we take over when the timer runs out.
    lower(&mut r, t0 + ms(2000));
    assert_eq!(r.counters().backup_discarded_lower, 1);
    let t = r.poll_timeout().unwrap();
    r.handle_timeout(t);
    assert_eq!(r.state(), State::Master);
    assert_eq!(drain(&mut r)[0], "send 200");
}

#[test]
fn set_priority_refuses_the_owner_and_zero() {
    let (mut r, _) = started(100);
    for p in [0, 255] {
        r.handle(Instant::now(), Input::SetPriority(p));
    }
    assert_eq!(r.priority(), 100);
    assert_eq!(r.counters().inputs_refused, 2);
    let (mut o, _) = started(255);
    o.handle(Instant::now(), Input::SetPriority(100));
    assert_eq!(o.priority(), 255);
    assert_eq!(o.counters().inputs_refused, 1);
}
