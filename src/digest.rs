//! Content digests. Digests are the truth in pgoci: every blob is checked
//! against its `sha256:` digest before anything is unpacked or run, and this
//! module is the one place that knows how.

use crate::error::{Classify, Error, IoContext, Kind, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::io::{self, Read, Write};
use std::path::Path;
use std::str::FromStr;

/// A `sha256:<64 hex>` content digest, validated on construction.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

impl Digest {
    /// The 64 hex characters after `sha256:`.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    /// A short form for names and messages (first 12 hex characters).
    pub fn short(&self) -> &str {
        &self.hex()[..12]
    }

    /// The digest of a byte slice.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        Digest(format!("sha256:{}", hex::encode(Sha256::digest(bytes))))
    }

    /// Hashes a whole file, streaming, and returns its digest and size.
    pub fn of_file(path: &Path) -> Result<(Self, u64)> {
        let mut file = std::fs::File::open(path).with_path(path, "open")?;
        let mut hasher = Hasher::default();
        let size = io::copy(&mut file, &mut hasher).with_path(path, "read")?;
        Ok((hasher.finish(), size))
    }
}

impl FromStr for Digest {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let hex = s
            .strip_prefix("sha256:")
            .ok_or_else(|| DigestError::Unsupported(s.to_string()))?;
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(DigestError::Malformed(s.to_string()).into());
        }
        Ok(Digest(s.to_string()))
    }
}

impl TryFrom<String> for Digest {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A running sha256 that also counts bytes; usable as an `io::Write` sink.
#[derive(Default)]
pub struct Hasher {
    sha: Sha256,
    len: u64,
}

impl Hasher {
    pub fn update(&mut self, bytes: &[u8]) {
        self.sha.update(bytes);
        self.len += bytes.len() as u64;
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn finish(self) -> Digest {
        Digest(format!("sha256:{}", hex::encode(self.sha.finalize())))
    }
}

impl Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A reader that hashes what passes through it and, at end of stream,
/// fails with `InvalidData` unless size and digest match what was expected.
/// Consumers therefore never see a clean EOF on corrupt content.
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Option<Hasher>,
    expected: Digest,
    expected_size: u64,
}

impl<R: Read> VerifyingReader<R> {
    pub fn new(inner: R, expected: Digest, expected_size: u64) -> Self {
        VerifyingReader {
            inner,
            hasher: Some(Hasher::default()),
            expected,
            expected_size,
        }
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let Some(hasher) = self.hasher.as_mut() else {
            return Ok(n);
        };
        hasher.update(&buf[..n]);
        if hasher.len() > self.expected_size {
            return Err(DigestError::TooLong {
                digest: self.expected.clone(),
                size: self.expected_size,
            }
            .into_io());
        }
        if n == 0 {
            let hasher = self.hasher.take().expect("checked above");
            let got = hasher.len();
            let actual = hasher.finish();
            if got != self.expected_size || actual != self.expected {
                return Err(DigestError::Mismatch {
                    expected: self.expected.clone(),
                    actual,
                    got,
                    size: self.expected_size,
                }
                .into_io());
            }
        }
        Ok(n)
    }
}

/// What is wrong with a digest, or with bytes checked against one.
#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    /// A digest of another algorithm than sha256 (or none at all).
    #[error("unsupported digest `{0}`: only sha256 is supported")]
    Unsupported(String),
    /// `sha256:` not followed by 64 lowercase hex characters.
    #[error("malformed digest `{0}`")]
    Malformed(String),
    /// More bytes than the blob's declared size (found while reading).
    #[error("blob {digest} is longer than its {size} bytes")]
    TooLong { digest: Digest, size: u64 },
    /// The bytes read, to their end, are not the blob: another digest or
    /// another size (`got` bytes of the `size` declared).
    #[error("blob {expected} does not match its digest (got {actual}, {got} of {size} bytes)")]
    Mismatch {
        expected: Digest,
        actual: Digest,
        got: u64,
        size: u64,
    },
    /// A manifest or config declared larger than such a document may be:
    /// refused before anything is read.
    #[error("blob {digest} is declared as {size} bytes, more than the {limit}-byte limit for a manifest or config")]
    DeclaredTooLarge {
        digest: Digest,
        size: u64,
        limit: u64,
    },
    /// A blob could not be read through its check (the store beneath
    /// failed, or a check above did: the message is the cause's).
    #[error("{source}")]
    Unreadable {
        digest: Digest,
        #[source]
        source: io::Error,
    },
}

impl DigestError {
    /// As the `InvalidData` error a reader fails with: the same words,
    /// and [`DigestError::from_io`] finds the variant again.
    pub fn into_io(self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, self)
    }

    /// The digest error inside an I/O error from a [`VerifyingReader`],
    /// or the I/O error as what made `digest` unreadable.
    pub fn from_io(digest: &Digest, err: io::Error) -> Self {
        if err.get_ref().is_some_and(|e| e.is::<DigestError>()) {
            let inner = err.into_inner().expect("checked above");
            return *inner.downcast::<DigestError>().expect("checked above");
        }
        DigestError::Unreadable {
            digest: digest.clone(),
            source: err,
        }
    }
}

impl Classify for DigestError {
    fn kind(&self) -> Kind {
        Kind::Integrity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_parses_and_rejects() {
        let d = Digest::of_bytes(b"abc");
        assert_eq!(
            d.to_string(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let err = "sha256:XYZ".parse::<Digest>().unwrap_err();
        assert!(
            matches!(err.typed::<DigestError>(), Some(DigestError::Malformed(s)) if s == "sha256:XYZ"),
            "{err:?}"
        );
        assert_eq!(err.message, "malformed digest `sha256:XYZ`");
        assert_eq!(err.kind, Kind::Integrity);
        let err = "md5:abc".parse::<Digest>().unwrap_err();
        assert!(
            matches!(
                err.typed::<DigestError>(),
                Some(DigestError::Unsupported(_))
            ),
            "{err:?}"
        );
        assert_eq!(
            err.message,
            "unsupported digest `md5:abc`: only sha256 is supported"
        );
    }

    #[test]
    fn verifying_reader_fails_on_wrong_bytes() {
        let good = Digest::of_bytes(b"hello");
        let mut out = Vec::new();
        VerifyingReader::new(&b"hello"[..], good.clone(), 5)
            .read_to_end(&mut out)
            .unwrap();
        let err = VerifyingReader::new(&b"hellp"[..], good.clone(), 5)
            .read_to_end(&mut out)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let wrong = Digest::of_bytes(b"hellp");
        assert_eq!(
            err.to_string(),
            format!("blob {good} does not match its digest (got {wrong}, 5 of 5 bytes)")
        );
        // The check's own error comes back out of the I/O error whole.
        assert!(matches!(
            DigestError::from_io(&good, err),
            DigestError::Mismatch { actual, got: 5, size: 5, .. } if actual == wrong
        ));
        let err = VerifyingReader::new(&b"hello!"[..], good.clone(), 5)
            .read_to_end(&mut out)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(
            err.to_string(),
            format!("blob {good} is longer than its 5 bytes")
        );
        assert!(matches!(
            DigestError::from_io(&good, err),
            DigestError::TooLong { size: 5, .. }
        ));
        // Any other failure to read is kept as the cause, in its words.
        let other = DigestError::from_io(&good, io::Error::other("EIO"));
        assert!(matches!(other, DigestError::Unreadable { .. }));
        let other = Error::from(other);
        assert_eq!(other.message, "EIO");
        assert_eq!(other.kind, Kind::Integrity);
    }
}
