//! A share of the simulated nodes, run through a window of virtual time on
//! one thread while the other shares run on the others.
//!
//! Node `addr` lives in partition `addr % P`. No datagram arrives sooner
//! than the shortest delay after it is sent, so within a window no longer
//! than that delay the partitions cannot affect one another: each runs its
//! own events, queues the datagrams for its own nodes, and posts the others
//! in a mailbox that the simulator hands over when the window ends.
//!
//! Every event is ranked by a key that does not depend on the partitioning:
//! a datagram by its sender and the sender's count of datagrams sent (which
//! also seeds its loss and delay draws), a timer by its node. So a seed
//! gives the same run whatever the number of partitions.

use super::network::{Addr, Op, SimNode, value_for};
use super::queue::{EventQueue, Timed};
use super::report::{NetSummary, OpError};
use crate::event::Event;
use crate::peer::Address;
use crate::query::QueryId;
use crate::rng::Rng;
use crate::store::{Record, Store, Ttl};
use crate::time::Instant;
use crate::wire::MessageKind;
use std::cmp::Ordering;

/// What happens at a queued moment.
#[derive(Clone, Copy, Debug)]
pub(super) enum Action {
    /// A datagram arrives (it sits in the packet pool).
    Deliver { from: Addr, to: Addr, packet: u32 },
    /// `to` refused a datagram from `from`: `from` hears of it.
    Refused { from: Addr, to: Addr },
    /// A node's timer.
    Timer(Addr),
}

/// An entry of an event queue, ordered by time, then by `seq`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Scheduled<A> {
    pub(super) at: u64,
    pub(super) seq: u64,
    pub(super) action: A,
}

impl<A> PartialEq for Scheduled<A> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<A> Eq for Scheduled<A> {}
impl<A> PartialOrd for Scheduled<A> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<A> Ord for Scheduled<A> {
    fn cmp(&self, other: &Self) -> Ordering {
        // BinaryHeap is a max-heap: the earliest entry must compare greatest.
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

impl<A> Timed for Scheduled<A> {
    fn at(&self) -> u64 {
        self.at
    }
    fn seq(&self) -> u64 {
        self.seq
    }
}

/// Bits of a rank that hold the node address: ranks stay unique, and the
/// run independent of the partitioning, for up to 2^24 node addresses.
const ADDR_BITS: u32 = 24;

/// The rank of the `count`-th datagram sent by `from`.
fn datagram_rank(from: Addr, count: u64) -> u64 {
    (count << ADDR_BITS) | u64::from(from & ((1 << ADDR_BITS) - 1))
}

/// The rank of node `addr`'s timer: after every datagram due at the same
/// moment.
fn timer_rank(addr: Addr) -> u64 {
    (1 << 63) | u64::from(addr)
}

/// Datagrams in flight, in one growable arena of fixed-size slots.
struct PacketPool {
    data: Vec<u8>,
    lens: Vec<u16>,
    free: Vec<u32>,
}

const SLOT: usize = <Addr as Address>::MAX_MESSAGE_LEN;

impl PacketPool {
    fn new() -> Self {
        PacketPool {
            data: Vec::new(),
            lens: Vec::new(),
            free: Vec::new(),
        }
    }

    fn alloc(&mut self) -> u32 {
        match self.free.pop() {
            Some(i) => i,
            None => {
                let i = self.lens.len() as u32;
                self.lens.push(0);
                self.data.resize(self.data.len() + SLOT, 0);
                i
            }
        }
    }

    fn buf_mut(&mut self, i: u32) -> &mut [u8] {
        let s = i as usize * SLOT;
        &mut self.data[s..s + SLOT]
    }

    fn get(&self, i: u32) -> &[u8] {
        let s = i as usize * SLOT;
        &self.data[s..s + self.lens[i as usize] as usize]
    }

    fn release(&mut self, i: u32) {
        self.free.push(i);
    }
}

/// Datagrams posted by one partition to another during a window.
pub(super) struct Mail {
    /// (arrival, rank, from, to, end of its bytes in `bytes`).
    posted: Vec<(u64, u64, Addr, Addr, u32)>,
    bytes: Vec<u8>,
    /// The earliest arrival posted (`u64::MAX`: none).
    earliest: u64,
}

impl Default for Mail {
    fn default() -> Self {
        Mail {
            posted: Vec::new(),
            bytes: Vec::new(),
            earliest: u64::MAX,
        }
    }
}

impl Mail {
    fn clear(&mut self) {
        self.posted.clear();
        self.bytes.clear();
        self.earliest = u64::MAX;
    }
}

/// How the network treats a datagram: a copy of the simulator's parameters.
#[derive(Clone, Copy, Debug)]
pub(super) struct NetParams {
    /// Seeds each datagram's loss and delay draws.
    pub(super) seed: u64,
    pub(super) loss: f64,
    pub(super) fast_share: f64,
    pub(super) delay_min: u64,
    pub(super) delay_span: u64,
    /// Offset of the message-type byte in every datagram.
    pub(super) kind_offset: usize,
}

impl<S, const K: usize, const B: usize, const L: usize, const C: usize, const I: usize>
    super::crew::Windowed for Partition<S, K, B, L, C, I>
where
    S: Store + Default + Send,
{
    fn run_window(&mut self, end: u64) {
        Partition::run_window(self, end);
    }
}

/// An operation the simulator hands to a node of this partition: it starts
/// when the next window begins, before anything else due then, as it would
/// have between windows. The node's work (seeding the lookup from its table,
/// encoding the first requests) then runs in parallel with the other
/// partitions instead of on the simulator's thread.
pub(super) struct Command {
    /// The operation's index in the simulator's records.
    pub(super) op: u32,
    pub(super) addr: Addr,
    pub(super) at: u64,
    pub(super) what: Op,
}

/// What a command did, with the node events it caused at once.
pub(super) struct Started<const K: usize> {
    pub(super) op: u32,
    pub(super) addr: Addr,
    pub(super) at: u64,
    pub(super) result: Result<QueryId, OpError>,
    pub(super) events: Vec<Event<Addr, K>>,
}

/// A node's event, with the moment and the rank of what caused it.
pub(super) struct NodeEvent<const K: usize> {
    pub(super) at: u64,
    pub(super) rank: u64,
    pub(super) addr: Addr,
    pub(super) event: Event<Addr, K>,
}

/// The nodes `addr ≡ index (mod count)`, with their queue, datagrams in
/// flight and counters.
pub(super) struct Partition<
    S,
    const K: usize,
    const B: usize,
    const L: usize,
    const C: usize,
    const I: usize,
> where
    S: Store + Default + Send,
{
    index: u32,
    count: u32,
    /// Node `addr` sits at `addr / count`.
    nodes: Vec<Option<Box<SimNode<S, K, B, L, C, I>>>>,
    /// The timer each node has in the queue (`u64::MAX`: none).
    timers: Vec<u64>,
    /// Datagrams each node has sent.
    sent: Vec<u64>,
    queue: EventQueue<Scheduled<Action>>,
    packets: PacketPool,
    net: NetParams,
    /// Traffic counted here (the simulator adds the partitions up).
    pub(super) summary: NetSummary,
    /// Mail to each other partition, by its index.
    outbox: Vec<Mail>,
    /// Mail from each other partition, by its index, not yet queued.
    inbound: Vec<Mail>,
    /// Node events of the current window, for the simulator to handle.
    pub(super) events: Vec<NodeEvent<K>>,
    /// Operations to start when the next window begins, in the order the
    /// simulator scheduled them.
    pub(super) commands: Vec<Command>,
    /// Commands run in the current window, for the simulator to record.
    pub(super) started: Vec<Started<K>>,
    /// The rank of the entry being handled (0 outside a window).
    rank: u64,
}

impl<S, const K: usize, const B: usize, const L: usize, const C: usize, const I: usize>
    Partition<S, K, B, L, C, I>
where
    S: Store + Default + Send,
{
    pub(super) fn new(index: usize, count: usize, net: NetParams) -> Self {
        Partition {
            index: index as u32,
            count: count as u32,
            nodes: Vec::new(),
            timers: Vec::new(),
            sent: Vec::new(),
            queue: EventQueue::new(),
            packets: PacketPool::new(),
            net,
            summary: NetSummary::default(),
            outbox: (0..count).map(|_| Mail::default()).collect(),
            inbound: (0..count).map(|_| Mail::default()).collect(),
            events: Vec::new(),
            commands: Vec::new(),
            started: Vec::new(),
            rank: 0,
        }
    }

    fn slot(&self, addr: Addr) -> usize {
        debug_assert_eq!(addr % self.count, self.index);
        (addr / self.count) as usize
    }

    /// Node `addr` (of this partition), if alive.
    pub(super) fn node(&self, addr: Addr) -> Option<&SimNode<S, K, B, L, C, I>> {
        self.nodes.get(self.slot(addr))?.as_deref()
    }

    /// Node `addr` (of this partition), mutably, if alive.
    pub(super) fn node_mut(&mut self, addr: Addr) -> Option<&mut SimNode<S, K, B, L, C, I>> {
        let slot = self.slot(addr);
        self.nodes.get_mut(slot)?.as_deref_mut()
    }

    /// The live nodes of this partition.
    pub(super) fn nodes(&self) -> impl Iterator<Item = &SimNode<S, K, B, L, C, I>> {
        self.nodes.iter().flatten().map(|n| &**n)
    }

    /// Adds node `addr`, the next address of this partition.
    pub(super) fn add(&mut self, addr: Addr, node: Box<SimNode<S, K, B, L, C, I>>) {
        assert_eq!(self.slot(addr), self.nodes.len(), "addresses in order");
        self.nodes.push(Some(node));
        self.timers.push(u64::MAX);
        self.sent.push(0);
    }

    /// Takes node `addr` out: it is dead from now on.
    pub(super) fn remove(&mut self, addr: Addr) -> Option<Box<SimNode<S, K, B, L, C, I>>> {
        let slot = self.slot(addr);
        let node = self.nodes.get_mut(slot)?.take()?;
        self.timers[slot] = u64::MAX;
        Some(node)
    }

    /// When the earliest event of this partition is due, mail and
    /// commands included.
    pub(super) fn next_at(&self) -> Option<u64> {
        let mail = self.inbound.iter().map(|m| m.earliest).min();
        let command = self.commands.iter().map(|c| c.at).min();
        [
            self.queue.next_at(),
            mail.filter(|&m| m != u64::MAX),
            command,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Commands queued for node `addr` and not run yet.
    pub(super) fn commands_for(&self, addr: Addr) -> usize {
        self.commands.iter().filter(|c| c.addr == addr).count()
    }

    /// Runs the queued commands, each at its moment, before the events due
    /// then (the simulator ends every window where a command is due).
    fn run_commands(&mut self) {
        let mut commands = std::mem::take(&mut self.commands);
        for Command { op, addr, at, what } in commands.drain(..) {
            let now = Instant::from_millis(at);
            let result = match self.node_mut(addr) {
                None => Err(OpError::NoNode),
                Some(node) => match what {
                    Op::FindNode { target, .. } => node.find_node(now, target),
                    Op::Get { key, .. } => node.get(now, key),
                    Op::Put { key, len, .. } => {
                        let record = Record::new(key, &value_for(&key, len), Ttl::Never)
                            .expect("value length within MAX_VALUE_LEN");
                        node.put(now, record)
                    }
                    // Joins pick their seeds on the simulator's thread and
                    // start there.
                    Op::Join { .. } => unreachable!("joins are not commands"),
                }
                .map_err(OpError::Command),
            };
            let mut events = Vec::new();
            if result.is_ok() {
                // As between windows: events caused here rank first.
                self.rank = 0;
                let before = self.events.len();
                self.flush(addr, at);
                events.extend(self.events.drain(before..).map(|e| e.event));
            }
            self.started.push(Started {
                op,
                addr,
                at,
                result,
                events,
            });
        }
        // Keeps the allocation.
        self.commands = commands;
    }

    /// Hands the mail this partition posted to `to` over to it.
    pub(super) fn deliver_mail(from: &mut Self, to: &mut Self) {
        let (f, t) = (from.index as usize, to.index as usize);
        let (posted, received) = (&mut from.outbox[t], &mut to.inbound[f]);
        if received.posted.is_empty() {
            // The usual case: swap the buffers, keeping both allocations.
            std::mem::swap(posted, received);
        } else {
            // Mail not yet opened (no window ran since): append.
            let base = received.bytes.len() as u32;
            received.bytes.append(&mut posted.bytes);
            received.posted.extend(
                posted
                    .posted
                    .drain(..)
                    .map(|(at, seq, from, to, end)| (at, seq, from, to, base + end)),
            );
            received.earliest = received.earliest.min(posted.earliest);
            posted.clear();
        }
    }

    /// Queues the mail received.
    fn open_mail(&mut self) {
        let mut inbound = std::mem::take(&mut self.inbound);
        for mail in &mut inbound {
            let mut start = 0;
            for &(at, seq, from, to, end) in &mail.posted {
                let packet = self.packets.alloc();
                let len = end as usize - start;
                self.packets.buf_mut(packet)[..len]
                    .copy_from_slice(&mail.bytes[start..end as usize]);
                self.packets.lens[packet as usize] = len as u16;
                start = end as usize;
                let action = Action::Deliver { from, to, packet };
                self.queue.push(Scheduled { at, seq, action });
            }
            mail.clear();
        }
        self.inbound = inbound;
    }

    /// Runs every event due before `end`. No event handled here can cause
    /// another partition's event before `end`.
    pub(super) fn run_window(&mut self, end: u64) {
        self.open_mail();
        self.run_commands();
        while let Some(ev) = self.queue.pop_before(end) {
            self.rank = ev.seq;
            let now = Instant::from_millis(ev.at);
            match ev.action {
                Action::Deliver { from, to, packet } => self.deliver(now, from, to, packet),
                Action::Refused { from, to } => {
                    if let Some(node) = self.node_mut(from) {
                        node.handle_unreachable(now, &to);
                        self.flush(from, ev.at);
                    }
                }
                Action::Timer(addr) => self.timer(addr, ev.at),
            }
        }
        self.rank = 0;
    }

    fn deliver(&mut self, now: Instant, from: Addr, to: Addr, packet: u32) {
        let slot = self.slot(to);
        let Some(node) = self.nodes[slot].as_deref_mut() else {
            self.packets.release(packet);
            self.summary.to_dead += 1;
            return;
        };
        let bytes = self.packets.get(packet);
        let response = bytes
            .get(self.net.kind_offset)
            .is_some_and(|&k| is_response(k));
        let result = node.handle_input(now, from, bytes);
        self.packets.release(packet);
        let s = &mut self.summary;
        s.delivered += 1;
        match result {
            Ok(()) if response => s.exchanges_ok += 1,
            Ok(()) => {}
            Err(_) => s.rejected += 1,
        }
        self.flush(to, now.as_millis());
    }

    fn timer(&mut self, addr: Addr, at: u64) {
        let slot = self.slot(addr);
        // Entries superseded by an earlier wakeup are skipped.
        if self.timers[slot] != at {
            return;
        }
        self.timers[slot] = u64::MAX;
        let Some(node) = self.nodes[slot].as_deref_mut() else {
            return;
        };
        let now = Instant::from_millis(at);
        if node.poll_timeout().is_some_and(|t| t <= now) {
            node.handle_timeout(now);
            self.summary.timers += 1;
        }
        self.flush(addr, at);
        // A node whose deadline stays due would spin: retry later.
        if self.timers[slot] == at {
            self.timers[slot] = at + 1;
            let (at, seq) = (at + 1, timer_rank(addr));
            self.queue.push(Scheduled {
                at,
                seq,
                action: Action::Timer(addr),
            });
        }
    }

    /// Moves node `addr`'s output into the network: every datagram it wants
    /// to send, every event (into `events`), and its next timer.
    pub(super) fn flush(&mut self, addr: Addr, now: u64) {
        let slot = self.slot(addr);
        let Some(node) = self.nodes[slot].as_deref_mut() else {
            return;
        };
        loop {
            let packet = self.packets.alloc();
            match node.poll_transmit(self.packets.buf_mut(packet)) {
                Some(t) => {
                    self.packets.lens[packet as usize] = t.len as u16;
                    let count = self.sent[slot];
                    self.sent[slot] += 1;
                    send(
                        &self.net,
                        &mut self.summary,
                        &mut self.queue,
                        &mut self.packets,
                        &mut self.outbox,
                        self.count,
                        self.index,
                        Datagram {
                            now,
                            from: addr,
                            to: t.destination,
                            packet,
                            rank: datagram_rank(addr, count),
                        },
                    );
                }
                None => {
                    self.packets.release(packet);
                    break;
                }
            }
        }
        while let Some(event) = node.poll_event() {
            self.events.push(NodeEvent {
                at: now,
                rank: self.rank,
                addr,
                event,
            });
        }
        // A deadline in the past is due now. A wakeup already queued for an
        // earlier time is kept: calling `handle_timeout` early is harmless,
        // and the node is asked again then. So deadlines that move later
        // (every answer pushes a lookup's back) cost no queue entry.
        let next = node
            .poll_timeout()
            .map_or(u64::MAX, |t| t.as_millis().max(now));
        if next < self.timers[slot] {
            self.timers[slot] = next;
            self.queue.push(Scheduled {
                at: next,
                seq: timer_rank(addr),
                action: Action::Timer(addr),
            });
        }
    }
}

/// A datagram a node just emitted.
struct Datagram {
    now: u64,
    from: Addr,
    to: Addr,
    packet: u32,
    rank: u64,
}

/// Counts a datagram, then loses, refuses, queues or posts it. A free
/// function so that it can borrow the partition's parts while a node is
/// borrowed too.
#[allow(clippy::too_many_arguments)]
fn send(
    net: &NetParams,
    summary: &mut NetSummary,
    queue: &mut EventQueue<Scheduled<Action>>,
    packets: &mut PacketPool,
    outbox: &mut [Mail],
    count: u32,
    index: u32,
    d: Datagram,
) {
    let bytes = packets.get(d.packet);
    let len = bytes.len();
    summary.sent += 1;
    summary.bytes_sent += len as u64;
    if let Some(&k) = bytes.get(net.kind_offset) {
        let k = k as usize;
        if summary.per_kind.len() <= k {
            summary.per_kind.resize(k + 1, (0, 0));
        }
        summary.per_kind[k].0 += 1;
        summary.per_kind[k].1 += len as u64;
    }
    // The draws depend on the datagram alone, not on what the partition
    // handled before it.
    let mut rng = Rng::new(super::network::mix(net.seed, d.from.into(), d.rank));
    if net.loss > 0.0 && unit(&mut rng) < net.loss {
        packets.release(d.packet);
        if net.fast_share > 0.0 && unit(&mut rng) < net.fast_share {
            summary.refused += 1;
            let action = Action::Refused {
                from: d.from,
                to: d.to,
            };
            queue.push(Scheduled {
                at: d.now,
                seq: d.rank,
                action,
            });
        } else {
            summary.lost += 1;
        }
        return;
    }
    let at = d.now + net.delay_min + rng.below(net.delay_span + 1);
    let home = d.to % count;
    if home == index {
        let action = Action::Deliver {
            from: d.from,
            to: d.to,
            packet: d.packet,
        };
        queue.push(Scheduled {
            at,
            seq: d.rank,
            action,
        });
    } else {
        let mail = &mut outbox[home as usize];
        mail.bytes.extend_from_slice(bytes);
        mail.posted
            .push((at, d.rank, d.from, d.to, mail.bytes.len() as u32));
        mail.earliest = mail.earliest.min(at);
        packets.release(d.packet);
    }
}

/// A uniform draw from `[0, 1)`.
pub(super) fn unit(rng: &mut Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Whether a message-type byte names a response.
fn is_response(kind: u8) -> bool {
    MessageKind::ALL
        .get(kind as usize)
        .is_some_and(|k| k.is_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_are_unique_and_timers_come_after_datagrams() {
        let senders = [0, 1, 5, (1 << ADDR_BITS) - 1];
        let counts = [0, 1, 2, 1 << 20];
        let mut ranks: Vec<u64> = senders
            .iter()
            .flat_map(|&from| counts.iter().map(move |&n| datagram_rank(from, n)))
            .collect();
        // A sender's datagrams keep their order, whoever sent them.
        assert!(datagram_rank(5, 1) < datagram_rank(5, 2));
        assert!(datagram_rank(5, 1) < datagram_rank(0, 2));
        assert!(datagram_rank(0, 0) < datagram_rank(1, 0));
        let timers: Vec<u64> = senders.iter().map(|&a| timer_rank(a)).collect();
        let latest_datagram = *ranks.iter().max().unwrap();
        assert!(timers.iter().all(|&t| t > latest_datagram), "{timers:x?}");
        ranks.extend(&timers);
        let all = ranks.len();
        ranks.sort_unstable();
        ranks.dedup();
        assert_eq!(ranks.len(), all, "no two events share a rank");
    }

    #[test]
    fn scheduled_entries_are_equal_when_they_tie_in_order() {
        let entry = |at, seq, node| Scheduled {
            at,
            seq,
            action: Action::Timer(node),
        };
        assert_eq!(entry(5, 1, 0), entry(5, 1, 9), "the action is not compared");
        assert_ne!(entry(5, 1, 0), entry(5, 2, 0));
        assert_ne!(entry(5, 1, 0), entry(6, 1, 0));
        // A max-heap pops the earliest first.
        assert!(entry(5, 9, 0) > entry(6, 0, 0));
        assert!(entry(5, 1, 0) > entry(5, 2, 0));
    }

    #[test]
    fn the_packet_pool_reuses_released_slots() {
        let mut pool = PacketPool::new();
        let a = pool.alloc();
        let b = pool.alloc();
        assert_ne!(a, b);
        pool.buf_mut(b)[..3].copy_from_slice(b"abc");
        pool.lens[b as usize] = 3;
        assert_eq!(pool.get(b), b"abc");
        assert_eq!(pool.buf_mut(a).len(), SLOT);
        pool.release(a);
        assert_eq!(pool.alloc(), a, "a released slot is taken again");
        assert_eq!(pool.data.len(), 2 * SLOT, "and the arena did not grow");
        assert_eq!(pool.get(b), b"abc");
    }
}
