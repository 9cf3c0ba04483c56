//! The serial transport: framing errors are typed and the link recovers at
//! the next frame; two nodes exchange a value over a byte pipe.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::rc::Rc;

use microkad::transport::serial::{
    self, FrameDecoder, FrameError, RX_CHUNK, SerialError, SerialTransport, encode_frame,
    frame_capacity,
};
use microkad::transport::{Transport, pump};
use microkad::{Config, Event, Instant, Key, Node, Record, Ttl};

/// One end of an in-memory byte pipe.
struct End {
    rx: Rc<RefCell<VecDeque<u8>>>,
    tx: Rc<RefCell<VecDeque<u8>>>,
}

fn pipe() -> (End, End) {
    let (a, b) = (Rc::default(), Rc::default());
    (
        End {
            rx: Rc::clone(&a),
            tx: Rc::clone(&b),
        },
        End { rx: b, tx: a },
    )
}

impl End {
    /// Writes raw bytes into the other end's input, bypassing the framing.
    fn inject(&self, bytes: &[u8]) {
        self.tx.borrow_mut().extend(bytes);
    }
}

impl embedded_io::ErrorType for End {
    type Error = Infallible;
}

impl embedded_io::Read for End {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        let mut rx = self.rx.borrow_mut();
        let n = buf.len().min(rx.len());
        for (dst, src) in buf.iter_mut().zip(rx.drain(..n)) {
            *dst = src;
        }
        Ok(n)
    }
}

impl embedded_io::ReadReady for End {
    fn read_ready(&mut self) -> Result<bool, Infallible> {
        Ok(!self.rx.borrow().is_empty())
    }
}

impl embedded_io::Write for End {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        self.tx.borrow_mut().extend(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}

type Link = SerialTransport<End, 128>;

fn link() -> (Link, Link, End) {
    let (a, b) = pipe();
    // A third handle on a's side, to write raw bytes towards b.
    let raw = End {
        rx: Rc::new(RefCell::new(VecDeque::new())),
        tx: Rc::clone(&a.tx),
    };
    (SerialTransport::new(a, 1), SerialTransport::new(b, 0), raw)
}

fn frame(datagram: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; frame_capacity(datagram.len())];
    let n = encode_frame(datagram, &mut out).unwrap();
    out.truncate(n);
    out
}

/// Receives on `t` until its pipe is empty: every datagram and error, in
/// order. (`try_recv` may return `None` early, after a bounded amount of
/// reading.)
fn drain(t: &mut Link) -> Vec<Result<Vec<u8>, FrameError>> {
    let mut buf = [0u8; 128];
    let mut out = Vec::new();
    loop {
        match t.try_recv(&mut buf) {
            Ok(Some((len, from))) => {
                assert_eq!(from, t.peer());
                out.push(Ok(buf[..len].to_vec()));
            }
            Ok(None) if t.get_ref().rx.borrow().is_empty() => return out,
            Ok(None) => {}
            Err(SerialError::Frame(e)) => out.push(Err(e)),
            Err(SerialError::Io(e)) => match e {},
        }
    }
}

#[test]
fn datagrams_cross_the_link_in_order_including_zero_bytes() {
    let (mut a, mut b, _) = link();
    a.send(&1, b"hello").unwrap();
    a.send(&1, &[0, 0, 0]).unwrap();
    a.send(&1, &[]).unwrap();
    b.send(&0, b"back").unwrap();
    assert_eq!(
        drain(&mut b),
        vec![Ok(b"hello".to_vec()), Ok(vec![0, 0, 0]), Ok(vec![])]
    );
    assert_eq!(drain(&mut a), vec![Ok(b"back".to_vec())]);
    assert_eq!(a.stats().frames_out, 3);
    assert_eq!(b.stats().frames_in, 3);
}

#[test]
fn a_frame_split_across_reads_is_reassembled() {
    let (_, mut b, raw) = link();
    let f = frame(&[9u8; 100]);
    let mut buf = [0u8; 128];
    for chunk in f.chunks(7) {
        assert_eq!(b.try_recv(&mut buf).unwrap(), None);
        raw.inject(chunk);
    }
    assert_eq!(b.try_recv(&mut buf).unwrap(), Some((100, 0)));
    assert_eq!(&buf[..100], &[9u8; 100]);
}

#[test]
fn garbage_is_rejected_with_typed_errors_and_the_next_frame_survives() {
    let (_, mut b, raw) = link();
    // A COBS code byte promising more bytes than arrive before the zero.
    raw.inject(&[0x05, 1, 2, 0]);
    // Well-formed COBS, but not a checksummed frame.
    raw.inject(&[0x03, b'a', b'b', 0]);
    // Well-formed COBS, shorter than a checksum.
    raw.inject(&[0x02, 7, 0]);
    // Zeros alone are empty frames: ignored.
    raw.inject(&[0, 0, 0]);
    raw.inject(&frame(b"intact"));
    assert_eq!(
        drain(&mut b),
        vec![
            Err(FrameError::Malformed),
            Err(FrameError::Checksum),
            Err(FrameError::TooShort),
            Ok(b"intact".to_vec()),
        ]
    );
    let s = b.stats();
    assert_eq!(
        (s.malformed, s.checksum, s.too_short, s.frames_in),
        (1, 1, 1, 1)
    );
}

#[test]
fn an_endless_stream_is_read_two_frames_at_a_time() {
    let (_, mut b, raw) = link();
    // No zero byte: one frame that never ends, always more to read.
    let total = 100 * 128;
    raw.inject(&vec![0x42; total]);
    let mut buf = [0u8; 128];
    let mut calls = 0;
    loop {
        let before = b.get_ref().rx.borrow().len();
        if before == 0 {
            break;
        }
        assert!(matches!(b.try_recv(&mut buf), Ok(None)));
        calls += 1;
        let read = before - b.get_ref().rx.borrow().len();
        // Enough for two whole frames of the buffer's size, so that a frame
        // behind garbage is not starved; bounded, so that the caller gets
        // back to its timers.
        assert!(
            read >= before.min(2 * 128) && read <= 2 * 128 + RX_CHUNK,
            "{read} bytes in call {calls}"
        );
    }
    assert!(calls >= total / (2 * 128 + RX_CHUNK));
    assert_eq!(b.stats().frames_in, 0);
}

#[test]
fn random_garbage_never_yields_a_datagram_and_never_blocks_the_next_frame() {
    let (_, mut b, raw) = link();
    // A fixed xorshift sequence: the same garbage on every run.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..500 {
        let len = (next() % 300) as usize;
        let garbage: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        raw.inject(&garbage);
        let payload = format!("frame {round}");
        raw.inject(&frame(payload.as_bytes()));
        let got = drain(&mut b);
        let (ok, errors): (Vec<_>, Vec<_>) = got.into_iter().partition(|r| r.is_ok());
        assert_eq!(ok, vec![Ok(payload.into_bytes())], "round {round}");
        assert!(errors.len() <= len, "round {round}: {errors:?}");
    }
}

#[test]
fn truncated_frames_are_rejected_and_the_next_frame_survives() {
    let (_, mut b, raw) = link();
    // Long enough to span several COBS blocks' worth of code bytes.
    let datagram: Vec<u8> = (0..120u8)
        .map(|i| if i % 10 == 0 { 0 } else { i })
        .collect();
    let full = frame(&datagram);
    // Cut after the leading zero and at least one byte, before the closing zero.
    for cut in 2..full.len() - 1 {
        raw.inject(&full[..cut]);
        // The sender restarts: the next frame's leading zero closes the stub.
        raw.inject(&frame(b"next"));
        let got = drain(&mut b);
        assert_eq!(got.len(), 2, "cut at {cut}: {got:?}");
        assert!(
            matches!(
                got[0],
                Err(FrameError::Malformed | FrameError::Checksum | FrameError::TooShort)
            ),
            "cut at {cut}: {got:?}"
        );
        assert_eq!(got[1], Ok(b"next".to_vec()), "cut at {cut}");
    }
    // Bytes lost in the middle of a frame are caught too.
    for hole in 1..full.len() - 2 {
        let mut damaged = full.clone();
        damaged.remove(hole);
        raw.inject(&damaged);
        raw.inject(&frame(b"next"));
        let got = drain(&mut b);
        assert_eq!(got.len(), 2, "hole at {hole}: {got:?}");
        assert!(got[0].is_err(), "hole at {hole}: {got:?}");
        assert_eq!(got[1], Ok(b"next".to_vec()), "hole at {hole}");
    }
}

#[test]
fn frames_longer_than_the_buffer_are_rejected_whole_and_the_link_recovers() {
    let (mut a, mut b, raw) = link();
    // Received: a valid frame for a bigger buffer.
    raw.inject(&frame(&[5u8; 500]));
    raw.inject(&frame(b"after"));
    assert_eq!(
        drain(&mut b),
        vec![Err(FrameError::TooLong), Ok(b"after".to_vec())]
    );
    // A runaway stream without any zero: each call returns, never blocks the
    // caller for long, and the frame is rejected when a zero finally comes.
    let mut buf = [0u8; 128];
    raw.inject(&vec![0x42u8; 10_000]);
    let mut calls = 0;
    while !raw.tx.borrow().is_empty() {
        assert_eq!(b.try_recv(&mut buf).unwrap(), None);
        calls += 1;
    }
    assert!(calls > 1, "one call swallowed the whole stream");
    raw.inject(&[0]);
    raw.inject(&frame(b"after"));
    assert_eq!(
        drain(&mut b),
        vec![Err(FrameError::TooLong), Ok(b"after".to_vec())]
    );
    // Longer than the caller's buffer.
    raw.inject(&frame(&[1u8; 50]));
    raw.inject(&frame(b"after"));
    let mut small = [0u8; 10];
    assert_eq!(
        b.try_recv(&mut small),
        Err(SerialError::Frame(FrameError::TooLong))
    );
    assert_eq!(b.try_recv(&mut small), Ok(Some((5, 0))));
    // Sent: too long for the transmit buffer; nothing is written.
    assert_eq!(
        a.send(&1, &[0u8; 200]),
        Err(SerialError::Frame(FrameError::TooLong))
    );
    assert!(drain(&mut b).is_empty());
    assert_eq!(b.stats().too_long, 3);
    assert_eq!(a.stats().too_long, 1);
}

#[test]
fn datagrams_for_other_addresses_are_dropped() {
    let (mut a, mut b, _) = link();
    a.send(&7, b"elsewhere").unwrap();
    assert_eq!(a.stats().unroutable, 1);
    assert!(drain(&mut b).is_empty());
}

#[test]
fn the_decoder_is_usable_on_its_own() {
    let mut dec = FrameDecoder::<{ 16 + serial::CHECKSUM_LEN }>::new();
    assert_eq!(dec.max_datagram_len(), 16);
    let mut got = Vec::new();
    for b in frame(b"sixteen bytes ok")
        .into_iter()
        .chain(frame(&[0; 17]))
    {
        if let Some(r) = dec.push(b) {
            got.push(r.map(<[u8]>::to_vec));
        }
    }
    assert_eq!(
        got,
        vec![Ok(b"sixteen bytes ok".to_vec()), Err(FrameError::TooLong)]
    );
}

// ----- two nodes over the link -----

type SerialNode = Node<u8>;
type NodeLink = SerialTransport<End>;

/// Runs both nodes on a virtual clock until `done` holds: the clock jumps to
/// the next deadline only when no byte is in flight.
fn run(
    nodes: &mut [(SerialNode, NodeLink); 2],
    now: &mut Instant,
    events: &mut Vec<(usize, Event<u8, 4>)>,
    mut done: impl FnMut(&[(usize, Event<u8, 4>)]) -> bool,
) {
    let mut buf = [0u8; <u8 as microkad::Address>::MAX_MESSAGE_LEN];
    for _ in 0..100_000 {
        let mut next = None::<Instant>;
        for (i, (node, link)) in nodes.iter_mut().enumerate() {
            let t = match pump(node, link, *now, &mut buf, |e| events.push((i, e))) {
                Ok(t) => t,
                Err(e) if e.is_recoverable() => Some(*now),
                Err(SerialError::Io(e)) => match e {},
                Err(SerialError::Frame(_)) => unreachable!(),
            };
            next = match (next, t) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        if done(events) {
            return;
        }
        let in_flight = nodes
            .iter()
            .any(|(_, l)| !l.get_ref().rx.borrow().is_empty());
        if !in_flight {
            *now = (*now).max(next.expect("a node has a deadline"));
        }
    }
    panic!("never done: {events:?}");
}

#[test]
fn two_nodes_exchange_a_value_over_the_link_despite_line_noise() {
    let (a, b) = pipe();
    let noise = End {
        rx: Rc::new(RefCell::new(VecDeque::new())),
        tx: Rc::clone(&b.tx),
    };
    let mut now = Instant::from_millis(1);
    let config = Config {
        network_id: 3,
        ..Config::default()
    };
    let mut nodes = [
        (
            SerialNode::new(config.clone(), Key::hash(b"left"), 1, now),
            SerialTransport::new(a, 1),
        ),
        (
            SerialNode::new(config, Key::hash(b"right"), 2, now),
            SerialTransport::new(b, 0),
        ),
    ];
    let mut events = Vec::new();
    noise.inject(&[0x17, 0xFF, 3, 0, 0x01, 0]);
    nodes[1].0.bootstrap(now, &[0]).unwrap();
    run(&mut nodes, &mut now, &mut events, |e| {
        e.iter()
            .any(|(i, e)| *i == 1 && matches!(e, Event::Bootstrapped { contacts: 1, .. }))
    });
    let record = Record::new(Key::hash(b"colour"), b"teal", Ttl::Never).unwrap();
    nodes[1].0.put(now, record.clone()).unwrap();
    noise.inject(&[0x42; 40]);
    noise.inject(&[0]);
    run(&mut nodes, &mut now, &mut events, |e| {
        e.iter()
            .any(|(_, e)| matches!(e, Event::PutFinished { stored: 1, .. }))
    });
    assert_eq!(nodes[0].0.get_local(&record.key), Some(record.clone()));
    nodes[1].0.get(now, record.key).unwrap();
    run(&mut nodes, &mut now, &mut events, |e| {
        e.iter().any(|(_, e)| {
            matches!(e, Event::GetFinished { record: Some(r), .. } if r.value == record.value)
        })
    });
    let s = nodes[0].1.stats();
    assert_eq!(
        s.malformed + s.checksum + s.too_short + s.too_long,
        3,
        "{s:?}"
    );
}
