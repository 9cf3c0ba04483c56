//! A small deterministic pseudo-random generator.
//!
//! The core must be reproducible from a seed (simulator runs, tests and fuzz
//! cases replay bit for bit) and must not depend on an entropy source, so the
//! node carries this generator. It is SplitMix64: one `u64` of state, fast on
//! 32-bit cores, statistically good enough for transaction ids and random
//! lookup targets. It is **not** cryptographic; an embedder that needs
//! unguessable transaction ids seeds each node from a hardware RNG.

/// SplitMix64 generator, seeded explicitly.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator whose whole output is determined by `seed`.
    pub const fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// A transaction id: 32 random bits, never 0 (0 marks "no request").
    pub fn next_txid(&mut self) -> u32 {
        loop {
            let v = self.next_u32();
            if v != 0 {
                return v;
            }
        }
    }

    /// A value uniformly drawn from `0..bound` (`0` when `bound` is 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            return 0;
        }
        // Multiply-shift reduction: unbiased enough for simulation and far
        // cheaper than rejection sampling on a microcontroller.
        ((self.next_u64() as u128 * bound as u128) >> 64) as u64
    }

    /// Fills `dest` with random bytes.
    pub fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_seeds_differ() {
        let (mut a, mut b, mut c) = (Rng::new(7), Rng::new(7), Rng::new(8));
        for _ in 0..100 {
            let x = a.next_u64();
            assert_eq!(x, b.next_u64());
            assert_ne!(x, c.next_u64());
        }
    }

    #[test]
    fn matches_the_splitmix64_reference_stream() {
        // The first outputs of Vigna's splitmix64.c seeded with 0.
        let mut r = Rng::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(r.next_u32(), 0x06C4_5D18, "the high half of the third");
    }

    #[test]
    fn below_covers_its_range_evenly() {
        let mut r = Rng::new(3);
        let mut seen = [0u32; 10];
        for _ in 0..10_000 {
            seen[r.below(10) as usize] += 1;
        }
        // About 1 000 each; 800 is more than six standard deviations away.
        assert!(seen.iter().all(|&n| n > 800), "{seen:?}");
    }

    #[test]
    fn below_stays_in_range() {
        let mut r = Rng::new(1);
        for bound in 1..200u64 {
            assert!(r.below(bound) < bound);
        }
        assert_eq!(r.below(0), 0);
    }
}
