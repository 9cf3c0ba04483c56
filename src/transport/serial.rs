//! A point-to-point serial link: datagrams over any byte stream that
//! implements [`embedded_io::Read`], [`embedded_io::Write`] and
//! [`ReadReady`] (a UART, a USB CDC port, a pipe). No allocation, no `std`.
//!
//! # Framing
//!
//! Each datagram travels as one frame:
//!
//! ```text
//! 0x00 | COBS(datagram ++ crc16_le(datagram)) | 0x00
//! ```
//!
//! COBS (from the `cobs` crate that postcard uses) removes every zero byte
//! from the payload, so a zero always marks a frame boundary and a receiver
//! that lost bytes, or started listening mid-frame, resynchronises at the next
//! zero. The CRC-16/CCITT-FALSE checksum catches what COBS cannot: flipped
//! bits and frames cut short at a block boundary. The leading zero closes any
//! frame a sender abandoned halfway (a reset mid-transmission), so that only
//! the broken frame is lost, not the next one; the empty frame it makes
//! between two frames is ignored. Overhead: 4 bytes plus one byte per 254.
//!
//! Every bad frame is reported once, as a typed [`FrameError`], when its
//! closing zero arrives; the frame after it is decoded normally.
//!
//! # Reading without blocking
//!
//! [`Transport::try_recv`] must not block, but [`embedded_io::Read::read`]
//! blocks until at least one byte arrives. The transport therefore requires
//! [`ReadReady`] and reads only while `read_ready()` says a read will not
//! block, in chunks of up to [`RX_CHUNK`] bytes; bytes after the end of a
//! frame stay in the transport for the next call. A read of 0 bytes (end of
//! stream) counts as "nothing waiting". One call consumes at most about two
//! frames' worth of bytes, so that a peer streaming garbage cannot keep the
//! caller from its timers.
//!
//! Embedders whose UART is driven by interrupts or DMA can skip the transport
//! and use the two halves directly: [`encode_frame`] and [`FrameDecoder`].
//!
//! # Addresses
//!
//! A link has exactly one peer, so addresses are link-local `u8`s: the
//! transport is built with the address its node uses for the other end
//! ([`SerialTransport::new`]), reports every datagram as coming from it, and
//! sends only to it. A datagram for any other address (one learnt from the
//! peer's NODES replies, which name the peer's own links) is dropped and
//! counted in [`SerialStats::unroutable`].
//!
//! # Errors
//!
//! [`Transport::try_recv`] and [`Transport::send`] return
//! [`SerialError::Frame`] for a bad frame (received) or a datagram too long
//! for the buffer (sent). Both are recoverable: the transport has already
//! dropped the frame and resynchronised, so the caller logs the error and
//! calls again ([`SerialError::is_recoverable`]). [`SerialError::Io`] carries
//! the byte stream's own error.

use core::fmt;

use cobs::{DecodeResult, DecoderState};
use embedded_io::{Read, ReadReady, Write};

use super::Transport;
use crate::peer::Address;

/// Bytes of checksum at the end of every decoded frame.
pub const CHECKSUM_LEN: usize = 2;

/// Bytes [`SerialTransport`] reads from the stream at once.
pub const RX_CHUNK: usize = 32;

/// The buffer size `N` that [`SerialTransport`] and [`FrameDecoder`] need for
/// datagrams of up to `datagram_len` bytes: the longest encoded frame, both
/// delimiters included.
pub const fn frame_capacity(datagram_len: usize) -> usize {
    cobs::max_encoding_length(datagram_len + CHECKSUM_LEN) + 2
}

/// The default buffer size: room for the longest datagram of a node with
/// `u8` addresses.
pub const DEFAULT_CAPACITY: usize = frame_capacity(<u8 as Address>::MAX_MESSAGE_LEN);

/// Why a frame was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FrameError {
    /// The COBS encoding is broken: the frame ended inside a block, as when
    /// bytes were lost or the sender stopped mid-frame.
    Malformed,
    /// The frame decodes to fewer bytes than its checksum.
    TooShort,
    /// The checksum does not match the bytes: corrupted, or cut short at a
    /// COBS block boundary.
    Checksum,
    /// The frame is longer than the buffer. Received, it is dropped whole
    /// when its closing zero arrives; sent, nothing is written.
    TooLong,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FrameError::Malformed => "malformed COBS frame",
            FrameError::TooShort => "frame shorter than its checksum",
            FrameError::Checksum => "frame checksum mismatch",
            FrameError::TooLong => "frame longer than the buffer",
        })
    }
}

impl core::error::Error for FrameError {}

/// What a [`SerialTransport`] can fail with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SerialError<E> {
    /// The byte stream failed.
    Io(E),
    /// A frame was rejected; the link has resynchronised, call again.
    Frame(FrameError),
}

impl<E> SerialError<E> {
    /// Whether the link can go on: a bad frame was dropped and the next one
    /// will be read normally.
    pub fn is_recoverable(&self) -> bool {
        matches!(self, SerialError::Frame(_))
    }
}

impl<E: fmt::Debug> fmt::Display for SerialError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SerialError::Io(e) => write!(f, "serial I/O error: {e:?}"),
            SerialError::Frame(e) => write!(f, "{e}"),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for SerialError<E> {}

/// CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF; the
/// catalogue calls it CRC-16/IBM-3740), computed without a lookup table to
/// keep flash small.
const CHECKSUM: crc::Crc<u16, crc::NoTable> =
    crc::Crc::<u16, crc::NoTable>::new(&crc::CRC_16_IBM_3740);

fn crc16(data: &[u8]) -> u16 {
    CHECKSUM.checksum(data)
}

/// Encodes `datagram` as one complete frame into `out`: its length, or
/// [`FrameError::TooLong`] when `out` is shorter than
/// [`frame_capacity`]`(datagram.len())` requires for this datagram.
pub fn encode_frame(datagram: &[u8], out: &mut [u8]) -> Result<usize, FrameError> {
    let crc = crc16(datagram).to_le_bytes();
    let end = out.len().checked_sub(1).ok_or(FrameError::TooLong)?;
    let (first, body) = out[..end].split_first_mut().ok_or(FrameError::TooLong)?;
    *first = 0;
    let mut encoder = cobs::CobsEncoder::new(body);
    encoder.push(datagram).map_err(|_| FrameError::TooLong)?;
    encoder.push(&crc).map_err(|_| FrameError::TooLong)?;
    let len = encoder.finalize();
    // Closing delimiter: `len + 1 <= end` because the encoder wrote in `body`.
    out[len + 1] = 0;
    Ok(len + 2)
}

/// Reassembles frames from a byte stream, one byte at a time, into a buffer
/// of `N` bytes (datagram plus checksum).
#[derive(Debug)]
pub struct FrameDecoder<const N: usize> {
    state: DecoderState,
    buf: [u8; N],
    len: usize,
    overflow: bool,
}

impl<const N: usize> Default for FrameDecoder<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> FrameDecoder<N> {
    /// A decoder waiting for the start of a frame.
    pub const fn new() -> Self {
        FrameDecoder {
            state: DecoderState::Idle,
            buf: [0; N],
            len: 0,
            overflow: false,
        }
    }

    /// The longest datagram this decoder accepts.
    pub const fn max_datagram_len(&self) -> usize {
        N.saturating_sub(CHECKSUM_LEN)
    }

    /// Feeds one byte from the stream. Returns `None` while a frame is still
    /// open, and at a frame's closing zero either its datagram (checksum
    /// removed) or why it was rejected. Zeros between frames are ignored.
    pub fn push(&mut self, byte: u8) -> Option<Result<&[u8], FrameError>> {
        match self.state.feed(byte) {
            Ok(DecodeResult::NoData) => None,
            Ok(DecodeResult::DataContinue(b)) => {
                match self.buf.get_mut(self.len) {
                    Some(slot) => {
                        *slot = b;
                        self.len += 1;
                    }
                    None => self.overflow = true,
                }
                None
            }
            Ok(DecodeResult::DataComplete) => Some(self.finish()),
            Err(_) => {
                let error = if self.overflow {
                    FrameError::TooLong
                } else {
                    FrameError::Malformed
                };
                self.len = 0;
                self.overflow = false;
                Some(Err(error))
            }
        }
    }

    fn finish(&mut self) -> Result<&[u8], FrameError> {
        let len = core::mem::take(&mut self.len);
        if core::mem::take(&mut self.overflow) {
            return Err(FrameError::TooLong);
        }
        let Some(data_len) = len.checked_sub(CHECKSUM_LEN) else {
            return Err(FrameError::TooShort);
        };
        let (data, sum) = self.buf[..len].split_at(data_len);
        if crc16(data).to_le_bytes() != sum {
            return Err(FrameError::Checksum);
        }
        Ok(data)
    }
}

/// Counters of a [`SerialTransport`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SerialStats {
    /// Frames received intact.
    pub frames_in: u32,
    /// Frames written.
    pub frames_out: u32,
    /// Frames rejected as [`FrameError::Malformed`].
    pub malformed: u32,
    /// Frames rejected as [`FrameError::TooShort`].
    pub too_short: u32,
    /// Frames rejected as [`FrameError::Checksum`].
    pub checksum: u32,
    /// Frames, received or sent, rejected as [`FrameError::TooLong`].
    pub too_long: u32,
    /// Datagrams for an address other than the peer's, dropped.
    pub unroutable: u32,
}

impl SerialStats {
    fn count(&mut self, e: FrameError) {
        let c = match e {
            FrameError::Malformed => &mut self.malformed,
            FrameError::TooShort => &mut self.too_short,
            FrameError::Checksum => &mut self.checksum,
            FrameError::TooLong => &mut self.too_long,
        };
        *c = c.saturating_add(1);
    }
}

/// A [`Transport`] over one serial link, with buffers of `N` bytes (see
/// [`frame_capacity`]; the default fits every datagram of a node with `u8`
/// addresses). The module documentation describes the framing, how reads
/// avoid blocking, and the addresses.
#[derive(Debug)]
pub struct SerialTransport<T, const N: usize = DEFAULT_CAPACITY> {
    io: T,
    peer: u8,
    decoder: FrameDecoder<N>,
    tx: [u8; N],
    rx: [u8; RX_CHUNK],
    rx_pos: usize,
    rx_end: usize,
    stats: SerialStats,
}

impl<T, const N: usize> SerialTransport<T, N> {
    /// A transport over `io` whose other end the local node calls `peer`.
    pub fn new(io: T, peer: u8) -> Self {
        SerialTransport {
            io,
            peer,
            decoder: FrameDecoder::new(),
            tx: [0; N],
            rx: [0; RX_CHUNK],
            rx_pos: 0,
            rx_end: 0,
            stats: SerialStats::default(),
        }
    }

    /// The address of the other end.
    pub fn peer(&self) -> u8 {
        self.peer
    }

    /// Frame counters.
    pub fn stats(&self) -> &SerialStats {
        &self.stats
    }

    /// The byte stream.
    pub fn get_ref(&self) -> &T {
        &self.io
    }

    /// The byte stream, mutably.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.io
    }

    /// The byte stream back; bytes of a partly received frame are lost.
    pub fn into_inner(self) -> T {
        self.io
    }
}

impl<T: Read + Write + ReadReady, const N: usize> Transport for SerialTransport<T, N> {
    type Address = u8;
    type Error = SerialError<T::Error>;

    fn send(&mut self, to: &u8, datagram: &[u8]) -> Result<(), Self::Error> {
        if *to != self.peer {
            self.stats.unroutable = self.stats.unroutable.saturating_add(1);
            trace!("serial: dropped datagram for {}: not this link's peer", to);
            return Ok(());
        }
        let len = match encode_frame(datagram, &mut self.tx) {
            Ok(len) => len,
            Err(e) => {
                self.stats.count(e);
                debug!(
                    "serial: datagram of {} bytes too long to send",
                    datagram.len()
                );
                return Err(SerialError::Frame(e));
            }
        };
        let written = self
            .io
            .write_all(&self.tx[..len])
            .and_then(|()| self.io.flush());
        if let Err(e) = written {
            warn!("serial: write failed: {:?}", embedded_io::Error::kind(&e));
            return Err(SerialError::Io(e));
        }
        self.stats.frames_out = self.stats.frames_out.saturating_add(1);
        trace!("serial: sent frame of {} bytes", len);
        Ok(())
    }

    fn try_recv(&mut self, buf: &mut [u8]) -> Result<Option<(usize, u8)>, Self::Error> {
        let mut budget = 2 * N + RX_CHUNK;
        loop {
            while self.rx_pos < self.rx_end {
                let byte = self.rx[self.rx_pos];
                self.rx_pos += 1;
                let result = match self.decoder.push(byte) {
                    None => continue,
                    Some(Ok(datagram)) => match buf.get_mut(..datagram.len()) {
                        Some(dst) => {
                            dst.copy_from_slice(datagram);
                            Ok(datagram.len())
                        }
                        None => Err(FrameError::TooLong),
                    },
                    Some(Err(e)) => Err(e),
                };
                return match result {
                    Ok(len) => {
                        self.stats.frames_in = self.stats.frames_in.saturating_add(1);
                        trace!("serial: received datagram of {} bytes", len);
                        Ok(Some((len, self.peer)))
                    }
                    Err(e) => {
                        self.stats.count(e);
                        debug!("serial: rejected frame: {:?}", e);
                        Err(SerialError::Frame(e))
                    }
                };
            }
            if budget == 0 {
                return Ok(None);
            }
            let n = match self.io.read_ready().and_then(|ready| match ready {
                true => self.io.read(&mut self.rx),
                false => Ok(0),
            }) {
                Ok(n) => n,
                Err(e) => {
                    warn!("serial: read failed: {:?}", embedded_io::Error::kind(&e));
                    return Err(SerialError::Io(e));
                }
            };
            if n == 0 {
                return Ok(None);
            }
            self.rx_pos = 0;
            self.rx_end = n.min(RX_CHUNK);
            budget = budget.saturating_sub(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_what_happened_and_whether_the_link_goes_on() {
        let frame: SerialError<u8> = SerialError::Frame(FrameError::Checksum);
        let io: SerialError<u8> = SerialError::Io(5);
        assert!(frame.is_recoverable());
        assert!(!io.is_recoverable());
        assert_eq!(format!("{frame}"), "frame checksum mismatch");
        assert_eq!(format!("{io}"), "serial I/O error: 5");
        assert_eq!(
            format!("{}", FrameError::TooLong),
            "frame longer than the buffer"
        );
    }

    #[test]
    fn crc_matches_the_standard_check_value() {
        assert_eq!(crc16(b"123456789"), 0x29B1);
    }

    #[test]
    fn frames_round_trip_for_every_length_and_zero_pattern() {
        let mut out = [0u8; frame_capacity(600)];
        let mut dec = FrameDecoder::<{ 600 + CHECKSUM_LEN }>::new();
        for len in (0..600).step_by(7).chain([253, 254, 255, 508, 509, 600]) {
            for zeros in [false, true] {
                let data: [u8; 600] =
                    core::array::from_fn(|i| if zeros && i % 3 == 0 { 0 } else { i as u8 | 1 });
                let n = encode_frame(&data[..len], &mut out).unwrap();
                assert!(n <= frame_capacity(len));
                assert_eq!((out[0], out[n - 1]), (0, 0));
                assert!(out[1..n - 1].iter().all(|&b| b != 0));
                let mut got = None;
                for &b in &out[..n] {
                    if let Some(r) = dec.push(b) {
                        assert!(got.is_none());
                        got = Some(r.unwrap().to_vec());
                    }
                }
                assert_eq!(got.as_deref(), Some(&data[..len]));
            }
        }
    }

    #[test]
    fn encoding_into_a_short_buffer_fails_cleanly() {
        let data = [7u8; 100];
        let mut out = [0u8; frame_capacity(100)];
        assert!(encode_frame(&data, &mut out).is_ok());
        for short in [0, 1, 2, 50, frame_capacity(100) - 1] {
            assert_eq!(
                encode_frame(&data, &mut out[..short]),
                Err(FrameError::TooLong)
            );
        }
    }
}
