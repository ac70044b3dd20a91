//! SHA-256 digests as they appear in manifests and indexes: 64 lowercase hex digits.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Digest as _;

/// A SHA-256 digest. Parsed strictly (64 hex digits) and printed in lowercase.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256(pub [u8; 32]);

/// A string that is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a SHA-256 digest (64 hex digits): {0:?}")]
pub struct ParseDigestError(pub String);

impl Sha256 {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        let mut h = Sha256Hasher::new();
        h.update(bytes);
        h.finish()
    }

    /// The digest and length of everything `r` yields (a file, a zip entry, ...).
    pub fn of_reader(r: impl std::io::Read) -> std::io::Result<(Self, u64)> {
        let mut h = Sha256Hasher::new();
        let n = h.read_from(r)?;
        Ok((h.finish(), n))
    }

    /// Lowercase hex, as used in blob names.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({})", self.hex())
    }
}

impl FromStr for Sha256 {
    type Err = ParseDigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseDigestError(s.chars().take(80).collect());
        if s.len() != 64
            || !s
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(err());
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| err())?;
        Ok(Sha256(out))
    }
}

impl Serialize for Sha256 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.hex())
    }
}

impl<'de> Deserialize<'de> for Sha256 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An incremental SHA-256, so that I/O code can hash while it streams.
#[derive(Clone, Default)]
pub struct Sha256Hasher(sha2::Sha256);

impl fmt::Debug for Sha256Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sha256Hasher")
    }
}

impl Sha256Hasher {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    /// Feeds everything `r` yields, in 1 MiB reads; returns how many bytes.
    pub fn read_from(&mut self, mut r: impl std::io::Read) -> std::io::Result<u64> {
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0u64;
        loop {
            match r.read(&mut buf) {
                Ok(0) => return Ok(n),
                Ok(k) => {
                    self.update(&buf[..k]);
                    n += k as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    pub fn finish(self) -> Sha256 {
        Sha256(self.0.finalize().into())
    }
}

/// A writer that hashes what passes through it and refuses to go past `cap` bytes:
/// what every copy of signed content (a download, a blob, a patched file) goes through.
#[derive(Debug)]
pub struct CappedWriter<W> {
    inner: W,
    hasher: Sha256Hasher,
    written: u64,
    cap: u64,
}

impl<W: std::io::Write> CappedWriter<W> {
    pub fn new(inner: W, cap: u64) -> Self {
        CappedWriter {
            inner,
            hasher: Sha256Hasher::new(),
            written: 0,
            cap,
        }
    }
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }
    /// Copies everything `from` yields into this writer through `buf`; `grew` hears
    /// the running total. Returns the bytes this call copied. A file written in
    /// pieces (a patch's frames) pumps once per piece and is hashed once, whole.
    pub fn pump<R: std::io::Read + ?Sized>(
        &mut self,
        from: &mut R,
        buf: &mut [u8],
        mut grew: impl FnMut(u64),
    ) -> Result<u64, CopyError> {
        let begin = self.written;
        loop {
            let k = match from.read(buf) {
                Ok(0) => return Ok(self.written - begin),
                Ok(k) => k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(CopyError::Read(e)),
            };
            if self.written + k as u64 > self.cap {
                return Err(CopyError::TooLong { cap: self.cap });
            }
            std::io::Write::write_all(self, &buf[..k]).map_err(CopyError::Write)?;
            grew(self.written);
        }
    }
    /// The digest and length of everything written, and the inner writer.
    pub fn finish(self) -> (Sha256, u64, W) {
        (self.hasher.finish(), self.written, self.inner)
    }
}

impl<W: std::io::Write> std::io::Write for CappedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.written + buf.len() as u64 > self.cap {
            return Err(std::io::Error::new(
                std::io::ErrorKind::FileTooLarge,
                CopyError::TooLong { cap: self.cap },
            ));
        }
        let k = self.inner.write(buf)?;
        self.hasher.update(&buf[..k]);
        self.written += k as u64;
        Ok(k)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Why [`copy_capped`] stopped early.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("reading failed: {0}")]
    Read(std::io::Error),
    #[error("writing failed: {0}")]
    Write(std::io::Error),
    #[error("the content goes on past its signed size of {cap} bytes")]
    TooLong { cap: u64 },
}

/// Copies `from` into `to` through `buf` (callers that copy many files reuse one),
/// hashing every byte and refusing to write past `cap` bytes; `grew` hears the
/// running total. Returns the digest and length.
pub fn copy_capped<R: std::io::Read + ?Sized, W: std::io::Write + ?Sized>(
    from: &mut R,
    to: &mut W,
    cap: u64,
    buf: &mut [u8],
    grew: impl FnMut(u64),
) -> Result<(Sha256, u64), CopyError> {
    let mut out = CappedWriter::new(to, cap);
    out.pump(from, buf, grew)?;
    let (digest, n, _) = out.finish();
    Ok((digest, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest_and_round_trip() {
        let d = Sha256::of(b"abc");
        assert_eq!(
            d.hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(d.hex().parse::<Sha256>(), Ok(d));
    }

    #[test]
    fn readers_hash_like_slices() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(
            Sha256::of_reader(&data[..]).expect("read"),
            (Sha256::of(&data), data.len() as u64)
        );
    }

    #[test]
    fn rejects_upper_case_short_and_non_hex() {
        let upper = "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD";
        assert!(upper.parse::<Sha256>().is_err());
        assert!("abcd".parse::<Sha256>().is_err());
        assert!("g".repeat(64).parse::<Sha256>().is_err());
    }

    #[test]
    fn a_capped_copy_hashes_and_stops_at_the_cap() {
        let data: Vec<u8> = (0..2_500_000u32).map(|i| (i % 249) as u8).collect();
        let mut out = Vec::new();
        let mut seen = 0;
        let mut buf = vec![0u8; 1 << 20];
        let got = copy_capped(&mut &data[..], &mut out, data.len() as u64, &mut buf, |n| {
            seen = n
        });
        assert_eq!(got.expect("copy"), (Sha256::of(&data), data.len() as u64));
        assert_eq!((out, seen), (data.clone(), data.len() as u64));
        let mut out = Vec::new();
        let got = copy_capped(&mut &data[..], &mut out, 1_000_000, &mut buf, |_| {});
        assert!(
            matches!(got, Err(CopyError::TooLong { cap: 1_000_000 })),
            "{got:?}"
        );
        assert!(out.len() <= 1_000_000);
        let mut w = CappedWriter::new(Vec::new(), 3);
        assert!(std::io::Write::write_all(&mut w, b"abcd").is_err());
    }
}
