//! The zip writer of `pack`: entries compressed elsewhere (on any thread, each with
//! its own reused [`Coder`]) and written here in the order given.
//!
//! The layout is fixed so the bootstrapper's streaming unpacker can read an
//! archive from the front while it downloads:
//!
//! - every local header carries the entry's CRC-32 and both sizes (flags bit 3, data
//!   descriptors, is never set; nor is bit 0, encryption). Flags are 0, or bit 11 alone
//!   for a non-ASCII (UTF-8) name.
//! - version needed: 20 for Deflate (method 8), 45 for zstd (method 93, which APPNOTE
//!   gives no version; 45 is what the `zip` crate writes) and for any entry that needs
//!   zip64. Time 0, date 0x0021 (1980-01-01). No extra field, except:
//! - an entry of 0xFFFFFFFF bytes or more either way has both 32-bit size fields set to
//!   0xFFFFFFFF in its local header and a zip64 extra field (id 1) holding both sizes,
//!   uncompressed first.
//! - central directory entries repeat those fields, with version made by
//!   0x0300 | version needed (Unix), external attributes `(0o100000 | mode) << 16` and
//!   the local header's offset; their zip64 extra field holds only the values that
//!   overflowed, in APPNOTE order (uncompressed size, compressed size, offset).
//! - the end of central directory record, preceded by a zip64 end record and its
//!   locator when there are 0xFFFF entries or more, or the directory's offset or size
//!   reaches 0xFFFFFFFF.
//!
//! zstd frames carry their content size (the entry's size is pledged before it is
//! compressed), so zstd sizes each frame's window to the entry: a small file's frame
//! asks its reader for a small window, not the level's 8 MiB.

use std::io::{self, Write};

use zstd::zstd_safe::{self, CCtx, CParameter, InBuffer, OutBuffer, ResetDirective};

/// Zip method 8.
pub const DEFLATE: u16 = 8;
/// Zip method 93.
pub const ZSTD: u16 = 93;
/// Values at or above this do not fit a 32-bit field (which reserves 0xFFFFFFFF).
const FULL32: u64 = 0xFFFF_FFFF;
/// Entry counts at or above this do not fit a 16-bit field.
const FULL16: usize = 0xFFFF;
/// The longest name a central header has room for.
const MAX_NAME: usize = 0xFFFF - 46 - 28;
/// The DOS date of 1980-01-01 (day 1, month 1, year 0); the time is 0.
const DOS_DATE: u16 = 0x0021;

/// How entries are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Raw Deflate (method 8) at level 6.
    Deflate,
    /// zstd (method 93) at this level.
    Zstd(i32),
}

/// Why an entry could not be compressed.
#[derive(Debug, thiserror::Error)]
pub enum CoderError {
    #[error("zstd refused its settings for level {level} ({why}); use a level from 1 to 19")]
    Level { level: i32, why: &'static str },
    #[error("zstd failed: {0}")]
    Zstd(&'static str),
    #[error("Deflate failed: {0}")]
    Deflate(#[from] flate2::CompressError),
}

impl From<CoderError> for io::Error {
    fn from(e: CoderError) -> Self {
        io::Error::other(e)
    }
}

enum Engine {
    Deflate(flate2::Compress),
    Zstd(CCtx<'static>),
}

/// One compression context, kept for the whole run and reused for every entry
/// (a zstd context at level 19 is tens of MiB of tables; making one per file was
/// most of `pack`'s time on a tree of small files).
pub struct Coder {
    engine: Engine,
}

impl std::fmt::Debug for Coder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Coder(method {})", self.method())
    }
}

/// Grows `out` by at least this much before each zstd call.
const CHUNK: usize = 128 << 10;
/// Deflate compresses into pieces of this size. zlib-rs's output depends on how much
/// room each call has, and on the pieces of input it is given (by a few bytes in a
/// megabyte): with 32 KiB, what `flate2::write::DeflateEncoder` gives it, and the
/// 1 MiB pieces `pack` reads, the archives are byte for byte those the `zip` crate
/// wrote for earlier releases.
const DEFLATE_PIECE: usize = 32 << 10;

impl Coder {
    pub fn new(codec: Codec) -> Result<Self, CoderError> {
        let engine = match codec {
            Codec::Deflate => {
                Engine::Deflate(flate2::Compress::new(flate2::Compression::new(6), false))
            }
            Codec::Zstd(level) => {
                let mut cctx = CCtx::create();
                let set = |cctx: &mut CCtx<'static>, p| {
                    cctx.set_parameter(p).map_err(|code| CoderError::Level {
                        level,
                        why: zstd_safe::get_error_name(code),
                    })
                };
                set(&mut cctx, CParameter::CompressionLevel(level))?;
                set(&mut cctx, CParameter::ContentSizeFlag(true))?;
                set(&mut cctx, CParameter::ChecksumFlag(false))?;
                Engine::Zstd(cctx)
            }
        };
        Ok(Coder { engine })
    }

    /// The zip method number of what this coder makes.
    pub fn method(&self) -> u16 {
        match self.engine {
            Engine::Deflate(_) => DEFLATE,
            Engine::Zstd(_) => ZSTD,
        }
    }

    /// Starts an entry of exactly `size` bytes: write them to the returned sink, then
    /// call [`EntrySink::finish`]. For zstd the size is pledged, so the frame records
    /// it and finishing fails if a different number of bytes came.
    pub fn entry(&mut self, size: u64) -> Result<EntrySink<'_>, CoderError> {
        match &mut self.engine {
            Engine::Deflate(c) => c.reset(),
            Engine::Zstd(c) => {
                c.reset(ResetDirective::SessionOnly)
                    .map_err(|code| CoderError::Zstd(zstd_safe::get_error_name(code)))?;
                c.set_pledged_src_size(Some(size))
                    .map_err(|code| CoderError::Zstd(zstd_safe::get_error_name(code)))?;
            }
        }
        Ok(EntrySink {
            coder: self,
            out: Vec::new(),
            scratch: Vec::with_capacity(DEFLATE_PIECE),
            crc: crc32fast::Hasher::new(),
            size: 0,
        })
    }
}

/// The bytes of one entry on their way through a [`Coder`].
pub struct EntrySink<'c> {
    coder: &'c mut Coder,
    out: Vec<u8>,
    /// Deflate's output, piece by piece.
    scratch: Vec<u8>,
    crc: crc32fast::Hasher,
    size: u64,
}

impl std::fmt::Debug for EntrySink<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntrySink")
            .field("coder", &self.coder)
            .field("size", &self.size)
            .field("compressed", &self.out.len())
            .finish()
    }
}

impl EntrySink<'_> {
    fn push(&mut self, data: &[u8]) -> Result<(), CoderError> {
        match &mut self.coder.engine {
            Engine::Deflate(c) => {
                let mut done = 0;
                while done < data.len() {
                    let before = c.total_in();
                    self.scratch.clear();
                    c.compress_vec(
                        &data[done..],
                        &mut self.scratch,
                        flate2::FlushCompress::None,
                    )?;
                    self.out.extend_from_slice(&self.scratch);
                    done += (c.total_in() - before) as usize;
                }
            }
            Engine::Zstd(c) => {
                let mut input = InBuffer::around(data);
                while input.pos() < data.len() {
                    self.out.reserve(CHUNK);
                    let at = self.out.len();
                    let mut output = OutBuffer::around_pos(&mut self.out, at);
                    c.compress_stream2(
                        &mut output,
                        &mut input,
                        zstd_safe::zstd_sys::ZSTD_EndDirective::ZSTD_e_continue,
                    )
                    .map_err(|code| CoderError::Zstd(zstd_safe::get_error_name(code)))?;
                }
            }
        }
        Ok(())
    }

    /// Ends the entry: its compressed bytes, CRC-32 and size.
    pub fn finish(mut self) -> Result<Compressed, CoderError> {
        match &mut self.coder.engine {
            Engine::Deflate(c) => loop {
                self.scratch.clear();
                let status =
                    c.compress_vec(&[], &mut self.scratch, flate2::FlushCompress::Finish)?;
                self.out.extend_from_slice(&self.scratch);
                if status == flate2::Status::StreamEnd {
                    break;
                }
            },
            Engine::Zstd(c) => loop {
                self.out.reserve(CHUNK);
                let at = self.out.len();
                let mut output = OutBuffer::around_pos(&mut self.out, at);
                let left = c
                    .end_stream(&mut output)
                    .map_err(|code| CoderError::Zstd(zstd_safe::get_error_name(code)))?;
                if left == 0 {
                    break;
                }
            },
        }
        self.out.shrink_to_fit();
        Ok(Compressed {
            method: self.coder.method(),
            crc32: self.crc.finalize(),
            size: self.size,
            data: self.out,
        })
    }
}

impl Write for EntrySink<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.push(data)?;
        self.crc.update(data);
        self.size += data.len() as u64;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One compressed entry, ready to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compressed {
    /// The zip method number.
    pub method: u16,
    pub crc32: u32,
    /// Its uncompressed size.
    pub size: u64,
    /// The compressed bytes.
    pub data: Vec<u8>,
}

/// What the central directory needs of an entry already written.
struct Central {
    name: String,
    mode: u32,
    method: u16,
    crc32: u32,
    size: u64,
    compressed: u64,
    offset: u64,
}

impl Central {
    fn flags(&self) -> u16 {
        if self.name.is_ascii() { 0 } else { 1 << 11 }
    }

    fn sizes_need_zip64(&self) -> bool {
        self.size >= FULL32 || self.compressed >= FULL32
    }

    fn version_needed(&self) -> u16 {
        if self.method == ZSTD || self.sizes_need_zip64() || self.offset >= FULL32 {
            45
        } else {
            20
        }
    }

    /// The local header, name and (when the sizes overflow) zip64 extra field.
    fn local_header(&self) -> Vec<u8> {
        let zip64 = self.sizes_need_zip64();
        let mut h = Vec::with_capacity(30 + self.name.len() + 20);
        h.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        h.extend_from_slice(&self.version_needed().to_le_bytes());
        self.common(&mut h, zip64, zip64);
        h.extend_from_slice(&(self.name.len() as u16).to_le_bytes());
        h.extend_from_slice(&(if zip64 { 20u16 } else { 0 }).to_le_bytes());
        h.extend_from_slice(self.name.as_bytes());
        if zip64 {
            h.extend_from_slice(&1u16.to_le_bytes());
            h.extend_from_slice(&16u16.to_le_bytes());
            h.extend_from_slice(&self.size.to_le_bytes());
            h.extend_from_slice(&self.compressed.to_le_bytes());
        }
        h
    }

    /// Flags, method, time, date, CRC and the two 32-bit sizes (each the sentinel
    /// 0xFFFFFFFF where asked).
    fn common(&self, h: &mut Vec<u8>, size64: bool, compressed64: bool) {
        h.extend_from_slice(&self.flags().to_le_bytes());
        h.extend_from_slice(&self.method.to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes());
        h.extend_from_slice(&DOS_DATE.to_le_bytes());
        h.extend_from_slice(&self.crc32.to_le_bytes());
        let field = |v: u64, big: bool| if big { FULL32 as u32 } else { v as u32 };
        h.extend_from_slice(&field(self.compressed, compressed64).to_le_bytes());
        h.extend_from_slice(&field(self.size, size64).to_le_bytes());
    }

    fn write_central(&self, h: &mut Vec<u8>) {
        let (size64, compressed64, offset64) = (
            self.size >= FULL32,
            self.compressed >= FULL32,
            self.offset >= FULL32,
        );
        let mut extra = Vec::new();
        for (big, v) in [
            (size64, self.size),
            (compressed64, self.compressed),
            (offset64, self.offset),
        ] {
            if big {
                extra.extend_from_slice(&v.to_le_bytes());
            }
        }
        let version = self.version_needed();
        h.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        h.extend_from_slice(&(0x0300 | version).to_le_bytes());
        h.extend_from_slice(&version.to_le_bytes());
        self.common(h, size64, compressed64);
        h.extend_from_slice(&(self.name.len() as u16).to_le_bytes());
        let extra_len = if extra.is_empty() { 0 } else { 4 + extra.len() };
        h.extend_from_slice(&(extra_len as u16).to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes()); // comment length
        h.extend_from_slice(&0u16.to_le_bytes()); // disk number
        h.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
        h.extend_from_slice(&((0o100_000 | self.mode) << 16).to_le_bytes());
        h.extend_from_slice(&(self.offset.min(FULL32) as u32).to_le_bytes());
        h.extend_from_slice(self.name.as_bytes());
        if !extra.is_empty() {
            h.extend_from_slice(&1u16.to_le_bytes());
            h.extend_from_slice(&(extra.len() as u16).to_le_bytes());
            h.extend_from_slice(&extra);
        }
    }
}

/// Why an entry cannot go into a zip.
fn unfit(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what)
}

/// Writes entries, in the order given, then the central directory.
pub struct ZipOut<W: Write> {
    out: W,
    at: u64,
    entries: Vec<Central>,
}

impl<W: Write> std::fmt::Debug for ZipOut<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZipOut")
            .field("at", &self.at)
            .field("entries", &self.entries.len())
            .finish()
    }
}

impl<W: Write> ZipOut<W> {
    pub fn new(out: W) -> Self {
        ZipOut {
            out,
            at: 0,
            entries: Vec::new(),
        }
    }

    /// Writes one entry: `name` (a relative path with '/'), the Unix permission bits
    /// `mode` (e.g. 0o644) and what a [`Coder`] made of its bytes.
    pub fn add(&mut self, name: &str, mode: u32, entry: &Compressed) -> io::Result<()> {
        // A central header (46 bytes, the name, at most 28 bytes of zip64 field) must
        // fit in 65,535 bytes.
        if name.len() > MAX_NAME {
            return Err(unfit(format!(
                "the path {}... is {} bytes long; a zip entry's name can have at most 65,461 bytes: shorten it",
                name.chars().take(60).collect::<String>(),
                name.len()
            )));
        }
        let c = Central {
            name: name.to_owned(),
            mode: mode & 0o7777,
            method: entry.method,
            crc32: entry.crc32,
            size: entry.size,
            compressed: entry.data.len() as u64,
            offset: self.at,
        };
        let header = c.local_header();
        self.out.write_all(&header)?;
        self.out.write_all(&entry.data)?;
        self.at += header.len() as u64 + entry.data.len() as u64;
        self.entries.push(c);
        Ok(())
    }

    /// Writes the central directory and end records; returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        let start = self.at;
        let mut dir = Vec::with_capacity(self.entries.len() * 100);
        for c in &self.entries {
            c.write_central(&mut dir);
        }
        self.out.write_all(&dir)?;
        let size = dir.len() as u64;
        let count = self.entries.len();
        let end = start + size;
        let mut tail = Vec::with_capacity(98);
        if count >= FULL16 || start >= FULL32 || size >= FULL32 {
            let version = self
                .entries
                .iter()
                .map(Central::version_needed)
                .max()
                .unwrap_or(45)
                .max(45);
            tail.extend_from_slice(&0x0606_4b50u32.to_le_bytes());
            tail.extend_from_slice(&44u64.to_le_bytes());
            tail.extend_from_slice(&(0x0300 | version).to_le_bytes());
            tail.extend_from_slice(&version.to_le_bytes());
            tail.extend_from_slice(&0u32.to_le_bytes()); // this disk
            tail.extend_from_slice(&0u32.to_le_bytes()); // the directory's disk
            tail.extend_from_slice(&(count as u64).to_le_bytes());
            tail.extend_from_slice(&(count as u64).to_le_bytes());
            tail.extend_from_slice(&size.to_le_bytes());
            tail.extend_from_slice(&start.to_le_bytes());
            tail.extend_from_slice(&0x0706_4b50u32.to_le_bytes());
            tail.extend_from_slice(&0u32.to_le_bytes());
            tail.extend_from_slice(&end.to_le_bytes());
            tail.extend_from_slice(&1u32.to_le_bytes());
        }
        let count16 = count.min(FULL16) as u16;
        tail.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        tail.extend_from_slice(&0u16.to_le_bytes());
        tail.extend_from_slice(&0u16.to_le_bytes());
        tail.extend_from_slice(&count16.to_le_bytes());
        tail.extend_from_slice(&count16.to_le_bytes());
        tail.extend_from_slice(&(size.min(FULL32) as u32).to_le_bytes());
        tail.extend_from_slice(&(start.min(FULL32) as u32).to_le_bytes());
        tail.extend_from_slice(&0u16.to_le_bytes());
        self.out.write_all(&tail)?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// Compresses `bytes` as one entry with `coder`.
    fn entry(coder: &mut Coder, bytes: &[u8]) -> Compressed {
        let mut sink = coder.entry(bytes.len() as u64).expect("entry");
        // In uneven pieces, as a file is read.
        for piece in bytes.chunks(70_001) {
            sink.write_all(piece).expect("write");
        }
        sink.finish().expect("finish")
    }

    fn files() -> Vec<(String, u32, Vec<u8>)> {
        let text: Vec<u8> = (0..400_000u32)
            .flat_map(|i| format!("line {} of a module\n", i % 977).into_bytes())
            .collect();
        let noise: Vec<u8> = (0..300_000u64)
            .map(|i| (i.wrapping_mul(6_364_136_223_846_793_005) >> 56) as u8)
            .collect();
        vec![
            (
                "bin/run".into(),
                0o755,
                b"#!/bin/sh\nexec python3 -m app\n".to_vec(),
            ),
            ("empty".into(), 0o644, Vec::new()),
            ("lib/big.txt".into(), 0o644, text),
            ("lib/noise.bin".into(), 0o644, noise),
            ("lib/small.py".into(), 0o644, b"print('hello')\n".repeat(13)),
            ("données/café.txt".into(), 0o644, "crème brûlée\n".into()),
        ]
    }

    fn write(codec: Codec, files: &[(String, u32, Vec<u8>)]) -> Vec<u8> {
        let mut coder = Coder::new(codec).expect("coder");
        let mut zip = ZipOut::new(Vec::new());
        for (name, mode, bytes) in files {
            zip.add(name, *mode, &entry(&mut coder, bytes))
                .expect("add");
        }
        zip.finish().expect("finish")
    }

    /// Every entry of either method comes back from the `zip` crate whole, with its
    /// name, mode and method; Info-ZIP's `unzip -t` tests the Deflate archive clean.
    #[test]
    fn the_zip_crate_and_info_zip_read_every_entry_back() {
        let files = files();
        for (codec, method) in [
            (Codec::Deflate, zip::CompressionMethod::Deflated),
            (Codec::Zstd(19), zip::CompressionMethod::Zstd),
        ] {
            let bytes = write(codec, &files);
            let mut zip = zip::ZipArchive::new(io::Cursor::new(&bytes)).expect("a zip");
            assert_eq!(zip.len(), files.len());
            for (i, (name, mode, want)) in files.iter().enumerate() {
                let mut e = zip.by_index(i).expect("entry");
                assert_eq!(e.name().expect("name"), name.as_str());
                assert_eq!(e.unix_mode(), Some(0o100_000 | mode), "{name}");
                assert_eq!(e.compression(), method);
                assert_eq!(e.size(), want.len() as u64);
                let mut got = Vec::new();
                e.read_to_end(&mut got).expect("read");
                assert!(got == *want, "{name} came back different");
            }
            if codec == Codec::Deflate {
                let t = tempfile::tempdir().expect("tempdir");
                let path = t.path().join("a.zip");
                fs_err::write(&path, &bytes).expect("write");
                let out = std::process::Command::new("unzip")
                    .arg("-t")
                    .arg(&path)
                    .output()
                    .expect("Info-ZIP unzip runs (install it: apt-get install unzip)");
                let said = String::from_utf8_lossy(&out.stdout);
                assert!(out.status.success(), "unzip -t: {said}");
                assert!(said.contains("No errors detected"), "{said}");
            }
        }
    }

    /// The Deflate archive is byte for byte what the `zip` crate (which `pack` used
    /// before) writes for the same files, so an unchanged folder keeps its digest.
    #[test]
    fn deflate_archives_are_byte_for_byte_what_the_zip_crate_wrote() {
        use zip::write::SimpleFileOptions;
        let files = files();
        let mut theirs = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        for (name, mode, bytes) in &files {
            let options = SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated)
                .compression_level(Some(6))
                .last_modified_time(zip::DateTime::default())
                .unix_permissions(*mode);
            theirs.start_file(name.as_str(), options).expect("start");
            for piece in bytes.chunks(1 << 20) {
                theirs.write_all(piece).expect("write");
            }
        }
        let theirs = theirs.finish().expect("finish").into_inner();
        // In the pieces `pack` reads files in (zlib-rs's output also depends on those).
        let mut coder = Coder::new(Codec::Deflate).expect("coder");
        let mut zip = ZipOut::new(Vec::new());
        for (name, mode, bytes) in &files {
            let mut sink = coder.entry(bytes.len() as u64).expect("entry");
            for piece in bytes.chunks(1 << 20) {
                sink.write_all(piece).expect("write");
            }
            zip.add(name, *mode, &sink.finish().expect("finish"))
                .expect("add");
        }
        let ours = zip.finish().expect("finish");
        assert_eq!(ours.len(), theirs.len());
        assert!(ours == theirs, "the archives differ");
    }

    /// A name too long for a central header is refused with its length, before
    /// anything of the entry is written; the longest that fits is written and read.
    #[test]
    fn a_name_too_long_for_a_zip_is_refused() {
        let mut coder = Coder::new(Codec::Deflate).expect("coder");
        let one = entry(&mut coder, b"x");
        let mut zip = ZipOut::new(Vec::new());
        let err = zip
            .add(&"a".repeat(MAX_NAME + 1), 0o644, &one)
            .expect_err("refused");
        assert!(err.to_string().contains("65462 bytes long"), "{err}");
        assert_eq!(zip.at, 0);
        let longest = "b".repeat(MAX_NAME);
        zip.add(&longest, 0o644, &one).expect("fits");
        let bytes = zip.finish().expect("finish");
        let mut read = zip::ZipArchive::new(io::Cursor::new(&bytes)).expect("a zip");
        assert_eq!(
            read.by_index(0).expect("entry").name().expect("name"),
            longest.as_str()
        );
    }

    /// A central header's zip64 field holds only the values whose 32-bit field is
    /// 0xFFFFFFFF, in APPNOTE's order (uncompressed, compressed, offset): here an
    /// entry of 5 GiB that compressed to 3 GiB, at an offset past 4 GiB (values no test
    /// can write for real; the 4 GiB entry test writes the sizes for real).
    #[test]
    fn a_central_zip64_field_holds_only_what_overflowed_in_order() {
        let c = Central {
            name: "lib/huge.so".into(),
            mode: 0o755,
            method: ZSTD,
            crc32: 0x1234_5678,
            size: 5 << 30,
            compressed: 3 << 30,
            offset: 4 << 30,
        };
        let mut h = Vec::new();
        c.write_central(&mut h);
        assert_eq!(h[4..8], [45, 3, 45, 0]);
        assert_eq!(h[20..24], ((3u64 << 30) as u32).to_le_bytes());
        assert_eq!(h[24..28], [0xFF; 4]);
        assert_eq!(h[30..32], 20u16.to_le_bytes());
        assert_eq!(h[38..42], ((0o100_755u32) << 16).to_le_bytes());
        assert_eq!(h[42..46], [0xFF; 4]);
        let extra = &h[46 + 11..];
        assert_eq!(extra[..4], [1, 0, 16, 0]);
        assert_eq!(extra[4..12], (5u64 << 30).to_le_bytes());
        assert_eq!(extra[12..20], (4u64 << 30).to_le_bytes());
        assert_eq!(extra.len(), 20);
        // Its local header has both sizes (the offset is not in a local header).
        let l = c.local_header();
        assert_eq!(l[18..26], [0xFF; 8]);
        assert_eq!(
            l[30 + 11..],
            [
                &[1, 0, 16, 0][..],
                &(5u64 << 30).to_le_bytes(),
                &(3u64 << 30).to_le_bytes()
            ]
            .concat()[..]
        );
    }

    /// The frame header's window size (RFC 8878 3.1.1.1.2), or its content size for a
    /// single-segment frame.
    fn frame_window(frame: &[u8]) -> u64 {
        let descriptor = frame[4];
        let single_segment = descriptor & 0x20 != 0;
        if single_segment {
            return zstd_safe::get_frame_content_size(frame)
                .expect("a frame")
                .expect("a content size");
        }
        let w = frame[5];
        let base = 1u64 << (10 + (w >> 3));
        base + base / 8 * u64::from(w & 7)
    }

    /// Every zstd frame records its entry's size, so a small file's frame asks for a
    /// window no larger than itself, not level 19's 8 MiB.
    #[test]
    fn zstd_frames_carry_their_size_and_a_small_file_gets_a_small_window() {
        let files = files();
        let mut coder = Coder::new(Codec::Zstd(19)).expect("coder");
        for (name, _, bytes) in &files {
            let e = entry(&mut coder, bytes);
            assert_eq!(e.size, bytes.len() as u64);
            assert_eq!(e.crc32, crc32fast::hash(bytes));
            assert_eq!(
                zstd_safe::get_frame_content_size(&e.data).expect("a frame"),
                Some(bytes.len() as u64),
                "{name}"
            );
            let window = frame_window(&e.data);
            assert!(
                window <= (bytes.len() as u64).next_power_of_two().max(1 << 10),
                "{name}: {} bytes in a {window}-byte window",
                bytes.len()
            );
            assert_eq!(
                zstd::bulk::decompress(&e.data, bytes.len()).expect("zstd"),
                *bytes
            );
        }
    }

    /// A coder used for many entries makes the same bytes for an entry as a fresh one
    /// (archives do not depend on which worker took which file), for both methods;
    /// and an entry that is given fewer bytes than pledged is refused.
    #[test]
    fn a_reused_coder_makes_the_same_bytes_as_a_fresh_one() {
        let files = files();
        for codec in [Codec::Deflate, Codec::Zstd(19)] {
            let mut reused = Coder::new(codec).expect("coder");
            for (name, _, bytes) in &files {
                let again = entry(&mut reused, bytes);
                let fresh = entry(&mut Coder::new(codec).expect("coder"), bytes);
                assert!(again == fresh, "{codec:?} {name}");
            }
        }
        let mut coder = Coder::new(Codec::Zstd(3)).expect("coder");
        let mut sink = coder.entry(10).expect("entry");
        sink.write_all(b"short").expect("write");
        assert!(sink.finish().is_err());
        // And the coder is usable after the refusal.
        let ok = entry(&mut coder, b"0123456789");
        assert_eq!(
            zstd::bulk::decompress(&ok.data, 10).expect("zstd"),
            b"0123456789"
        );
    }

    /// 70,000 entries (more than the 16-bit count holds) end with a zip64 end record
    /// and locator, and the `zip` crate reads every entry.
    #[test]
    fn more_than_65535_entries_get_a_zip64_end_record() {
        let mut coder = Coder::new(Codec::Deflate).expect("coder");
        let mut zip = ZipOut::new(Vec::new());
        let n = 70_000u32;
        for i in 0..n {
            let byte = [(i % 251) as u8];
            zip.add(&format!("f/{i:05}"), 0o644, &entry(&mut coder, &byte))
                .expect("add");
        }
        let bytes = zip.finish().expect("finish");
        let tail = &bytes[bytes.len() - 22 - 20 - 56..];
        assert_eq!(tail[..4], 0x0606_4b50u32.to_le_bytes());
        assert_eq!(tail[56..60], 0x0706_4b50u32.to_le_bytes());
        assert_eq!(tail[24..32], u64::from(n).to_le_bytes());
        let mut read = zip::ZipArchive::new(io::Cursor::new(&bytes)).expect("a zip");
        assert_eq!(read.len(), n as usize);
        for i in [0, 65_534, 65_535, 65_536, n - 1] {
            let mut e = read.by_index(i as usize).expect("entry");
            assert_eq!(e.name().expect("name"), format!("f/{i:05}"));
            let mut got = Vec::new();
            e.read_to_end(&mut got).expect("read");
            assert_eq!(got, [(i % 251) as u8]);
        }
    }

    /// An entry of 4 GiB + 1 byte (zeros, so its zstd frame is small) gets 0xFFFFFFFF
    /// in both size fields of its local header and a zip64 field with both sizes
    /// (what the bootstrapper's streaming unpacker reads), only the uncompressed size
    /// in its central zip64 field, and the `zip` crate reads it back whole.
    #[test]
    fn an_entry_over_4_gib_gets_zip64_sizes_the_readers_take() {
        let size = (1u64 << 32) + 1;
        let mut coder = Coder::new(Codec::Zstd(1)).expect("coder");
        let mut sink = coder.entry(size).expect("entry");
        let zeros = vec![0u8; 8 << 20];
        let mut left = size;
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            sink.write_all(&zeros[..n]).expect("write");
            left -= n as u64;
        }
        let big = sink.finish().expect("finish");
        assert!(big.data.len() < 1 << 20, "{}", big.data.len());
        let mut small_coder = Coder::new(Codec::Zstd(1)).expect("coder");
        let mut zip = ZipOut::new(Vec::new());
        zip.add("a", 0o644, &entry(&mut small_coder, b"before"))
            .expect("add");
        let at = zip.at as usize;
        zip.add("big", 0o755, &big).expect("add");
        let bytes = zip.finish().expect("finish");

        let local = &bytes[at..];
        assert_eq!(local[..4], 0x0403_4b50u32.to_le_bytes());
        assert_eq!(u16::from_le_bytes([local[4], local[5]]), 45);
        assert_eq!(local[18..26], [0xFF; 8]);
        assert_eq!(u16::from_le_bytes([local[28], local[29]]), 20);
        let extra = &local[30 + 3..30 + 3 + 20];
        assert_eq!(extra[..4], [1, 0, 16, 0]);
        assert_eq!(extra[4..12], size.to_le_bytes());
        assert_eq!(extra[12..20], (big.data.len() as u64).to_le_bytes());

        let central = bytes
            .windows(7)
            .rposition(|w| w[..4] == 0x0201_4b50u32.to_le_bytes())
            .expect("the big entry's central header");
        let c = &bytes[central..];
        assert_eq!(c[20..24], (big.data.len() as u32).to_le_bytes());
        assert_eq!(c[24..28], [0xFF; 4]);
        assert_eq!(c[30..32], 12u16.to_le_bytes());
        assert_eq!(
            c[46 + 3..46 + 3 + 12],
            [&[1, 0, 8, 0][..], &size.to_le_bytes()].concat()[..]
        );

        let mut read = zip::ZipArchive::new(io::Cursor::new(&bytes)).expect("a zip");
        let mut e = read.by_name("big").expect("entry");
        assert_eq!(
            (e.size(), e.compressed_size()),
            (size, big.data.len() as u64)
        );
        let mut total = 0u64;
        let mut buf = vec![0u8; 8 << 20];
        loop {
            let n = e.read(&mut buf).expect("read");
            if n == 0 {
                break;
            }
            assert!(buf[..n].iter().all(|&b| b == 0));
            total += n as u64;
        }
        assert_eq!(total, size);
    }
}
