//! An append-only log of checksummed, length-prefixed frames.
//!
//! Frame: `len u32 LE | first 4 bytes of SHA-256(payload) | payload`. On open every frame is
//! read and checked; the log is cut at the first torn or corrupt frame, with a warning.
//! Whatever is cut is first saved beside the log: a damaged length field can make intact
//! frames behind it look like a torn tail, so no guess decides what is safe to destroy.
//!
//! An append that fails (a full disk, an I/O error) is cut back to the last good frame at
//! once, so a failed write never leaves a torn frame in the middle of the file for the
//! next open to cut everything after; if even the cut fails, the next append makes it
//! first.

use super::crypto::Hash;
use crate::codec::MAX_MESSAGE_BYTES;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Bytes before each frame's payload.
pub const FRAME_HEADER: usize = 8;

/// Why the log was cut when it was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Damage {
    /// The last frame ends past the end of the file (a write cut short by a crash).
    TornTail,
    /// A frame's checksum does not match its payload, or its length is impossible.
    Corrupt,
}

/// What opening a log found wrong, if anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Offset at which the log was cut.
    pub offset: u64,
    /// What was wrong there.
    pub damage: Damage,
    /// Where the bytes from `offset` on were saved.
    pub saved_to: PathBuf,
}

/// An open log, positioned at its end.
#[derive(Debug)]
pub struct FrameLog {
    file: File,
    path: PathBuf,
    /// Bytes of whole frames written.
    len: u64,
    /// A failed append left bytes past `len` that could not be cut yet.
    torn: bool,
}

/// Frame a payload into bytes ready to append.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    frames([payload])
}

/// Frames payloads back to back into one buffer, ready to append in one write.
fn frames<'a>(payloads: impl IntoIterator<Item = &'a [u8]> + Clone) -> Vec<u8> {
    let size = payloads
        .clone()
        .into_iter()
        .map(|p| FRAME_HEADER + p.len())
        .sum();
    let mut out = Vec::with_capacity(size);
    for p in payloads {
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(&Hash::digest(p).0[..4]);
        out.extend_from_slice(p);
    }
    out
}

impl FrameLog {
    /// Opens (or creates) the log at `path`; returns it with every intact payload in order
    /// and what, if anything, had to be cut.
    pub fn open(path: &Path) -> io::Result<(FrameLog, Vec<Vec<u8>>, Option<Recovery>)> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let (payloads, good_len, damage) = scan(&bytes);
        let mut recovery = None;
        if let Some(damage) = damage {
            let saved_to = path.with_extension(format!("cut-{good_len}"));
            std::fs::write(&saved_to, &bytes[good_len..])?;
            tracing::warn!(
                log = %path.display(),
                offset = good_len,
                cut = bytes.len() - good_len,
                ?damage,
                saved_to = %saved_to.display(),
                "log had a damaged tail; cut it at the last intact frame"
            );
            recovery = Some(Recovery {
                offset: good_len as u64,
                damage,
                saved_to,
            });
        }
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)?;
        if recovery.is_some() {
            file.set_len(good_len as u64)?;
            file.sync_all()?;
        }
        let log = FrameLog {
            file,
            path: path.to_path_buf(),
            len: good_len as u64,
            torn: false,
        };
        Ok((log, payloads, recovery))
    }

    /// Appends one frame and waits until it is on disk.
    pub fn append(&mut self, payload: &[u8]) -> io::Result<()> {
        self.append_all(&[payload], true)
    }

    /// Appends frames in one write; with `sync`, waits until they (and every frame
    /// before) are on disk. On failure the log is cut back to where it was.
    pub fn append_all(&mut self, payloads: &[&[u8]], sync: bool) -> io::Result<()> {
        if self.torn {
            self.cut_back()?;
        }
        let bytes = frames(payloads.iter().copied());
        let written =
            self.file.write_all(&bytes).and_then(
                |()| {
                    if sync {
                        self.file.sync_data()
                    } else {
                        Ok(())
                    }
                },
            );
        if let Err(e) = written {
            self.torn = true;
            if let Err(cut) = self.cut_back() {
                tracing::error!(log = %self.path.display(), error = %cut, "could not cut a failed append back");
            }
            return Err(e);
        }
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// A second handle on the log's file, for fsyncing it from another thread.
    pub fn sync_handle(&self) -> io::Result<File> {
        self.file.try_clone()
    }

    /// Waits until every frame appended so far is on disk.
    pub fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Cuts whatever a failed append left after the last whole frame.
    fn cut_back(&mut self) -> io::Result<()> {
        self.file.set_len(self.len)?;
        self.file.sync_data()?;
        self.torn = false;
        Ok(())
    }

    /// Replaces the whole log with `payloads`, atomically (write aside, fsync, rename).
    /// On failure the log is left as it was and the copy aside removed.
    pub fn rewrite(&mut self, payloads: &[Vec<u8>]) -> io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        let written = (|| {
            let mut f = File::create(&tmp)?;
            // One write for the whole file, not one system call per frame.
            let bytes = frames(payloads.iter().map(Vec::as_slice));
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            Ok(bytes.len() as u64)
        })();
        let len = match written {
            Ok(len) => len,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        if let Some(dir) = self.path.parent() {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        self.file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&self.path)?;
        self.len = len;
        self.torn = false;
        Ok(())
    }

    /// Current length of the log in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the log holds no frame.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Splits `bytes` into payloads; returns them, the length of the intact prefix, and the
/// damage found after it.
fn scan(bytes: &[u8]) -> (Vec<Vec<u8>>, usize, Option<Damage>) {
    let mut payloads = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        if rest.len() < FRAME_HEADER {
            return (payloads, pos, Some(Damage::TornTail));
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if len > MAX_MESSAGE_BYTES {
            return (payloads, pos, Some(Damage::Corrupt));
        }
        let Some(payload) = rest.get(FRAME_HEADER..FRAME_HEADER + len) else {
            return (payloads, pos, Some(Damage::TornTail));
        };
        if Hash::digest(payload).0[..4] != rest[4..8] {
            // A bad checksum on the very last frame is what a crash mid-write leaves when
            // the file system extended the file before the data reached the disk.
            let last = FRAME_HEADER + len == rest.len();
            let damage = if last {
                Damage::TornTail
            } else {
                Damage::Corrupt
            };
            return (payloads, pos, Some(damage));
        }
        payloads.push(payload.to_vec());
        pos += FRAME_HEADER + len;
    }
    (payloads, pos, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let (mut log, frames, rec) = FrameLog::open(&path).unwrap();
        assert!(frames.is_empty() && rec.is_none() && log.is_empty());
        log.append(b"one").unwrap();
        log.append(b"").unwrap();
        log.append(b"three").unwrap();
        drop(log);
        let (log, frames, rec) = FrameLog::open(&path).unwrap();
        assert_eq!(frames, vec![b"one".to_vec(), vec![], b"three".to_vec()]);
        assert!(rec.is_none());
        assert_eq!(log.len(), std::fs::metadata(&path).unwrap().len());
    }

    #[test]
    fn rewrite_replaces_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let (mut log, _, _) = FrameLog::open(&path).unwrap();
        log.append(b"a").unwrap();
        log.rewrite(&[b"b".to_vec()]).unwrap();
        log.append(b"c").unwrap();
        drop(log);
        let (_, frames, _) = FrameLog::open(&path).unwrap();
        assert_eq!(frames, vec![b"b".to_vec(), b"c".to_vec()]);
    }
}
