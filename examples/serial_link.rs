//! Two nodes joined by a serial link: each end is a [`SerialTransport`] over
//! an in-memory byte pipe standing in for a UART. The right node joins
//! through the left one, stores a value, and reads it back from the network.
//!
//! ```text
//! cargo run --example serial_link
//! RUST_LOG=trace cargo run --example serial_link --features log   # every frame
//! ```
//!
//! The pipe implements `embedded_io::{Read, Write, ReadReady}`, exactly what a
//! HAL's UART driver provides, so the same code runs on a microcontroller.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::rc::Rc;

use microkad::transport::serial::SerialError;
use microkad::transport::{SerialTransport, pump};
use microkad::{Address, Config, Event, Instant, Key, Node, Record, Ttl};

/// One end of a byte pipe: reads what the other end writes.
struct PipeEnd {
    rx: Rc<RefCell<VecDeque<u8>>>,
    tx: Rc<RefCell<VecDeque<u8>>>,
}

fn pipe() -> (PipeEnd, PipeEnd) {
    let (ab, ba) = (Rc::default(), Rc::default());
    let a = PipeEnd {
        rx: Rc::clone(&ba),
        tx: Rc::clone(&ab),
    };
    (a, PipeEnd { rx: ab, tx: ba })
}

impl embedded_io::ErrorType for PipeEnd {
    type Error = Infallible;
}

impl embedded_io::Read for PipeEnd {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        let mut rx = self.rx.borrow_mut();
        let n = buf.len().min(rx.len());
        for (dst, src) in buf.iter_mut().zip(rx.drain(..n)) {
            *dst = src;
        }
        Ok(n)
    }
}

impl embedded_io::ReadReady for PipeEnd {
    fn read_ready(&mut self) -> Result<bool, Infallible> {
        Ok(!self.rx.borrow().is_empty())
    }
}

impl embedded_io::Write for PipeEnd {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        self.tx.borrow_mut().extend(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}

type SerialNode = Node<u8>;
type Link = SerialTransport<PipeEnd>;

/// Pumps both nodes until `want` matches an event, on a virtual clock that
/// jumps to the next deadline whenever no byte is on the wire.
fn run_until(
    nodes: &mut [(SerialNode, Link); 2],
    now: &mut Instant,
    want: impl Fn(&Event<u8, 4>) -> bool,
) -> Event<u8, 4> {
    let mut buf = [0u8; <u8 as Address>::MAX_MESSAGE_LEN];
    loop {
        let mut found = None;
        let mut next: Option<Instant> = None;
        for (i, (node, link)) in nodes.iter_mut().enumerate() {
            let deadline = match pump(node, link, *now, &mut buf, |e| {
                println!("  node {i}: {e:?}");
                if want(&e) {
                    found = Some(e);
                }
            }) {
                Ok(t) => t,
                // A bad frame was dropped and the link resynchronised.
                Err(SerialError::Frame(e)) => {
                    println!("  node {i}: rejected frame: {e}");
                    Some(*now)
                }
                Err(SerialError::Io(never)) => match never {},
            };
            next = next.into_iter().chain(deadline).min();
        }
        if let Some(e) = found {
            return e;
        }
        let on_wire = nodes
            .iter()
            .any(|(_, l)| !l.get_ref().rx.borrow().is_empty());
        if !on_wire {
            *now = (*now).max(next.expect("a deadline is pending"));
        }
    }
}

fn main() {
    #[cfg(feature = "log")]
    env_logger::init();

    let (left_end, right_end) = pipe();
    let mut now = Instant::ZERO;
    let config = Config {
        network_id: 0x5e71a1,
        ..Config::default()
    };
    // Each node names the other end of its link: left calls right 1, right
    // calls left 0.
    let mut nodes = [
        (
            SerialNode::new(config.clone(), Key::hash(b"left"), 1, now),
            SerialTransport::new(left_end, 1),
        ),
        (
            SerialNode::new(config, Key::hash(b"right"), 2, now),
            SerialTransport::new(right_end, 0),
        ),
    ];

    println!("right joins through the link");
    nodes[1].0.bootstrap(now, &[0]).expect("bootstrap");
    run_until(&mut nodes, &mut now, |e| {
        matches!(e, Event::Bootstrapped { .. })
    });

    let record = Record::new(Key::hash(b"sensor/7"), b"21.5 C", Ttl::Seconds(600)).unwrap();
    println!("right stores sensor/7 = \"21.5 C\"");
    nodes[1].0.put(now, record.clone()).expect("put");
    run_until(&mut nodes, &mut now, |e| {
        matches!(e, Event::PutFinished { .. })
    });

    println!("right reads sensor/7 back from the network");
    nodes[1].0.get(now, record.key).expect("get");
    let event = run_until(&mut nodes, &mut now, |e| {
        matches!(e, Event::GetFinished { .. })
    });
    let Event::GetFinished {
        record: Some(found),
        ..
    } = event
    else {
        panic!("sensor/7 not found: {event:?}")
    };
    // The record lives on left, across the link.
    assert!(nodes[0].0.get_local(&record.key).is_some());
    println!(
        "got \"{}\" after {} ms of virtual time",
        String::from_utf8_lossy(&found.value),
        now.as_millis()
    );
    for (i, (_, link)) in nodes.iter().enumerate() {
        println!("link {i}: {:?}", link.stats());
    }
    assert_eq!(found.value, record.value);
}
