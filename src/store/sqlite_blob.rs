//! How the SQLite store keeps large blobs — a message as received (`messages.raw`) and an outbox
//! body (`outbox_bodies.body`): compressed with zstd when that saves space, with a codec column
//! saying so. Messages are XML and JSON and shrink to a third or a quarter; every byte the writer
//! saves is written twice (to the WAL and back into the database), and a 10 KB message that fits
//! in one page instead of three needs no overflow pages. PostgreSQL does the same for large values
//! by itself (TOAST), so its store has no such column.
//!
//! Invariants: what goes in comes out byte for byte (the store's callers never see a codec); a
//! blob whose codec is unknown is an error, never returned as it is.

use std::borrow::Cow;
use std::cell::RefCell;

/// The codec column's value for a zstd frame.
pub(super) const ZSTD: &str = "zstd";

/// Blobs smaller than this are kept as they are (compression would save little).
const MIN_PACKED: usize = 512;

/// zstd level: the fastest, which already takes a KITH or FHIR message to about a quarter.
const LEVEL: i32 = 1;

thread_local! {
    /// One compression context per thread (the store's writer), not one per blob.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
}

/// A blob as it is to be stored, and its codec (`None` = as it is).
pub(super) struct Packed<'a> {
    pub bytes: Cow<'a, [u8]>,
    pub codec: Option<&'static str>,
}

/// `bytes` compressed when that makes them at least an eighth smaller, else as they are.
pub(super) fn pack(bytes: &[u8]) -> Packed<'_> {
    let plain = || Packed {
        bytes: Cow::Borrowed(bytes),
        codec: None,
    };
    if bytes.len() < MIN_PACKED {
        return plain();
    }
    let packed = COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            *c = zstd::bulk::Compressor::new(LEVEL).ok();
        }
        c.as_mut()?.compress(bytes).ok()
    });
    match packed {
        Some(p) if p.len() <= bytes.len() - bytes.len() / 8 => Packed {
            bytes: Cow::Owned(p),
            codec: Some(ZSTD),
        },
        _ => plain(),
    }
}

/// The stored blob `bytes` (read from column `column`) with codec `codec`, as it was given.
pub(super) fn unpack(
    bytes: Vec<u8>,
    codec: Option<String>,
    column: usize,
) -> rusqlite::Result<Vec<u8>> {
    let fail = |reason: String| {
        rusqlite::Error::FromSqlConversionFailure(
            column,
            rusqlite::types::Type::Blob,
            reason.into(),
        )
    };
    match codec.as_deref() {
        None => Ok(bytes),
        Some(ZSTD) => zstd::stream::decode_all(bytes.as_slice())
            .map_err(|e| fail(format!("stored blob does not decompress: {e}"))),
        Some(other) => Err(fail(format!("unknown blob codec {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_goes_in_comes_out() {
        let message = std::fs::read("fixtures/load/fhir-referral-10k.json").unwrap_or_default();
        assert!(message.len() > 10_000);
        let small = b"<MsgHead/>".to_vec();
        let mut rng = fastrand::Rng::with_seed(7);
        let random: Vec<u8> = (0..4096).map(|_| rng.u8(..)).collect();
        for (bytes, compressed) in [(&message, true), (&small, false), (&random, false)] {
            let p = pack(bytes);
            assert_eq!(p.codec.is_some(), compressed, "{} bytes", bytes.len());
            if compressed {
                assert!(p.bytes.len() < bytes.len() / 2, "{}", p.bytes.len());
            }
            let codec = p.codec.map(str::to_owned);
            let back = unpack(p.bytes.into_owned(), codec, 0).unwrap_or_default();
            assert_eq!(&back, bytes);
        }
    }

    #[test]
    fn an_unknown_or_broken_blob_is_an_error() {
        assert!(unpack(b"abc".to_vec(), Some("lz9".into()), 3).is_err());
        assert!(unpack(b"not zstd".to_vec(), Some(ZSTD.into()), 3).is_err());
    }
}
