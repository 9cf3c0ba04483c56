//! The core never touches the heap: a counting global allocator watches a
//! busy network of nodes and sees zero allocations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use microkad::transport::{MemoryHub, MemoryTransport, pump};
use microkad::{Config, Event, Instant, Key, Node, Record, Ttl};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    // Only this test's thread is watched: the test harness allocates freely
    // on its own threads.
    static WATCHING: Cell<bool> = const { Cell::new(false) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if WATCHING.with(|w| w.get()) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if WATCHING.with(|w| w.get()) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const N: usize = 12;
const MAX: usize = <u8 as microkad::Address>::MAX_MESSAGE_LEN;
type Kad = Node<u8>;

#[derive(Default)]
struct Tally {
    events: u32,
    values_found: u32,
    stored: u32,
}

/// Pumps every node until the hub is empty, then jumps the clock to the next
/// deadline; `rounds` times.
fn run(
    nodes: &mut [Kad; N],
    hub: &RefCell<MemoryHub<N, 32, MAX>>,
    now: &mut Instant,
    rounds: usize,
    tally: &mut Tally,
) {
    let mut buf = [0u8; MAX];
    for _ in 0..rounds {
        loop {
            for (i, node) in nodes.iter_mut().enumerate() {
                let mut t = MemoryTransport::new(hub, i as u8);
                let _ = pump(node, &mut t, *now, &mut buf, |e: Event<u8, 4>| {
                    tally.events += 1;
                    match e {
                        Event::GetFinished {
                            record: Some(_), ..
                        } => tally.values_found += 1,
                        Event::PutFinished { stored, .. } => tally.stored += stored as u32,
                        _ => {}
                    }
                });
            }
            if !hub.borrow().has_pending() {
                break;
            }
        }
        match nodes.iter().filter_map(|n| n.poll_timeout()).min() {
            Some(t) if t.as_millis() < now.as_millis() + 60_000 => *now = t.max(*now),
            _ => break,
        }
    }
}

#[test]
fn a_busy_network_never_allocates() {
    // Debug builds keep large temporaries on the stack: give the run room.
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(busy_network)
        .unwrap()
        .join()
        .unwrap();
}

fn busy_network() {
    let hub = RefCell::new(MemoryHub::<N, 32, MAX>::new());
    let config = Config {
        network_id: 3,
        ..Config::default()
    };
    let mut now = Instant::from_millis(1);
    let config = Config {
        maintenance: microkad::Maintenance::Off,
        ..config
    };
    let mut nodes: Box<[Kad; N]> = Box::new(core::array::from_fn(|i| {
        Kad::new(config.clone(), Key::hash(&[i as u8]), i as u64, now)
    }));
    let mut tally = Tally::default();

    WATCHING.with(|w| w.set(true));
    for i in 1..N {
        nodes[i].bootstrap(now, &[0]).unwrap();
        run(&mut nodes, &hub, &mut now, 50, &mut tally);
    }
    // Two records per node: within every store's capacity of 32, so every
    // get must succeed.
    for i in 0..N {
        for r in 0..2u8 {
            let record =
                Record::new(Key::hash(&[r, i as u8]), &[r; 32], Ttl::Seconds(6000)).unwrap();
            nodes[i].put(now, record).unwrap();
        }
        run(&mut nodes, &hub, &mut now, 50, &mut tally);
    }
    for round in 0..60u8 {
        for i in 0..N {
            let _ = nodes[(i + 1) % N].find_node(now, Key::hash(&[round, i as u8, 1]));
            // Hostile bytes too: the rejection path must not allocate either.
            let _ = nodes[i].handle_input(now, 200, &[1, 3, 0, 0, 0, 0, 9, 9]);
        }
        run(&mut nodes, &hub, &mut now, 50, &mut tally);
        for i in 0..N {
            let _ = nodes[i].get(now, Key::hash(&[round % 2, ((i + 5) % N) as u8]));
        }
        run(&mut nodes, &hub, &mut now, 50, &mut tally);
    }
    WATCHING.with(|w| w.set(false));

    let messages: u64 = nodes.iter().map(|n| n.metrics().datagrams_in).sum();
    let lookups: u64 = nodes.iter().map(|n| n.metrics().lookups_finished).sum();
    assert!(messages > 10_000, "only {messages} datagrams");
    assert!(lookups > 1_000, "only {lookups} lookups");
    assert_eq!(
        tally.values_found,
        60 * N as u32,
        "every get found its value"
    );
    assert!(
        tally.stored >= 2 * N as u32 * 4,
        "every put reached 4 replicas"
    );
    assert_eq!(ALLOCATIONS.load(Ordering::Relaxed), 0, "the core allocated");
}
