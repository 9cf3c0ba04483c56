//! A microkad node on a UDP socket, driven from a shell.
//!
//! ```text
//! # terminal 1: the first node
//! cargo run --features std,log --example udp_node -- --listen 127.0.0.1:4000 --network 7
//! # terminal 2: a second node joins through the first
//! cargo run --features std,log --example udp_node -- --listen 127.0.0.1:4001 --seed 127.0.0.1:4000 --network 7
//! ```
//!
//! Then type commands on either node's standard input:
//!
//! ```text
//! put KEY VALUE...   store VALUE (the rest of the line) under hash(KEY)
//! get KEY            look KEY up in the network
//! peers              list the routing table
//! stats              traffic counters
//! quit               say LEAVE to every contact and exit
//! ```
//!
//! Results go to standard output; logs (the node's and the transport's) go to
//! standard error through `env_logger` (`RUST_LOG=debug` shows every lookup).
//!
//! The loop is single-threaded: pump the node, then sleep on the socket until
//! a datagram arrives or the node's next deadline (or a 50 ms tick for the
//! command channel fed by a stdin thread).

use std::collections::HashMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration as StdDuration;

use clap::Parser;
use log::{info, warn};
use microkad::transport::{UdpTransport, pump};
use microkad::{
    CommandError, Config, Event, Instant, Key, MemoryStore, Node, QueryId, Record, Ttl, wire,
};

/// Up to 1024 records of up to 256 bytes each; k = 4.
type UdpNode = Node<SocketAddr, MemoryStore<1024, 256>>;

#[derive(Parser, Debug)]
#[command(about = "A microkad DHT node on UDP")]
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
    /// Time to live of the records this node puts, in seconds.
    #[arg(long, default_value_t = 3600)]
    ttl: u32,
}

/// What a running query was for, to print its result.
enum Pending {
    Get(String),
    Put(String),
}

struct App {
    node: Box<UdpNode>,
    start: std::time::Instant,
    pending: HashMap<QueryId, Pending>,
    seeds: Vec<SocketAddr>,
    rejoin_at: Option<Instant>,
    ttl: u32,
}

impl App {
    fn now(&self) -> Instant {
        Instant::from_millis(self.start.elapsed().as_millis() as u64)
    }

    /// Runs one command line; `false` to quit.
    fn command(&mut self, line: &str) -> bool {
        let now = self.now();
        let mut words = line.split_whitespace();
        match words.next() {
            None => {}
            Some("put") => {
                let (Some(key), Some(_)) = (words.next(), words.clone().next()) else {
                    println!("usage: put KEY VALUE");
                    return true;
                };
                let value = words.collect::<Vec<_>>().join(" ");
                let record = match Record::new(
                    Key::hash(key.as_bytes()),
                    value.as_bytes(),
                    Ttl::Seconds(self.ttl),
                ) {
                    Ok(r) => r,
                    Err(_) => {
                        println!("put {key}: value longer than {} bytes", wire::MAX_VALUE_LEN);
                        return true;
                    }
                };
                match self.node.put(now, record) {
                    Ok(q) => {
                        self.pending.insert(q, Pending::Put(key.to_string()));
                    }
                    Err(e) => println!("put {key}: {}", refusal(e)),
                }
            }
            Some("get") => {
                let Some(key) = words.next() else {
                    println!("usage: get KEY");
                    return true;
                };
                match self.node.get(now, Key::hash(key.as_bytes())) {
                    Ok(q) => {
                        self.pending.insert(q, Pending::Get(key.to_string()));
                    }
                    Err(e) => println!("get {key}: {}", refusal(e)),
                }
            }
            Some("peers") => {
                let mut n = 0;
                for c in self.node.routing_table().iter() {
                    println!("  {} {}", c.peer.id, c.peer.addr);
                    n += 1;
                }
                println!("{n} contacts");
            }
            Some("stats") => println!("{:#?}", self.node.metrics()),
            Some("quit") => return false,
            Some(other) => {
                println!(
                    "unknown command {other:?}; commands: put KEY VALUE, get KEY, peers, stats, quit"
                )
            }
        }
        true
    }

    fn event(&mut self, event: Event<SocketAddr, 4>) {
        match event {
            Event::Bootstrapped { contacts, .. } => {
                if contacts == 0 && !self.seeds.is_empty() {
                    warn!("no seed answered; retrying in 5 s");
                    self.rejoin_at = Some(self.now() + microkad::Duration::from_secs(5));
                } else {
                    info!("joined: {contacts} contacts");
                    println!("joined: {contacts} contacts");
                }
            }
            Event::GetFinished {
                query,
                record,
                stats,
                ..
            } => {
                let Some(Pending::Get(key)) = self.pending.remove(&query) else {
                    return;
                };
                match record {
                    Some(r) if stats.requests == 0 => println!(
                        "get {key}: {} (from the local store)",
                        String::from_utf8_lossy(&r.value)
                    ),
                    Some(r) => println!(
                        "get {key}: {} ({} requests, {} ms)",
                        String::from_utf8_lossy(&r.value),
                        stats.requests,
                        stats.elapsed.as_millis()
                    ),
                    None => println!("get {key}: not found ({} requests)", stats.requests),
                }
            }
            Event::PutFinished {
                query,
                stored,
                attempted,
                ..
            } => {
                if let Some(Pending::Put(key)) = self.pending.remove(&query) {
                    println!("put {key}: stored on {stored} of {attempted} nodes");
                }
            }
            Event::ContactRemoved { peer, reason, .. } => {
                info!("contact {} at {} removed: {reason:?}", peer.id, peer.addr);
            }
            Event::FoundNodes { .. } => {}
        }
    }
}

fn refusal(e: CommandError) -> &'static str {
    match e {
        CommandError::Busy => "busy, try again when a lookup finishes",
        CommandError::NoContacts => "no contacts yet",
        CommandError::TooManySeeds => "too many seeds",
    }
}

fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();

    let mut transport = UdpTransport::bind(args.listen)?;
    let local = transport.local_addr()?;
    let name = args.name.unwrap_or_else(|| local.to_string());
    let id = Key::hash(name.as_bytes());
    let config = Config {
        network_id: args.network,
        ..Config::default()
    };
    let rng_seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ u64::from_le_bytes(id.as_bytes()[..8].try_into().unwrap());
    let start = std::time::Instant::now();
    let mut app = App {
        node: Box::new(UdpNode::new(config, id, rng_seed, Instant::ZERO)),
        start,
        pending: HashMap::new(),
        seeds: args.seeds,
        rejoin_at: None,
        ttl: args.ttl,
    };
    info!("node {id} listening on {local}, network {}", args.network);
    println!("listening on {local}");
    app.rejoin_at = (!app.seeds.is_empty()).then_some(Instant::ZERO);

    // Standard input on a thread; commands reach the loop through a channel.
    let (tx, commands) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    let mut buf = vec![0u8; wire::MAX_MESSAGE_LEN];
    let mut stdin_open = true;
    loop {
        let now = app.now();
        if app.rejoin_at.is_some_and(|t| t <= now) {
            app.rejoin_at = None;
            if let Err(e) = app.node.bootstrap(now, &app.seeds) {
                warn!("bootstrap refused: {e:?}");
            }
        }
        loop {
            match commands.try_recv() {
                Ok(line) => {
                    if !app.command(&line) {
                        return leave(&mut app, &mut transport, &mut buf);
                    }
                }
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    if stdin_open {
                        info!("standard input closed; serving until killed");
                        stdin_open = false;
                    }
                    break;
                }
            }
        }
        let mut events = Vec::new();
        let now = app.now();
        let next = pump(&mut *app.node, &mut transport, now, &mut buf, |e| {
            events.push(e)
        })?;
        for e in events {
            app.event(e);
        }
        let now = app.now();
        let deadline = next.into_iter().chain(app.rejoin_at).min();
        let mut wait = StdDuration::from_millis(50);
        if let Some(t) = deadline {
            wait = wait.min(StdDuration::from_millis(
                t.saturating_since(now).as_millis(),
            ));
        }
        transport.wait(Some(wait))?;
    }
}

/// Sends LEAVE to every contact, then exits.
fn leave(app: &mut App, transport: &mut UdpTransport, buf: &mut [u8]) -> std::io::Result<()> {
    let now = app.now();
    app.node.leave(now);
    pump(&mut *app.node, transport, now, buf, |_| {})?;
    info!("left the network");
    Ok(())
}
