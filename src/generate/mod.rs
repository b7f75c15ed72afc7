//! Address generators: pure functions from a randomness source (and, for `stable`, a keyed hash)
//! to a new address. None of them touches a link.
//!
//! Every generator takes the addresses the result must not equal, normally the link's current and
//! permanent addresses, and retries a bounded number of times to avoid them. The stable address is
//! the exception: it depends only on its inputs and avoids no address (see [`stable`]).

pub mod mask;
pub mod stable;
pub mod stable_id;

use crate::addr::{MacAddr, MacPrefix};
use crate::rng::{RandomError, RandomSource};
use mask::Mask;

/// The maximum number of candidates a generator draws while avoiding the forbidden addresses.
/// With 46 random bits and two avoided addresses, a second draw is needed about once in 3 * 10^13
/// runs. Only a mask or prefix that leaves almost no free bits can use up all attempts.
const MAX_ATTEMPTS: usize = 16;

/// Errors from the address generators.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    /// The randomness source failed.
    #[error(transparent)]
    Random(#[from] RandomError),

    /// Every candidate equalled an address the result must differ from.
    #[error(
        "could not generate an address different from {avoided} after {attempts} attempts; the \
         mask or vendor prefix leaves too few bits to randomize"
    )]
    NoDistinctAddress {
        /// The avoided addresses, redacted.
        avoided: String,
        /// How many candidates were drawn.
        attempts: usize,
    },

    /// The `ending` generator needs the permanent address and none is known.
    #[error(
        "the permanent address is unknown, so its vendor prefix cannot be kept; use --random, or \
         give the address with --permanent ADDR"
    )]
    UnknownPermanent,

    /// The permanent address given to `ending` is not a unicast address.
    #[error("invalid permanent address: {0}")]
    InvalidPermanent(crate::addr::AddrError),

    /// The vendor registry has no entry that matches the filter.
    #[error(
        "no vendor in the registry matches '{filter}'; list candidates with 'macveil vendor --search TEXT'"
    )]
    NoVendor {
        /// The vendor name filter.
        filter: String,
    },

    /// A stable address could not be derived.
    #[error(transparent)]
    Stable(#[from] stable::StableError),
}

/// Draws candidates from `draw` until one differs from every address in `avoid`.
fn draw_distinct(
    avoid: &[MacAddr],
    mut draw: impl FnMut() -> Result<MacAddr, GenError>,
) -> Result<MacAddr, GenError> {
    for _ in 0..MAX_ATTEMPTS {
        let candidate = draw()?;
        if !avoid.contains(&candidate) {
            return Ok(candidate);
        }
    }
    let avoided: Vec<String> = avoid.iter().map(MacAddr::redacted).collect();
    Err(GenError::NoDistinctAddress {
        avoided: avoided.join(", "),
        attempts: MAX_ATTEMPTS,
    })
}

/// Generates a random unicast, locally administered address: 46 bits from `rng`.
///
/// With a mask, the masked bits come from one of its OUIs or from `initial`, the link's address
/// before any change, exactly as NetworkManager's `cloned-mac-address=random` does.
pub fn random(
    rng: &mut dyn RandomSource,
    mask: Option<&Mask>,
    initial: Option<MacAddr>,
    avoid: &[MacAddr],
) -> Result<MacAddr, GenError> {
    draw_distinct(avoid, || {
        let mut octets = [0u8; 6];
        rng.fill(&mut octets)?;
        Ok(Mask::complete(mask, octets, initial, rng)?)
    })
}

/// Keeps the vendor prefix (first three octets) of `permanent` bit for bit and randomizes the
/// other 24 bits.
pub fn ending(
    rng: &mut dyn RandomSource,
    permanent: Option<MacAddr>,
    avoid: &[MacAddr],
) -> Result<MacAddr, GenError> {
    let permanent = permanent.ok_or(GenError::UnknownPermanent)?;
    // Keeping the prefix bit for bit would keep a group bit too, and no link can use a group
    // address. So the permanent address must pass the checks of an assigned address.
    permanent
        .validate_assignable()
        .map_err(GenError::InvalidPermanent)?;
    let prefix = MacPrefix::new(permanent, 24);
    with_prefix(rng, &prefix, avoid)
}

/// Fills every bit after `prefix` with random bits.
pub fn with_prefix(
    rng: &mut dyn RandomSource,
    prefix: &MacPrefix,
    avoid: &[MacAddr],
) -> Result<MacAddr, GenError> {
    draw_distinct(avoid, || {
        let mut rest = [0u8; 6];
        rng.fill(&mut rest)?;
        Ok(prefix.fill(rest))
    })
}

/// Picks one of `prefixes` at random and fills the rest of the address with random bits.
pub fn vendor(
    rng: &mut dyn RandomSource,
    prefixes: &[MacPrefix],
    filter: &str,
    avoid: &[MacAddr],
) -> Result<MacAddr, GenError> {
    if prefixes.is_empty() {
        return Err(GenError::NoVendor {
            filter: filter.to_string(),
        });
    }
    let prefix = prefixes[rng.index_below(prefixes.len())?];
    with_prefix(rng, &prefix, avoid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{FixedRandom, OsRandom};
    use proptest::prelude::*;

    fn addr(text: &str) -> MacAddr {
        text.parse().unwrap()
    }

    #[test]
    fn random_retries_past_avoided_address() {
        // The first draw yields 02:00:00:00:00:00, which is avoided; the second differs.
        let mut rng = FixedRandom::new(vec![0, 0, 0, 0, 0, 0, 0x10, 1, 2, 3, 4, 5]);
        let result = random(&mut rng, None, None, &[addr("02:00:00:00:00:00")]).unwrap();
        assert_eq!(result, addr("12:01:02:03:04:05"));
    }

    #[test]
    fn random_gives_up_when_mask_leaves_no_bits() {
        let mask = Mask::parse("ff:ff:ff:ff:ff:ff").unwrap();
        let initial = addr("02:11:22:33:44:55");
        let err = random(&mut OsRandom, Some(&mask), Some(initial), &[initial]).unwrap_err();
        assert!(matches!(err, GenError::NoDistinctAddress { .. }), "{err}");
        assert!(!err.to_string().contains("33:44:55"), "{err}");
    }

    #[test]
    fn random_reads_distinct_values() {
        let first = random(&mut OsRandom, None, None, &[]).unwrap();
        let second = random(&mut OsRandom, None, None, &[]).unwrap();
        assert_ne!(first, second);
    }

    #[test]
    fn ending_rejects_group_permanent() {
        for text in [
            "33:11:33:33:33:77",
            "03:19:6c:04:26:53",
            "ff:ff:ff:ff:ff:ff",
        ] {
            let err = ending(&mut OsRandom, Some(addr(text)), &[]).unwrap_err();
            assert!(
                matches!(err, GenError::InvalidPermanent(_)),
                "{text}: {err}"
            );
        }
        let err = ending(&mut OsRandom, Some(MacAddr::ZERO), &[]).unwrap_err();
        assert!(matches!(err, GenError::InvalidPermanent(_)), "{err}");
    }

    #[test]
    fn ending_needs_permanent() {
        let err = ending(&mut OsRandom, None, &[]).unwrap_err();
        assert!(matches!(err, GenError::UnknownPermanent));
    }

    #[test]
    fn vendor_needs_candidates() {
        let err = vendor(&mut OsRandom, &[], "nobody", &[]).unwrap_err();
        assert!(err.to_string().contains("'nobody'"), "{err}");
    }

    proptest! {
        #[test]
        fn random_is_unicast_local_and_distinct(seed in proptest::collection::vec(any::<u8>(), 1..64),
                                                 current in any::<[u8; 6]>(),
                                                 permanent in any::<[u8; 6]>()) {
            let avoid = [MacAddr(current), MacAddr(permanent)];
            let mut rng = FixedRandom::new(seed);
            if let Ok(result) = random(&mut rng, None, None, &avoid) {
                prop_assert!(!result.is_group());
                prop_assert!(result.is_local());
                prop_assert!(!avoid.contains(&result));
            }
        }

        #[test]
        fn random_from_os_always_succeeds(current in any::<[u8; 6]>(), permanent in any::<[u8; 6]>()) {
            let avoid = [MacAddr(current), MacAddr(permanent)];
            let result = random(&mut OsRandom, None, None, &avoid).unwrap();
            prop_assert!(!result.is_group());
            prop_assert!(result.is_local());
            prop_assert!(!avoid.contains(&result));
        }

        #[test]
        fn masked_random_keeps_oui_bits(oui in any::<[u8; 3]>(), current in any::<[u8; 6]>()) {
            let mask = Mask::parse("ff:ff:ff:00:00:00").unwrap();
            let initial = MacAddr([oui[0], oui[1], oui[2], 9, 9, 9]);
            let result = random(&mut OsRandom, Some(&mask), Some(initial), &[MacAddr(current)]).unwrap();
            prop_assert!(!result.is_group());
            prop_assert_eq!(&result.0[1..3], &oui[1..3]);
            prop_assert_eq!(result.0[0], oui[0] & !1);
            prop_assert_ne!(result, MacAddr(current));
        }

        #[test]
        fn ending_keeps_vendor_prefix(permanent in any::<[u8; 6]>(), current in any::<[u8; 6]>()) {
            let mut permanent = MacAddr(permanent);
            // A permanent address is always unicast; group addresses are rejected (tested above).
            permanent.0[0] &= !crate::addr::GROUP_BIT;
            prop_assume!(!permanent.is_zero());
            let avoid = [MacAddr(current), permanent];
            let result = ending(&mut OsRandom, Some(permanent), &avoid).unwrap();
            prop_assert_eq!(result.oui(), permanent.oui());
            prop_assert!(!result.is_group());
            prop_assert!(!avoid.contains(&result));
        }

        #[test]
        fn vendor_keeps_chosen_prefix(first in any::<[u8; 6]>(), bits in prop::sample::select(vec![24u8, 28, 36])) {
            let mut first = first;
            first[0] &= 0xfc;
            let prefix = MacPrefix::new(MacAddr(first), bits);
            let result = vendor(&mut OsRandom, &[prefix], "", &[MacAddr(first)]).unwrap();
            prop_assert!(prefix.contains(&result));
            prop_assert!(!result.is_group());
            prop_assert!(!result.is_local());
            prop_assert_ne!(result, MacAddr(first));
        }
    }
}
