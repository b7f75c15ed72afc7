//! Text encodings of binary values: the one module that calls the `base64` crate, so that an
//! upgrade of that 0.x crate touches only this file.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Encodes `bytes` as standard base64 (RFC 4648 alphabet with `+` and `/`) with `=` padding,
/// which is what GLib's `g_base64_encode()` produces for NetworkManager.
pub fn base64_padded(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_padded_matches_rfc4648_examples() {
        assert_eq!(base64_padded(b""), "");
        assert_eq!(base64_padded(b"f"), "Zg==");
        assert_eq!(base64_padded(b"fo"), "Zm8=");
        assert_eq!(base64_padded(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_padded(&[0xfb, 0xff]), "+/8=");
    }
}
