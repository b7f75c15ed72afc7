//! The randomness source behind every generator.
//!
//! Production code reads the kernel's CSPRNG through the `getrandom` crate, which on Linux calls
//! `getrandom(2)`: it blocks only until the kernel's pool is first initialised at boot, and no
//! seeded userspace PRNG stands in between. Tests inject a
//! deterministic source through the same trait.

/// Failure to obtain random bytes from the operating system.
#[derive(Debug, thiserror::Error)]
#[error("failed to read random bytes from the kernel (getrandom): {0}")]
pub struct RandomError(pub String);

/// A source of uniformly random bytes.
pub trait RandomSource {
    /// Fills `buf` with random bytes.
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), RandomError>;

    /// Returns a uniformly distributed index in `0..n`. `n` must not be zero.
    fn index_below(&mut self, n: usize) -> Result<usize, RandomError> {
        assert!(n > 0, "index_below needs a non-empty range");
        let n = n as u64;
        // Rejection sampling: values at or above the largest multiple of n would bias the pick.
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let mut bytes = [0u8; 8];
            self.fill(&mut bytes)?;
            let value = u64::from_le_bytes(bytes);
            if value < zone {
                return Ok((value % n) as usize);
            }
        }
    }
}

/// The kernel's CSPRNG, read with `getrandom(2)`.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRandom;

impl RandomSource for OsRandom {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), RandomError> {
        getrandom::fill(buf).map_err(|err| RandomError(err.to_string()))
    }
}

/// A deterministic source that repeats a fixed byte sequence, for tests.
#[derive(Debug, Clone)]
pub struct FixedRandom {
    bytes: Vec<u8>,
    position: usize,
}

impl FixedRandom {
    /// Creates a source that returns `bytes` in order, starting again at the end.
    pub fn new(bytes: impl Into<Vec<u8>>) -> FixedRandom {
        let bytes = bytes.into();
        assert!(!bytes.is_empty(), "FixedRandom needs at least one byte");
        FixedRandom { bytes, position: 0 }
    }
}

impl RandomSource for FixedRandom {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), RandomError> {
        for byte in buf.iter_mut() {
            *byte = self.bytes[self.position];
            self.position = (self.position + 1) % self.bytes.len();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_random_differs_between_reads() {
        let mut first = [0u8; 16];
        let mut second = [0u8; 16];
        OsRandom.fill(&mut first).unwrap();
        OsRandom.fill(&mut second).unwrap();
        assert_ne!(first, second);
    }

    #[test]
    fn index_below_stays_in_range() {
        let mut rng = OsRandom;
        for n in [1usize, 2, 3, 7, 1000] {
            for _ in 0..200 {
                assert!(rng.index_below(n).unwrap() < n);
            }
        }
    }

    #[test]
    fn fixed_random_repeats_its_bytes() {
        let mut rng = FixedRandom::new(vec![1, 2, 3]);
        let mut buf = [0u8; 7];
        rng.fill(&mut buf).unwrap();
        assert_eq!(buf, [1, 2, 3, 1, 2, 3, 1]);
    }
}
