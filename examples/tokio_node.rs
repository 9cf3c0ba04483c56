//! The same node as `udp_node`, driven by an async tokio loop instead of a
//! blocking one: the sans-IO core needs no change to live in a runtime.
//!
//! ```text
//! cargo run --features log --example tokio_node -- --listen 127.0.0.1:4000 --network 7
//! cargo run --features log --example tokio_node -- --listen 127.0.0.1:4001 --seed 127.0.0.1:4000 --network 7
//! ```
//!
//! It speaks the same protocol as `udp_node`, so the two mix in one network.
//! Commands on standard input: `put KEY VALUE...`, `get KEY`, `quit`.
//!
//! The whole integration is the `select!` below: a datagram goes to
//! `handle_input`, the deadline from `poll_timeout` becomes
//! `tokio::time::sleep_until`, a command line becomes a command, and after
//! each of them the loop drains `poll_transmit` (to `send_to`) and
//! `poll_event`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration as StdDuration;

use clap::Parser;
use log::{info, warn};
use microkad::{Config, Event, Instant, Key, MemoryStore, Node, QueryId, Record, Ttl, wire};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::UdpSocket;

type KadNode = Node<SocketAddr, MemoryStore<1024, 256>>;

#[derive(Parser, Debug)]
#[command(about = "A microkad DHT node on tokio")]
struct Args {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// A node to join through; repeat for several.
    #[arg(long = "seed")]
    seeds: Vec<SocketAddr>,
    /// Network id: datagrams of other networks are rejected.
    #[arg(long, default_value_t = 0)]
    network: u32,
    /// Name the node id is hashed from (default: the listen address).
    #[arg(long)]
    name: Option<String>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();

    let socket = UdpSocket::bind(args.listen).await?;
    let local = socket.local_addr()?;
    let id = Key::hash(args.name.unwrap_or_else(|| local.to_string()).as_bytes());
    let config = Config {
        network_id: args.network,
        ..Config::default()
    };
    let start = tokio::time::Instant::now();
    let now = || Instant::from_millis(start.elapsed().as_millis() as u64);
    let rng_seed =
        std::process::id() as u64 ^ u64::from_le_bytes(id.as_bytes()[..8].try_into().unwrap());
    let mut node = Box::new(KadNode::new(config, id, rng_seed, now()));
    info!("node {id} listening on {local}, network {}", args.network);
    println!("listening on {local}");
    if !args.seeds.is_empty() {
        node.bootstrap(now(), &args.seeds).expect("at most 8 seeds");
    }

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    let mut pending: HashMap<QueryId, String> = HashMap::new();
    let mut out = vec![0u8; wire::MAX_MESSAGE_LEN];
    let mut inbox = vec![0u8; wire::MAX_MESSAGE_LEN];

    loop {
        // The contract: after every input, drain transmits and events...
        while let Some(t) = node.poll_transmit(&mut out) {
            if let Err(e) = socket.send_to(&out[..t.len], t.destination).await {
                warn!("send to {} failed: {e}", t.destination);
            }
        }
        while let Some(event) = node.poll_event() {
            report(event, &mut pending);
        }
        // ...then read the deadline.
        let deadline = match node.poll_timeout() {
            Some(t) => start + StdDuration::from_millis(t.as_millis()),
            None => tokio::time::Instant::now() + StdDuration::from_secs(3600),
        };

        tokio::select! {
            received = socket.recv_from(&mut inbox) => match received {
                Ok((len, from)) => {
                    // Rejected datagrams are counted and logged by the node.
                    let _ = node.handle_input(now(), from, &inbox[..len]);
                }
                Err(e) => warn!("receive failed: {e}"),
            },
            () = tokio::time::sleep_until(deadline) => node.handle_timeout(now()),
            line = lines.next_line(), if stdin_open => match line? {
                Some(line) => {
                    let mut words = line.split_whitespace();
                    match (words.next(), words.next()) {
                        (Some("put"), Some(key)) => {
                            let value = words.collect::<Vec<_>>().join(" ");
                            match Record::new(Key::hash(key.as_bytes()), value.as_bytes(), Ttl::Seconds(3600)) {
                                Ok(record) => match node.put(now(), record) {
                                    Ok(q) => { pending.insert(q, key.to_string()); }
                                    Err(e) => println!("put {key}: {e:?}"),
                                },
                                Err(_) => println!("put {key}: value too long"),
                            }
                        }
                        (Some("get"), Some(key)) => match node.get(now(), Key::hash(key.as_bytes())) {
                            Ok(q) => { pending.insert(q, key.to_string()); }
                            Err(e) => println!("get {key}: {e:?}"),
                        },
                        (Some("quit"), _) => break,
                        (None, _) => {}
                        _ => println!("commands: put KEY VALUE, get KEY, quit"),
                    }
                }
                None => {
                    info!("standard input closed; serving until killed");
                    stdin_open = false;
                }
            },
        }
    }

    // Say goodbye so that peers drop this node at once.
    node.leave(now());
    while let Some(t) = node.poll_transmit(&mut out) {
        let _ = socket.send_to(&out[..t.len], t.destination).await;
    }
    info!("left the network");
    Ok(())
}

fn report(event: Event<SocketAddr, 4>, pending: &mut HashMap<QueryId, String>) {
    match event {
        Event::Bootstrapped { contacts, .. } => println!("joined: {contacts} contacts"),
        Event::GetFinished { query, record, .. } => {
            let key = pending.remove(&query).unwrap_or_default();
            match record {
                Some(r) => println!("get {key}: {}", String::from_utf8_lossy(&r.value)),
                None => println!("get {key}: not found"),
            }
        }
        Event::PutFinished {
            query,
            stored,
            attempted,
            ..
        } => {
            let key = pending.remove(&query).unwrap_or_default();
            println!("put {key}: stored on {stored} of {attempted} nodes");
        }
        Event::ContactRemoved { peer, reason, .. } => {
            info!("contact {} at {} removed: {reason:?}", peer.id, peer.addr)
        }
        Event::FoundNodes { .. } => {}
    }
}
