//! Size caps on the documents pgoci reads (locks, profiles, `index.json`,
//! manifests, configs), checked while reading so an oversized file never
//! enters memory whole.

use std::io::Read;
use std::path::Path;

/// The largest JSON or YAML document pgoci reads (locks, profiles,
/// `index.json`, manifests, image configs).
pub const DOCUMENT_CAP: u64 = 4 << 20;

/// Why a capped read failed.
#[derive(Debug)]
pub enum ReadError {
    Io(std::io::Error),
    /// The document is larger than the cap (in bytes).
    TooLarge(u64),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::TooLarge(cap) => write!(f, "larger than the {cap}-byte limit"),
        }
    }
}

/// Reads at most `cap` bytes from `reader`; more is an error.
pub fn read_capped(reader: impl Read, cap: u64) -> Result<Vec<u8>, ReadError> {
    let mut out = Vec::new();
    reader
        .take(cap + 1)
        .read_to_end(&mut out)
        .map_err(ReadError::Io)?;
    if out.len() as u64 > cap {
        return Err(ReadError::TooLarge(cap));
    }
    Ok(out)
}

/// Reads a whole file of at most `cap` bytes.
pub fn read_file_capped(path: &Path, cap: u64) -> Result<Vec<u8>, ReadError> {
    read_capped(std::fs::File::open(path).map_err(ReadError::Io)?, cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_more_than_the_cap() {
        assert_eq!(read_capped(&[1u8; 10][..], 10).unwrap().len(), 10);
        assert!(matches!(
            read_capped(&[1u8; 11][..], 10),
            Err(ReadError::TooLarge(10))
        ));
    }
}
