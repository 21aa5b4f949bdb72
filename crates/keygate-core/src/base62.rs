//! Fixed-width base62 encoding (`0-9A-Za-z`) for key secrets and checksums.

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Encodes a big-endian unsigned integer into exactly `width` base62 digits, most significant
/// first. The caller picks a width large enough for the input (`62^width >= 256^len`).
pub(crate) fn encode_fixed(bytes: &[u8], width: usize) -> String {
    let mut number = bytes.to_vec();
    let mut digits = vec![b'0'; width];
    for slot in digits.iter_mut().rev() {
        let mut remainder: u32 = 0;
        for byte in number.iter_mut() {
            let acc = (remainder << 8) | u32::from(*byte);
            // `acc / 62` fits in a byte because `remainder < 62`.
            *byte = u8::try_from(acc / 62).unwrap_or(u8::MAX);
            remainder = acc % 62;
        }
        *slot = ALPHABET[remainder as usize];
    }
    digits.into_iter().map(char::from).collect()
}

/// The value of one base62 digit, or `None` for any other character.
pub(crate) fn digit_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'Z' => Some(c - b'A' + 10),
        b'a'..=b'z' => Some(c - b'a' + 36),
        _ => None,
    }
}

/// Decodes up to 10 base62 digits into a `u64`; `None` on a non-base62 character or overflow.
pub(crate) fn decode_u64(text: &[u8]) -> Option<u64> {
    text.iter().try_fold(0u64, |acc, &c| {
        acc.checked_mul(62)?.checked_add(u64::from(digit_value(c)?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_known_values() {
        assert_eq!(encode_fixed(&[0], 3), "000");
        assert_eq!(encode_fixed(&[61], 2), "0z");
        assert_eq!(encode_fixed(&[62], 2), "10");
        assert_eq!(encode_fixed(&0xFFFF_FFFFu32.to_be_bytes(), 6), "4gfFC3");
    }

    #[test]
    fn max_256_bit_value_fits_43_digits() {
        let max = encode_fixed(&[0xFF; 32], 43);
        assert_eq!(max.len(), 43);
        assert_ne!(max.as_bytes()[0], b'0');
    }

    #[test]
    fn decode_inverts_encode() {
        for value in [0u32, 1, 61, 62, 3_843, 0xDEAD_BEEF, u32::MAX] {
            let text = encode_fixed(&value.to_be_bytes(), 6);
            assert_eq!(decode_u64(text.as_bytes()), Some(u64::from(value)));
        }
        assert_eq!(decode_u64(b"ab-c"), None);
    }
}
