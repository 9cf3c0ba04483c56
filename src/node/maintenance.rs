//! Keeping the routing table and the records current: managed connections
//! (keepalives, LEAVE, GIVE_VALUE), classic refresh and republish, and
//! down-lists. Which of these run is [`Maintenance`]'s choice.

use heapless::Vec;

use super::{Node, Notice, OUTBOUND_CAPACITY, Outbound, Outgoing};
use crate::config::Maintenance;
use crate::event::RemovalReason;
use crate::id::{Key, NodeId};
use crate::peer::{Address, Peer};
use crate::query::LookupKind;
use crate::routing::{Contact, Probe, ProbeKind, RemovedContact};
use crate::store::Store;
use crate::time::{Duration, Instant};
use crate::wire::Body;

/// When the first maintenance tick is due.
pub(super) fn first_tick(m: &Maintenance, now: Instant) -> Option<Instant> {
    match *m {
        Maintenance::Off => None,
        Maintenance::Managed {
            keepalive_interval, ..
        } => Some(now + keepalive_interval),
        Maintenance::Periodic {
            refresh_interval, ..
        }
        | Maintenance::DownList {
            refresh_interval, ..
        } => Some(now + refresh_interval),
    }
}

/// When the first republish is due.
pub(super) fn first_republish(m: &Maintenance, now: Instant) -> Option<Instant> {
    match *m {
        Maintenance::Periodic {
            republish_interval, ..
        }
        | Maintenance::DownList {
            republish_interval, ..
        } => Some(now + republish_interval),
        Maintenance::Off | Maintenance::Managed { .. } => None,
    }
}

/// When a managed contact is dead if it stays silent: δγ after it was last
/// heard from.
fn keepalive_deadline<A>(c: &Contact<A>, interval: Duration, max_missed: u8) -> Instant {
    c.last_seen + interval.saturating_mul(u64::from(max_missed))
}

/// Whether an eviction or promotion check of `c` is under way. It already
/// asks whether the contact lives, so it gets no keepalive until it ends: a
/// keepalive would replace it and lose its answer.
fn checked_otherwise<A>(c: &Contact<A>) -> bool {
    c.probe.is_some_and(|p| p.kind != ProbeKind::Keepalive)
}

/// What a hand-off is about.
#[derive(Clone, Debug)]
enum HandoffKind<A> {
    /// A contact joined: give it every record whose replica set it entered.
    Joined(Peer<A>),
    /// A contact left or died: for every record whose replica set it was in,
    /// give the record to the node that now completes that set.
    Departed(NodeId),
    /// A stored value changed: give it to the other members of its replica
    /// set, except the node the change came from.
    Changed { key: Key, except: NodeId },
}

/// A GIVE_VALUE hand-off in progress (MaidSafe paper, III-C). Records go out
/// one datagram at a time from `poll_transmit`, so a hand-off of a whole store
/// never needs a queue of datagrams.
#[derive(Clone, Debug)]
pub(crate) struct Handoff<A> {
    kind: HandoffKind<A>,
    /// Next record index (Joined, Departed) or replica index (Changed).
    cursor: usize,
}

impl<A> Handoff<A> {
    pub(crate) fn changed(key: Key, except: NodeId) -> Self {
        Handoff {
            kind: HandoffKind::Changed { key, except },
            cursor: 0,
        }
    }
}

impl<
    A: Address,
    S: Store,
    const K: usize,
    const B: usize,
    const L: usize,
    const C: usize,
    const I: usize,
> Node<A, S, K, B, L, C, I>
{
    /// Announces that this node leaves: every contact is sent a LEAVE (from
    /// `poll_transmit`), and all background maintenance stops. Peers drop the
    /// node at once instead of waiting for it to time out.
    pub fn leave(&mut self, now: Instant) {
        self.advance_clock(now);
        self.leave_cursor = Some(0);
        self.next_maintenance = None;
        self.next_republish = None;
        self.republish_cursor = None;
        self.handoffs.clear();
    }

    /// Whether `leave` was called.
    pub fn is_leaving(&self) -> bool {
        self.leave_cursor.is_some()
    }

    /// Runs the maintenance due at `now`: the keepalive tick or the bucket
    /// refresh, and the republish.
    pub(super) fn run_maintenance(&mut self, now: Instant) {
        if let Maintenance::Managed {
            keepalive_interval,
            max_missed,
        } = self.config.maintenance
            && self.leave_cursor.is_none()
        {
            self.keepalive_due(now, keepalive_interval, max_missed);
        }
        if self.next_maintenance.is_some_and(|t| t <= now) {
            match self.config.maintenance {
                Maintenance::Managed { .. } => self.next_maintenance = None,
                Maintenance::Periodic {
                    refresh_interval, ..
                }
                | Maintenance::DownList {
                    refresh_interval, ..
                } => {
                    self.start_refresh();
                    self.next_maintenance = Some(now + refresh_interval);
                }
                Maintenance::Off => self.next_maintenance = None,
            }
        }
        if self.next_republish.is_some_and(|t| t <= now)
            && let Maintenance::Periodic {
                republish_interval, ..
            }
            | Maintenance::DownList {
                republish_interval, ..
            } = self.config.maintenance
        {
            self.republish_cursor = Some(0);
            self.next_republish = Some(now + republish_interval);
        }
        self.drive_republish();
    }

    /// Whether a republish waits for a free lookup slot that exists now.
    pub(super) fn republish_ready(&self) -> bool {
        self.republish_cursor.is_some() && !self.lookups.is_full()
    }

    /// Managed connections: a contact last heard from at `t` is sent a
    /// keepalive at `t + γ`, `t + 2γ`, ... and is dead at `t + δγ` if it has
    /// not answered any of them nor sent anything else. So a crash is noticed
    /// at most δγ after the last message heard from the crashed node.
    fn keepalive_due(&mut self, now: Instant, interval: Duration, max_missed: u8) {
        let max_missed = max_missed.max(1);
        let (rng, metrics) = (&mut self.rng, &mut self.metrics);
        self.table.start_probes(now, |c| {
            if checked_otherwise(c) {
                return None;
            }
            let due = c.last_seen + interval.saturating_mul(u64::from(c.failures) + 1);
            if due > now || c.failures.saturating_add(1) >= max_missed {
                return None;
            }
            c.failures += 1;
            // A repeated keepalive reuses the outstanding one's transaction
            // id, so that a late PONG to the first still counts.
            let txid = match c.probe {
                Some(p) => p.txid,
                None => rng.next_txid(),
            };
            metrics.keepalives_sent += 1;
            Some(Probe {
                txid,
                sent_at: crate::routing::ProbeTime::at(now),
                kind: ProbeKind::Keepalive,
                sent: false,
            })
        });
        loop {
            let dead = self
                .table
                .iter()
                .find(|c| keepalive_deadline(c, interval, max_missed) <= now)
                .map(|c| c.peer.id);
            let Some(id) = dead else { break };
            if let Some(removed) = self.table.remove(&id, now) {
                self.on_removed(removed, RemovalReason::Dead);
            }
        }
    }

    /// When the next keepalive is due or a contact will be declared dead.
    pub(super) fn next_keepalive(&self) -> Option<Instant> {
        let Maintenance::Managed {
            keepalive_interval,
            max_missed,
        } = self.config.maintenance
        else {
            return None;
        };
        if self.leave_cursor.is_some() {
            return None;
        }
        let max_missed = max_missed.max(1);
        self.table
            .iter()
            .map(|c| {
                let dead = keepalive_deadline(c, keepalive_interval, max_missed);
                if checked_otherwise(c) {
                    // The probe's own deadline wakes the node.
                    return dead;
                }
                let next =
                    c.last_seen + keepalive_interval.saturating_mul(u64::from(c.failures) + 1);
                next.min(dead)
            })
            .min()
    }

    /// Classic refresh: the bootstrap's lookups (own id, then a random id in
    /// every bucket farther than the nearest neighbour) without the seeds.
    fn start_refresh(&mut self) {
        if self.table.is_empty() {
            return;
        }
        let width = self.b();
        match self.open_lookup(LookupKind::Bootstrap, self.id, width) {
            Ok(_) => {
                let li = self.lookups.len() - 1;
                self.lookups[li].internal = true;
                self.seed_candidates(li);
                self.advance(li);
            }
            Err(_) => self.metrics.maintenance_skipped += 1,
        }
    }

    /// Starts internal puts of stored records while lookup slots are free.
    fn drive_republish(&mut self) {
        while let Some(cursor) = self.republish_cursor {
            if self.table.is_empty() {
                // Nobody to republish to: this round is over.
                self.republish_cursor = None;
                return;
            }
            if self.lookups.is_full() {
                return;
            }
            let Some(key) = self.store.key_at(cursor) else {
                self.republish_cursor = None;
                return;
            };
            self.republish_cursor = Some(cursor + 1);
            let Some(record) = self.store.get(&key, self.now) else {
                continue;
            };
            let width = (self.config.replicas as usize).max(self.b()).min(C);
            if self
                .start_lookup(LookupKind::Put, key, width, Some(record))
                .is_ok()
            {
                if let Some(l) = self.lookups.last_mut() {
                    l.internal = true;
                }
                self.metrics.republished += 1;
            }
        }
    }

    /// A contact left the table: report it, and in managed mode hand its
    /// records' replica sets their new members.
    pub(super) fn on_removed(&mut self, removed: RemovedContact<A>, reason: RemovalReason) {
        debug!(
            "contact {:?} removed: {:?}",
            removed.contact.peer.id, reason
        );
        let id = removed.contact.peer.id;
        let notice = Notice {
            peer: removed.contact.peer,
            reason,
            replaced_by: removed.replaced_by.clone(),
        };
        if self.notices.push_back(notice).is_err() {
            self.metrics.events_dropped += 1;
        }
        if self.config.maintenance.is_managed() {
            self.queue_handoff(Handoff {
                kind: HandoffKind::Departed(id),
                cursor: 0,
            });
        }
        if let Some(promoted) = removed.replaced_by {
            // A cached replacement may have departed long after it was
            // cached: it must answer a PING before it counts (and, in managed
            // mode, before it is handed any record; see `on_added`).
            let txid = self.rng.next_txid();
            self.table
                .start_probe(&promoted.id, txid, self.now, ProbeKind::Verify, false);
        }
    }

    /// A contact joined the table.
    pub(super) fn on_added(&mut self, peer: Peer<A>) {
        if self.config.maintenance.is_managed() && !self.store.is_empty() {
            self.queue_handoff(Handoff {
                kind: HandoffKind::Joined(peer),
                cursor: 0,
            });
        }
    }

    pub(super) fn queue_handoff(&mut self, h: Handoff<A>) {
        if self.leave_cursor.is_some() {
            return;
        }
        if self.handoffs.push_back(h).is_err() {
            self.metrics.handoffs_dropped += 1;
        }
    }

    /// A down-list report: check the reported contact with a ping, and drop
    /// it if it does not answer. Reports are never trusted blindly, so a
    /// liar cannot empty a table.
    pub(super) fn on_down_report(&mut self, reporter: Peer<A>, dead: NodeId) {
        self.metrics.down_reports_received += 1;
        let _ = reporter;
        let Some(c) = self.table.get(&dead) else {
            return;
        };
        if c.probe.is_some() {
            // Already being checked.
            return;
        }
        // Without room in the reply queue, `probe` skips and counts the check.
        let peer = c.peer.clone();
        self.probe(peer);
    }

    /// A candidate did not answer: in down-list mode, tell whoever gave it to us.
    pub(super) fn report_down(&mut self, referrer: Option<Peer<A>>, dead: NodeId) {
        let (Maintenance::DownList { .. }, Some(referrer)) = (self.config.maintenance, referrer)
        else {
            return;
        };
        if self.outbound.len() + 1 >= OUTBOUND_CAPACITY {
            self.metrics.down_reports_skipped += 1;
            return;
        }
        let txid = self.rng.next_txid();
        let _ = self.outbound.push_back(Outgoing {
            to: referrer.addr,
            txid,
            what: Outbound::Down { dead },
        });
        self.metrics.down_reports_sent += 1;
    }

    /// Nodes of the replica set of `key`: the `replicas` closest among this
    /// node and its contacts. Returns the contacts in it (closest first) and
    /// whether this node is in it.
    fn replica_set(&self, key: &Key) -> (Vec<Peer<A>, C>, bool) {
        let replicas = (self.config.replicas as usize).clamp(1, C);
        let mut set: Vec<Peer<A>, C> = Vec::new();
        self.table.closest_into(key, replicas, None, &mut set);
        let me = self.id.distance(key);
        let self_rank = set
            .iter()
            .position(|p| p.id.distance(key) > me)
            .unwrap_or(set.len());
        let self_in = self_rank < replicas;
        if self_in && set.len() >= replicas {
            set.pop();
        }
        (set, self_in)
    }

    /// Whether this node is in the replica set of `key`, as far as it knows.
    pub(super) fn in_replica_set(&self, key: &Key) -> bool {
        self.replica_set(key).1
    }

    /// Whether no contact is closer to `key` than this node.
    pub(super) fn is_closest_known(&self, key: &Key) -> bool {
        let me = self.id.distance(key);
        self.table.iter().all(|c| c.peer.id.distance(key) > me)
    }

    /// The next GIVE_VALUE datagram, if a hand-off has one to send.
    pub(super) fn next_handoff(&mut self) -> Option<(A, u32, Body<A>)> {
        while let Some(h) = self.handoffs.front_mut() {
            let cursor = h.cursor;
            h.cursor += 1;
            let kind = h.kind.clone();
            let found = match kind {
                HandoffKind::Changed { key, except } => {
                    let (set, _) = self.replica_set(&key);
                    match set.get(cursor) {
                        None => None,
                        Some(p) if p.id == except => continue,
                        Some(p) => Some((p.clone(), key)),
                    }
                }
                HandoffKind::Joined(ref newcomer) => match self.store.key_at(cursor) {
                    None => None,
                    Some(key) => {
                        let (set, _) = self.replica_set(&key);
                        if set.iter().any(|p| p.id == newcomer.id) {
                            Some((newcomer.clone(), key))
                        } else {
                            continue;
                        }
                    }
                },
                HandoffKind::Departed(gone) => match self.store.key_at(cursor) {
                    None => None,
                    Some(key) => {
                        let (set, self_in) = self.replica_set(&key);
                        let replicas = (self.config.replicas as usize).clamp(1, C);
                        // If the set is full and `gone` was closer than its
                        // farthest member, that member just entered it.
                        let full = set.len() + usize::from(self_in) >= replicas;
                        let last = set.last().filter(|_| full);
                        match last {
                            Some(p) if gone.distance(&key) < p.id.distance(&key) => {
                                Some((p.clone(), key))
                            }
                            _ => continue,
                        }
                    }
                },
            };
            let Some((to, key)) = found else {
                self.handoffs.pop_front();
                continue;
            };
            let Some(record) = self.store.get(&key, self.now) else {
                continue;
            };
            self.metrics.values_handed_off += 1;
            return Some((to.addr, self.rng.next_txid(), Body::GiveValue { record }));
        }
        None
    }

    /// The next LEAVE datagram while leaving.
    pub(super) fn next_leave(&mut self) -> Option<(A, u32, Body<A>)> {
        let cursor = self.leave_cursor?;
        let Some(c) = self.table.iter().nth(cursor) else {
            // Everyone was told; stay in "leaving" so nothing else starts.
            return None;
        };
        let to = c.peer.addr.clone();
        self.leave_cursor = Some(cursor + 1);
        Some((to, self.rng.next_txid(), Body::Leave))
    }
}
