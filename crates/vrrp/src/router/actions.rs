//! What the router asks its runtime to do, queued in a small fixed ring.

use crate::wire::{Addresses, Advertisement, ChecksumForm};

use super::state::{Reason, State};

/// One thing the runtime must do, drained with
/// [`VirtualRouter::poll_action`](super::VirtualRouter::poll_action).
///
/// Borrowed from the router: the address bytes are encoded once at construction, so building
/// an action allocates nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action<'a> {
    /// Send this advertisement to the VRRP multicast group with this checksum form, from the
    /// primary address, TTL / hop limit 255.
    SendAdvertisement {
        /// The message (priority 0 when stepping down).
        advert: Advertisement<'a>,
        /// How to compute its checksum.
        checksum: ChecksumForm,
    },
    /// Add the virtual addresses to the interface (becoming master). An address that is
    /// already present (the owner's own address) is not an error.
    AddAddresses(Addresses<'a>),
    /// Remove the virtual addresses from the interface (leaving master).
    RemoveAddresses(Addresses<'a>),
    /// Announce the addresses: `count` gratuitous ARPs (IPv4) or unsolicited Neighbor
    /// Advertisements with the Router and Override flags (IPv6) for each address
    /// (RFC 5798 section 6.4.2 (375)-(395)).
    Announce {
        /// The addresses to announce.
        addresses: Addresses<'a>,
        /// Messages per address in this burst.
        count: u8,
    },
    /// The state changed.
    StateChanged {
        /// The state left.
        from: State,
        /// The state entered.
        to: State,
        /// Why.
        reason: Reason,
    },
}

/// An action without its borrow, as the ring stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pending {
    Send {
        priority: u8,
    },
    Add,
    Remove,
    Announce,
    StateChanged {
        from: State,
        to: State,
        reason: Reason,
    },
}

/// Capacity of the action ring: more than any single input or timeout produces (at most four:
/// send, add, announce, state change).
pub(crate) const QUEUE_LEN: usize = 16;

/// A fixed ring of pending actions: no allocation, ever.
#[derive(Clone, Debug)]
pub(crate) struct Queue {
    slots: [Pending; QUEUE_LEN],
    head: usize,
    len: usize,
}

impl Queue {
    pub(crate) fn new() -> Queue {
        Queue {
            slots: [Pending::Add; QUEUE_LEN],
            head: 0,
            len: 0,
        }
    }

    /// Appends; returns false (and stores nothing) when full.
    pub(crate) fn push(&mut self, p: Pending) -> bool {
        if self.len == QUEUE_LEN {
            return false;
        }
        let i = (self.head + self.len) % QUEUE_LEN;
        if let Some(slot) = self.slots.get_mut(i) {
            *slot = p;
            self.len += 1;
            true
        } else {
            false
        }
    }

    pub(crate) fn pop(&mut self) -> Option<Pending> {
        if self.len == 0 {
            return None;
        }
        let p = self.slots.get(self.head).copied();
        self.head = (self.head + 1) % QUEUE_LEN;
        self.len -= 1;
        p
    }

    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }
}

pub(crate) fn build<'a>(
    p: Pending,
    template: Advertisement<'a>,
    checksum: ChecksumForm,
    burst: u8,
) -> Action<'a> {
    match p {
        Pending::Send { priority } => Action::SendAdvertisement {
            advert: Advertisement {
                priority,
                ..template
            },
            checksum,
        },
        Pending::Add => Action::AddAddresses(template.addresses),
        Pending::Remove => Action::RemoveAddresses(template.addresses),
        Pending::Announce => Action::Announce {
            addresses: template.addresses,
            count: burst,
        },
        Pending::StateChanged { from, to, reason } => Action::StateChanged { from, to, reason },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_order_and_refuses_when_full() {
        let mut q = Queue::new();
        for i in 0..QUEUE_LEN {
            assert!(q.push(Pending::Send { priority: i as u8 }));
        }
        assert!(!q.push(Pending::Add));
        for i in 0..QUEUE_LEN {
            assert_eq!(q.pop(), Some(Pending::Send { priority: i as u8 }));
        }
        assert_eq!(q.pop(), None);
        // Wraps around.
        assert!(q.push(Pending::Remove));
        assert_eq!(q.pop(), Some(Pending::Remove));
    }
}
