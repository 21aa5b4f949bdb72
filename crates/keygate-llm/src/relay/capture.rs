//! What a relay keeps of the bytes it sends, for an answer cache.

/// What a relay keeps of the bytes it sends: all of them while they stay within `limit`.
pub(super) struct Capture {
    pub(super) limit: usize,
    pub(super) bytes: Option<bytes::BytesMut>,
}

impl Capture {
    pub(super) fn add(&mut self, chunk: &[u8]) {
        if let Some(bytes) = &mut self.bytes {
            if bytes.len() + chunk.len() > self.limit {
                self.bytes = None;
            } else {
                bytes.extend_from_slice(chunk);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_everything_within_the_bound_and_nothing_past_it() {
        let mut capture = Capture {
            limit: 8,
            bytes: Some(bytes::BytesMut::new()),
        };
        capture.add(b"abcd");
        capture.add(b"efgh");
        assert_eq!(capture.bytes.as_deref(), Some(&b"abcdefgh"[..]));
        capture.add(b"i");
        assert!(capture.bytes.is_none(), "a partial answer is never kept");
        capture.add(b"");
        assert!(capture.bytes.is_none());
    }
}
