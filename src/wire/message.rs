//! Message types.

use heapless::Vec;
use serde::{Deserialize, Serialize};

use super::MAX_CONTACTS;
use crate::id::{Key, NodeId};
use crate::peer::Peer;
use crate::store::{Record, StoreStatus};

/// What every datagram carries after the version byte.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Header {
    /// The network id: nodes of different networks ignore each other.
    pub network: u32,
    /// Chosen at random by the requester and echoed by the responder.
    #[serde(with = "postcard::fixint::le")]
    pub txid: u32,
    /// The sender's node id.
    pub sender: NodeId,
}

/// The message proper. The variant index is the message type on the wire, so
/// new messages are only ever appended.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Body<A> {
    /// Are you alive?
    Ping,
    /// Yes.
    Pong,
    /// Which nodes do you know closest to `target`?
    FindNode {
        /// The key looked up.
        target: Key,
    },
    /// The closest nodes the responder knows, closest first.
    Nodes {
        /// At most [`MAX_CONTACTS`] peers.
        contacts: Vec<Peer<A>, MAX_CONTACTS>,
    },
    /// Do you hold a record under `key`? If not, which nodes are closest?
    FindValue {
        /// The key looked up.
        key: Key,
    },
    /// The record asked for, its TTL being what remains at the responder.
    Value {
        /// The record.
        record: Record,
    },
    /// Please store this record.
    Store {
        /// The record.
        record: Record,
    },
    /// What became of a STORE.
    StoreAck {
        /// The outcome.
        status: StoreStatus,
    },
    /// A holder hands a record to a node that just became one of the
    /// closest to its key (MaidSafe paper, III-C). Not answered: several
    /// holders hand off the same record, which replaces retransmission.
    GiveValue {
        /// The record.
        record: Record,
    },
    /// The sender leaves the network: drop it now. Not answered.
    Leave,
    /// Answer to a PING from a node this one will not keep as an incoming
    /// contact: the bucket's incoming side is full (paper, III-D1).
    Refused {
        /// Why.
        reason: RefuseReason,
    },
    /// Down-list report (Binzenhöfer and Schnabel): `dead`, which the
    /// receiver handed out in a NODES reply, did not answer. Not answered.
    Down {
        /// The unresponsive node.
        dead: NodeId,
    },
}

/// Why a node refused to keep the sender as a contact.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RefuseReason {
    /// The incoming side of the bucket the sender falls in is full.
    BucketFull,
}

/// The type of a message, without its fields (for metrics and logs).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum MessageKind {
    /// [`Body::Ping`]
    Ping = 0,
    /// [`Body::Pong`]
    Pong = 1,
    /// [`Body::FindNode`]
    FindNode = 2,
    /// [`Body::Nodes`]
    Nodes = 3,
    /// [`Body::FindValue`]
    FindValue = 4,
    /// [`Body::Value`]
    Value = 5,
    /// [`Body::Store`]
    Store = 6,
    /// [`Body::StoreAck`]
    StoreAck = 7,
    /// [`Body::GiveValue`]
    GiveValue = 8,
    /// [`Body::Leave`]
    Leave = 9,
    /// [`Body::Refused`]
    Refused = 10,
    /// [`Body::Down`]
    Down = 11,
}

impl MessageKind {
    /// Number of message types this version knows.
    pub const COUNT: usize = 12;

    /// Every kind, in wire order.
    pub const ALL: [MessageKind; MessageKind::COUNT] = [
        MessageKind::Ping,
        MessageKind::Pong,
        MessageKind::FindNode,
        MessageKind::Nodes,
        MessageKind::FindValue,
        MessageKind::Value,
        MessageKind::Store,
        MessageKind::StoreAck,
        MessageKind::GiveValue,
        MessageKind::Leave,
        MessageKind::Refused,
        MessageKind::Down,
    ];

    /// Whether this message answers a request (and so must match one).
    pub const fn is_response(self) -> bool {
        matches!(
            self,
            MessageKind::Pong
                | MessageKind::Nodes
                | MessageKind::Value
                | MessageKind::StoreAck
                | MessageKind::Refused
        )
    }
}

impl<A> Body<A> {
    /// The message type.
    pub fn kind(&self) -> MessageKind {
        match self {
            Body::Ping => MessageKind::Ping,
            Body::Pong => MessageKind::Pong,
            Body::FindNode { .. } => MessageKind::FindNode,
            Body::Nodes { .. } => MessageKind::Nodes,
            Body::FindValue { .. } => MessageKind::FindValue,
            Body::Value { .. } => MessageKind::Value,
            Body::Store { .. } => MessageKind::Store,
            Body::StoreAck { .. } => MessageKind::StoreAck,
            Body::GiveValue { .. } => MessageKind::GiveValue,
            Body::Leave => MessageKind::Leave,
            Body::Refused { .. } => MessageKind::Refused,
            Body::Down { .. } => MessageKind::Down,
        }
    }
}

/// A whole datagram, decoded.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Message<A> {
    /// Network, transaction and sender.
    pub header: Header,
    /// The message proper.
    pub body: Body<A>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_in_wire_order_and_answers_are_the_five_responses() {
        for (i, kind) in MessageKind::ALL.into_iter().enumerate() {
            assert_eq!(kind as usize, i);
        }
        let responses: heapless::Vec<MessageKind, { MessageKind::COUNT }> = MessageKind::ALL
            .into_iter()
            .filter(|k| k.is_response())
            .collect();
        assert_eq!(
            responses,
            [
                MessageKind::Pong,
                MessageKind::Nodes,
                MessageKind::Value,
                MessageKind::StoreAck,
                MessageKind::Refused
            ]
        );
    }
}
