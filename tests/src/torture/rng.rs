//! A tiny per-thread random number generator (xorshift64*): reproducible from the seed,
//! no dependency, no allocation.

/// The generator.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for thread `stream` of a run seeded with `seed`.
    pub fn new(seed: u64, stream: u64) -> Self {
        Rng((seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// True one time in `n` (never for 0).
    pub fn one_in(&mut self, n: u32) -> bool {
        n != 0 && self.next_u64() % u64::from(n) == 0
    }
}
