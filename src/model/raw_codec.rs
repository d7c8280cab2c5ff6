//! The raw objects a snapshot holds, compressed. A pull holds every user's raw object until it
//! is written (at 1M users, ≈ 380 MB of JSON that is mostly the same keys and schema URNs
//! again), so [`super::PackedUser`] keeps it compressed with zstd against a dictionary of the
//! sources' object shapes (`raw_dictionary.txt`: one object each as SCIM, JumpCloud, Microsoft
//! Graph, Okta and a `file` IdP return them, the most common shape last). Only the users a
//! write changes are decompressed.
use std::cell::RefCell;
use std::sync::OnceLock;

use zstd::bulk::{Compressor, Decompressor};
use zstd::dict::{DecoderDictionary, EncoderDictionary};

/// Example objects of every source's shape, back to back (a zstd raw-content dictionary).
const DICTIONARY: &[u8] = include_bytes!("raw_dictionary.txt");

/// zstd's fastest regular level: compressing is on every pulled user's path.
const LEVEL: i32 = 1;

fn encoder_dictionary() -> &'static EncoderDictionary<'static> {
    static D: OnceLock<EncoderDictionary<'static>> = OnceLock::new();
    D.get_or_init(|| EncoderDictionary::copy(DICTIONARY, LEVEL))
}

fn decoder_dictionary() -> &'static DecoderDictionary<'static> {
    static D: OnceLock<DecoderDictionary<'static>> = OnceLock::new();
    D.get_or_init(|| DecoderDictionary::copy(DICTIONARY))
}

thread_local! {
    // A context per thread: connectors pack users on several threads at once.
    // With the buffer it compresses into, reused.
    static COMPRESSOR: RefCell<(Option<Compressor<'static>>, Vec<u8>)> = const { RefCell::new((None, Vec::new())) };
    static DECOMPRESSOR: RefCell<Option<Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Objects shorter than this are held as they are: compressing one costs about 1.5 µs, which
/// an object this short repays with under ~80 bytes (`gen`'s 100-byte objects gained 19 MB a
/// side for 4 s more).
const MIN_LEN: usize = 192;

/// Call `with` with `raw` compressed, or with `None` when it is short or compressing would not
/// make it shorter.
pub(super) fn compressed<T>(raw: &str, with: impl FnOnce(Option<&[u8]>) -> T) -> T {
    if raw.len() < MIN_LEN {
        return with(None);
    }
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        let (compressor, out) = &mut *c;
        if compressor.is_none() {
            *compressor = Compressor::with_prepared_dictionary(encoder_dictionary()).ok();
        }
        out.clear();
        out.reserve(zstd::zstd_safe::compress_bound(raw.len()));
        let done = compressor.as_mut().map(|c| c.compress_to_buffer(raw.as_bytes(), out));
        with(matches!(done, Some(Ok(n)) if n < raw.len()).then_some(&out[..]))
    })
}

/// The text [`compressed`] gave `bytes` for; `len` is its length in bytes.
pub(super) fn decompress(bytes: &[u8], len: usize) -> String {
    let out = DECOMPRESSOR.with(|d| {
        let mut d = d.borrow_mut();
        let d =
            d.get_or_insert_with(|| Decompressor::with_prepared_dictionary(decoder_dictionary()).expect("a zstd context can be allocated"));
        d.decompress(bytes, len)
    });
    let out = out.expect("a raw object compressed in this process decompresses");
    String::from_utf8(out).expect("a raw object compressed from text is text")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_of_every_source_shape_come_back_as_they_were_and_shorter() {
        let dictionary = std::str::from_utf8(DICTIONARY).unwrap();
        let samples: Vec<String> = dictionary
            .lines()
            .map(|l| l.replace("Jane", "Maëlle").replace("000001", "424242"))
            .collect();
        assert_eq!(samples.len(), 6, "one object per source shape");
        for s in &samples {
            let packed = compressed(s, |c| c.map(<[u8]>::to_vec)).expect("an object like the dictionary's compresses");
            assert!(packed.len() * 3 < s.len(), "{} bytes of {}", packed.len(), s.len());
            assert_eq!(decompress(&packed, s.len()), *s);
        }
    }

    #[test]
    fn a_short_object_is_not_compressed() {
        let held = |raw: &str| compressed(raw, |c| c.map(<[u8]>::to_vec));
        assert_eq!(held(""), None);
        assert_eq!(held(r#"{"id":"u1","userName":"user1@example.com","active":true}"#), None);
    }

    #[test]
    fn compressing_on_many_threads_at_once_gives_each_its_own_text_back() {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                std::thread::spawn(move || {
                    (0..500).all(|i| {
                        let raw = format!(
                            r#"{{"active":true,"displayName":"User {i}","emails":[{{"primary":true,"value":"user{i}@example.com"}}],"id":"u{t}-{i}","meta":{{"resourceType":"User"}},"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"user{i}@example.com"}}"#
                        );
                        let packed = compressed(&raw, |c| c.map(<[u8]>::to_vec)).expect("compressed");
                        decompress(&packed, raw.len()) == raw
                    })
                })
            })
            .collect();
        assert!(handles.into_iter().all(|h| h.join().unwrap()));
    }
}
