//! Counters of everything a node received, sent, and rejected.

use crate::wire::{DecodeError, MessageKind};

/// Counters since the node started. Every rejected input increments exactly
/// one counter, so "no silent drop" can be checked by summing them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Metrics {
    /// Datagrams passed to `handle_input`.
    pub datagrams_in: u64,
    /// Bytes passed to `handle_input`.
    pub bytes_in: u64,
    /// Datagrams returned by `poll_transmit`.
    pub datagrams_out: u64,
    /// Bytes returned by `poll_transmit`.
    pub bytes_out: u64,
    /// Requests answered.
    pub requests_served: u64,
    /// Decode failures: empty datagram.
    pub decode_empty: u64,
    /// Decode failures: truncated.
    pub decode_truncated: u64,
    /// Decode failures: too long.
    pub decode_too_long: u64,
    /// Decode failures: unsupported version.
    pub decode_wrong_version: u64,
    /// Decode failures: another network.
    pub decode_wrong_network: u64,
    /// Decode failures: unknown message type.
    pub decode_unknown_type: u64,
    /// Decode failures: invalid field.
    pub decode_invalid_field: u64,
    /// Decode failures: trailing bytes.
    pub decode_trailing_bytes: u64,
    /// Messages claiming to come from this node's own id.
    pub own_id: u64,
    /// Responses matching no request ever made.
    pub unsolicited: u64,
    /// Responses to a request that had already timed out.
    pub late: u64,
    /// Responses to a request that was already answered.
    pub duplicate: u64,
    /// Responses whose address or node id differ from the request's peer.
    pub mismatched: u64,
    /// Responses of the wrong type for their request.
    pub unexpected_response: u64,
    /// VALUE responses carrying a record for another key.
    pub invalid_record: u64,
    /// Inbound requests dropped because the outbound queue was full.
    pub overloaded: u64,
    /// Replacements promoted from a bucket's cache that did not answer their
    /// verification PING and were dropped again.
    pub promotions_failed: u64,
    /// Liveness probes not sent because the outbound queue was full.
    pub probes_skipped: u64,
    /// Events dropped because the event queue was full.
    pub events_dropped: u64,
    /// Messages that did not fit the buffer given to `poll_transmit`.
    pub encode_failures: u64,
    /// Contacts a full table refused to move to a new address.
    pub address_conflicts: u64,
    /// Requests of ours that timed out.
    pub timeouts: u64,
    /// Lookups started by commands.
    pub lookups_started: u64,
    /// Lookups finished and reported.
    pub lookups_finished: u64,
    /// Valid datagrams accepted, by message type (index: [`MessageKind`] as usize).
    pub datagrams_in_by_kind: [u64; MessageKind::COUNT],
    /// Datagrams sent, by message type.
    pub datagrams_out_by_kind: [u64; MessageKind::COUNT],
    /// Bytes sent, by message type.
    pub bytes_out_by_kind: [u64; MessageKind::COUNT],
    /// Keepalive PINGs scheduled (managed connections).
    pub keepalives_sent: u64,
    /// REFUSED replies sent because a bucket's incoming side was full.
    pub refused_sent: u64,
    /// Records received through GIVE_VALUE.
    pub values_received: u64,
    /// GIVE_VALUE records refused: this node is not in their replica set.
    pub values_refused: u64,
    /// Records handed to other nodes through GIVE_VALUE.
    pub values_handed_off: u64,
    /// Hand-offs not started because their queue was full.
    pub handoffs_dropped: u64,
    /// Maintenance lookups not started because every lookup slot was busy.
    pub maintenance_skipped: u64,
    /// Records republished (periodic modes).
    pub republished: u64,
    /// Down-list reports sent.
    pub down_reports_sent: u64,
    /// Down-list reports not sent because the outbound queue was full.
    pub down_reports_skipped: u64,
    /// Down-list reports received.
    pub down_reports_received: u64,
}

impl Metrics {
    pub(crate) fn count_decode_error(&mut self, e: DecodeError) {
        let c = match e {
            DecodeError::Empty => &mut self.decode_empty,
            DecodeError::Truncated => &mut self.decode_truncated,
            DecodeError::TooLong => &mut self.decode_too_long,
            DecodeError::WrongVersion(_) => &mut self.decode_wrong_version,
            DecodeError::WrongNetwork(_) => &mut self.decode_wrong_network,
            DecodeError::UnknownMessageType(_) => &mut self.decode_unknown_type,
            DecodeError::InvalidField => &mut self.decode_invalid_field,
            DecodeError::TrailingBytes => &mut self.decode_trailing_bytes,
        };
        *c += 1;
    }

    pub(crate) fn count_in(&mut self, kind: MessageKind) {
        self.datagrams_in_by_kind[kind as usize] += 1;
    }

    pub(crate) fn count_out(&mut self, kind: MessageKind, len: usize) {
        self.datagrams_out += 1;
        self.bytes_out += len as u64;
        self.datagrams_out_by_kind[kind as usize] += 1;
        self.bytes_out_by_kind[kind as usize] += len as u64;
    }

    /// Bytes sent for keeping the table alive: PING, PONG, REFUSED, LEAVE
    /// and DOWN (liveness probes and their answers, whatever the mode).
    pub fn liveness_bytes_out(&self) -> u64 {
        [
            MessageKind::Ping,
            MessageKind::Pong,
            MessageKind::Refused,
            MessageKind::Leave,
            MessageKind::Down,
        ]
        .iter()
        .map(|k| self.bytes_out_by_kind[*k as usize])
        .sum()
    }

    /// Every datagram rejected, for whatever reason.
    pub fn rejected(&self) -> u64 {
        self.decode_empty
            + self.decode_truncated
            + self.decode_too_long
            + self.decode_wrong_version
            + self.decode_wrong_network
            + self.decode_unknown_type
            + self.decode_invalid_field
            + self.decode_trailing_bytes
            + self.own_id
            + self.unsolicited
            + self.late
            + self.duplicate
            + self.mismatched
            + self.unexpected_response
            + self.invalid_record
            + self.overloaded
            + self.values_refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejected_sums_every_rejection_counter_once_and_nothing_else() {
        let mut m = Metrics {
            // Counters of things that are not rejected datagrams.
            datagrams_in: 1 << 40,
            timeouts: 1 << 41,
            probes_skipped: 1 << 42,
            events_dropped: 1 << 43,
            ..Metrics::default()
        };
        let rejections = [
            &mut m.decode_empty,
            &mut m.decode_truncated,
            &mut m.decode_too_long,
            &mut m.decode_wrong_version,
            &mut m.decode_wrong_network,
            &mut m.decode_unknown_type,
            &mut m.decode_invalid_field,
            &mut m.decode_trailing_bytes,
            &mut m.own_id,
            &mut m.unsolicited,
            &mut m.late,
            &mut m.duplicate,
            &mut m.mismatched,
            &mut m.unexpected_response,
            &mut m.invalid_record,
            &mut m.overloaded,
            &mut m.values_refused,
        ];
        let count = rejections.len();
        // A distinct bit each: a counter left out, counted twice or
        // subtracted shows in the sum.
        for (i, c) in rejections.into_iter().enumerate() {
            *c = 1 << i;
        }
        assert_eq!(m.rejected(), (1 << count) - 1);
    }

    #[test]
    fn each_decode_error_has_its_own_counter() {
        let errors = [
            DecodeError::Empty,
            DecodeError::Truncated,
            DecodeError::TooLong,
            DecodeError::WrongVersion(9),
            DecodeError::WrongNetwork(9),
            DecodeError::UnknownMessageType(99),
            DecodeError::InvalidField,
            DecodeError::TrailingBytes,
        ];
        let mut m = Metrics::default();
        for (i, e) in errors.into_iter().enumerate() {
            for _ in 0..=i {
                m.count_decode_error(e);
            }
        }
        let counted = [
            m.decode_empty,
            m.decode_truncated,
            m.decode_too_long,
            m.decode_wrong_version,
            m.decode_wrong_network,
            m.decode_unknown_type,
            m.decode_invalid_field,
            m.decode_trailing_bytes,
        ];
        assert_eq!(counted, [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(m.rejected(), 36);
    }
}
