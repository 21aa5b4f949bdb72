//! Takes a credential out of what the upstream answers, should the upstream echo it (an error
//! quoting the key it was given, a redirect to a URL holding it): the client must never see
//! the private credential its keygate key stands for. One scrubber for whole bodies, streamed
//! bodies and events alike; it works on bytes (nothing is decoded or re-encoded) and wipes
//! the secret and the bytes it holds back when dropped.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

/// What an echoed credential becomes.
const REDACTED: &[u8] = b"[redacted]";
/// Shorter credentials are not searched for: a needle that short would match ordinary text.
const SHORTEST: usize = 8;

/// A streaming search-and-replace of one secret. Bytes that may be the start of a secret
/// split across chunks are held back until the next chunk (or the end) decides.
pub struct Scrubber {
    needle: Zeroizing<Vec<u8>>,
    held: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Scrubber {
    /// Leaves the secret (and the held bytes, which may begin it) out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scrubber")
            .field("held", &self.held.len())
            .finish_non_exhaustive()
    }
}

impl Scrubber {
    /// `None` when there is nothing to search for.
    pub fn new(secret: &str) -> Option<Self> {
        (secret.len() >= SHORTEST).then(|| Self {
            needle: Zeroizing::new(secret.as_bytes().to_vec()),
            held: Zeroizing::new(Vec::new()),
        })
    }

    /// The bytes of `chunk` (after those held back) that are decided, with the secret
    /// replaced.
    pub fn push(&mut self, chunk: &[u8]) -> Bytes {
        self.held.extend_from_slice(chunk);
        let n = self.needle.len();
        let mut out = Vec::with_capacity(self.held.len());
        let mut i = 0;
        while i + n <= self.held.len() {
            if self.held[i] == self.needle[0] && self.held[i..i + n] == self.needle[..] {
                out.extend_from_slice(REDACTED);
                i += n;
            } else {
                out.push(self.held[i]);
                i += 1;
            }
        }
        // Fewer than `n` bytes are left: they may begin the secret.
        self.held.drain(..i);
        Bytes::from(out)
    }

    /// What is still held back, once the body has ended: too short to be the secret.
    pub fn finish(&mut self) -> Bytes {
        Bytes::from(std::mem::take(&mut *self.held))
    }

    /// Whether `text` holds the secret (for header values).
    pub fn found_in(&self, text: &[u8]) -> bool {
        text.windows(self.needle.len())
            .any(|w| w == self.needle.as_slice())
    }
}

/// A whole body with `credential` replaced wherever it appears; the body itself when there is
/// no credential or it does not appear (no copy).
pub fn scrub_body(body: Bytes, credential: Option<&SecretString>) -> Bytes {
    let Some(mut scrubber) = credential.and_then(|secret| Scrubber::new(secret.expose_secret()))
    else {
        return body;
    };
    if !scrubber.found_in(&body) {
        return body;
    }
    let mut out = scrubber.push(&body).to_vec();
    out.extend_from_slice(&scrubber.finish());
    Bytes::from(out)
}

/// `body` with the secret replaced wherever it appears, across chunk boundaries too.
pub fn scrub_stream<S, E>(body: S, scrubber: Scrubber) -> impl Stream<Item = Result<Bytes, E>>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    futures_util::stream::unfold(
        (body, Some(scrubber)),
        |(mut body, mut scrubber)| async move {
            let active = scrubber.as_mut()?;
            match body.next().await {
                Some(Ok(chunk)) => {
                    let out = active.push(&chunk);
                    Some((Ok(out), (body, scrubber)))
                }
                Some(Err(err)) => Some((Err(err), (body, None))),
                None => {
                    let rest = active.finish();
                    Some((Ok(rest), (body, None)))
                }
            }
        },
    )
    .filter(|item| std::future::ready(!matches!(item, Ok(bytes) if bytes.is_empty())))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const SECRET: &str = "sk_live_0123456789abcdef";

    fn scrub_all(chunks: &[&[u8]]) -> Vec<u8> {
        let mut scrubber = Scrubber::new(SECRET).unwrap();
        let mut out = Vec::new();
        for chunk in chunks {
            out.extend_from_slice(&scrubber.push(chunk));
        }
        out.extend_from_slice(&scrubber.finish());
        out
    }

    #[test]
    fn a_whole_body_is_scrubbed_without_a_copy_when_clean() {
        let secret = SecretString::from("sk-test-1234567890");
        let body = Bytes::from_static(br#"{"error":{"message":"bad key sk-test-1234567890"}}"#);
        let scrubbed = scrub_body(body, Some(&secret));
        assert_eq!(
            &scrubbed[..],
            br#"{"error":{"message":"bad key [redacted]"}}"#
        );
        let clean = Bytes::from_static(b"\xff not utf-8, no secret");
        let same = scrub_body(clean.clone(), Some(&secret));
        assert_eq!(same.as_ptr(), clean.as_ptr(), "untouched, not copied");
        assert_eq!(scrub_body(clean.clone(), None), clean);
    }

    #[test]
    fn a_secret_split_across_chunks_is_replaced() {
        let body = format!(r#"{{"error":"invalid key {SECRET}", "again": "{SECRET}"}}"#);
        let (a, b) = body.as_bytes().split_at(30);
        let out = String::from_utf8(scrub_all(&[a, b])).unwrap();
        assert_eq!(
            out,
            r#"{"error":"invalid key [redacted]", "again": "[redacted]"}"#
        );
        assert_eq!(
            scrub_all(&[b"sk_live_01", b"23"]),
            b"sk_live_0123",
            "a prefix only"
        );
        assert!(Scrubber::new("short").is_none());
        // Debug output names neither the secret nor the bytes held back.
        let mut holding = Scrubber::new(SECRET).unwrap();
        holding.push(b"xx sk_live_0123");
        let shown = format!("{holding:?}");
        assert!(
            !shown.contains("sk_live") && !shown.contains("115"),
            "{shown}"
        );
    }

    proptest! {
        /// Wherever the chunks are cut, the secret never comes out, and everything else does.
        #[test]
        fn never_leaks_and_loses_nothing(
            before in "[a-z ]{0,40}",
            after in "[a-z ]{0,40}",
            cuts in proptest::collection::vec(0usize..120, 0..6),
        ) {
            let body = format!("{before}{SECRET}{after}{SECRET}");
            let bytes = body.as_bytes();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut start = 0;
            for cut in cuts {
                chunks.push(&bytes[start..cut]);
                start = cut;
            }
            chunks.push(&bytes[start..]);
            let out = String::from_utf8(scrub_all(&chunks)).unwrap();
            prop_assert_eq!(out, format!("{before}[redacted]{after}[redacted]"));
        }
    }
}
