//! One open archive read by several threads at once.
//!
//! Each [`SharedFile`] clone has its own position and reads with positioned reads
//! (`pread`), so the unpack's workers share one file handle and one parsed central
//! directory (`zip::ZipArchive` is `Clone` over a `Clone` reader) instead of each
//! opening and parsing the archive again.

use fs_err::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;

/// A cheap-to-clone reader over one file; see the module documentation.
#[derive(Debug, Clone)]
pub struct SharedFile {
    file: Arc<File>,
    len: u64,
    pos: u64,
}

impl SharedFile {
    pub fn new(file: File) -> io::Result<SharedFile> {
        let len = file.metadata()?.len();
        Ok(SharedFile {
            file: Arc::new(file),
            len,
            pos: 0,
        })
    }
}

impl Read for SharedFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = read_at(self.file.file(), buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for SharedFile {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.pos = seek_within(self.pos, self.len, to)?;
        Ok(self.pos)
    }
}

/// Where a seek `to` from `pos` in something `len` bytes long lands; an error
/// before the start or past `u64`.
pub(super) fn seek_within(pos: u64, len: u64, to: SeekFrom) -> io::Result<u64> {
    match to {
        SeekFrom::Start(p) => Some(p),
        SeekFrom::End(d) => len.checked_add_signed(d),
        SeekFrom::Current(d) => pos.checked_add_signed(d),
    }
    .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))
}

/// One positioned read (the handle's own position is not used).
#[cfg(unix)]
pub(super) fn read_at(f: &std::fs::File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(f, buf, at)
}

#[cfg(windows)]
pub(super) fn read_at(f: &std::fs::File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    // Moves the handle's own cursor, which no one else uses.
    std::os::windows::fs::FileExt::seek_read(f, buf, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_read_independently() {
        let t = tempfile::tempdir().expect("tempdir");
        let p = t.path().join("f");
        fs_err::write(&p, b"0123456789").expect("write");
        let mut a = SharedFile::new(File::open(&p).expect("open")).expect("new");
        let mut b = a.clone();
        let mut x = [0u8; 4];
        a.read_exact(&mut x).expect("read");
        assert_eq!(&x, b"0123");
        b.seek(SeekFrom::End(-3)).expect("seek");
        let mut rest = Vec::new();
        b.read_to_end(&mut rest).expect("read");
        assert_eq!(rest, b"789");
        a.read_exact(&mut x).expect("read");
        assert_eq!(&x, b"4567");
        assert!(a.seek(SeekFrom::Current(-100)).is_err());
    }
}
