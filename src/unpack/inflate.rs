//! A layer blob's first thread: read, verified against its digest as it
//! streams, inflated (gzip, zstd or none, from the media type) and handed
//! to the tar parser in chunks.

use crate::digest::VerifyingReader;
use crate::lock::Blob;
use std::io::{self, Read};

/// How a layer is compressed, from its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// The compression a layer media type implies; `None` if not a layer type pgoci reads.
    pub fn from_media_type(media_type: &str) -> Option<Self> {
        match media_type {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Some(Compression::None),
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip" => Some(Compression::Gzip),
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
            | "application/vnd.docker.image.rootfs.diff.tar.zstd" => Some(Compression::Zstd),
            _ => None,
        }
    }
}

/// Chunks of inflated bytes in flight between the two threads of a layer.
const PIPE_CHUNKS: usize = 8;
const PIPE_CHUNK_BYTES: usize = 256 << 10;

/// The first thread of a layer: reads the blob, verifies its digest,
/// inflates it and hands the bytes over. A digest mismatch, found when the
/// blob ends, is the last thing sent.
pub(crate) fn inflate(reader: impl Read, blob: &Blob, compression: Compression, tx: Sender) {
    let mut verifying = VerifyingReader::new(reader, blob.digest.clone(), blob.size);
    let result = (|| -> io::Result<()> {
        {
            let mut decoder: Box<dyn Read + '_> = match compression {
                Compression::None => Box::new(&mut verifying),
                Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(&mut verifying)),
                Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(&mut verifying)?),
            };
            loop {
                let mut chunk = vec![0u8; PIPE_CHUNK_BYTES];
                let n = match decoder.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                chunk.truncate(n);
                if tx.send(Ok(chunk)).is_err() {
                    return Ok(()); // the tar side stopped: it reports why
                }
            }
        }
        // Trailing bytes after the compressed stream still count.
        io::copy(&mut verifying, &mut io::sink()).map(drop)
    })();
    if let Err(e) = result {
        let _ = tx.send(Err(e));
    }
}

/// The channel between the two threads of a layer: the sender for
/// [`inflate`], the reading end for the tar parser.
pub(crate) fn pipe() -> (Sender, Piped) {
    let (tx, rx) = std::sync::mpsc::sync_channel(PIPE_CHUNKS);
    let piped = Piped {
        rx,
        chunk: Vec::new(),
        at: 0,
    };
    (tx, piped)
}

/// Inflated bytes on their way to the tar parser.
pub(crate) type Sender = std::sync::mpsc::SyncSender<io::Result<Vec<u8>>>;

/// The second thread's view of the inflated bytes.
pub(crate) struct Piped {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    at: usize,
}

impl Read for Piped {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.chunk = chunk;
                    self.at = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0), // the blob is whole and verified
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
