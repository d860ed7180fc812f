//! The single-file form of a backup: the manifest and every file in one
//! self-checking container (layout in `storage-format.md`, "Backups").
//!
//! ```text
//! "BRAIDBAK" · version u8 · manifest_len u32le · manifest · header_crc u32le
//! file_count u32le
//! file_count × (name_len u16le · name · size u64le · crc u32le · content)
//! "BRAIDEND" · archive_len u64le · archive_crc u32le
//! ```

use std::io::{self, Read, Write};

/// First bytes of an archive.
pub const MAGIC: [u8; 8] = *b"BRAIDBAK";
/// First bytes of the trailer.
pub const TRAILER_MAGIC: [u8; 8] = *b"BRAIDEND";
/// Archive layout version (the byte after the magic).
pub const ARCHIVE_VERSION: u8 = 1;
/// Largest manifest an archive may hold.
pub const MAX_MANIFEST_LEN: u32 = 1 << 20;
/// Most files an archive may hold.
pub const MAX_FILES: u32 = 1024;

/// Writes an archive to `W`, keeping the running CRC and length the trailer
/// needs.
pub struct ArchiveWriter<W: Write> {
    w: W,
    crc: crc32fast::Hasher,
    written: u64,
}

impl<W: Write> ArchiveWriter<W> {
    /// Writes the magic, version, manifest and header CRC, and the file count.
    pub fn new(w: W, manifest: &[u8], file_count: u32) -> io::Result<Self> {
        let len = u32::try_from(manifest.len())
            .ok()
            .filter(|&l| l <= MAX_MANIFEST_LEN)
            .ok_or_else(|| io::Error::other("manifest too large for an archive"))?;
        let mut a = ArchiveWriter {
            w,
            crc: crc32fast::Hasher::new(),
            written: 0,
        };
        a.put(&MAGIC)?;
        a.put(&[ARCHIVE_VERSION])?;
        a.put(&len.to_le_bytes())?;
        a.put(manifest)?;
        let header_crc = a.crc.clone().finalize();
        a.put(&header_crc.to_le_bytes())?;
        a.put(&file_count.to_le_bytes())?;
        Ok(a)
    }

    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.w.write_all(b)?;
        self.crc.update(b);
        self.written += b.len() as u64;
        Ok(())
    }

    /// Writes one file: its name, size and CRC, then exactly `size` bytes
    /// from `content`. Fails if `content` ends early or its bytes do not
    /// have the CRC `crc` (the source changed since it was checksummed).
    pub fn file(&mut self, name: &str, size: u64, crc: u32, content: impl Read) -> io::Result<()> {
        let name_len = u16::try_from(name.len())
            .map_err(|_| io::Error::other(format!("file name too long: {name}")))?;
        self.put(&name_len.to_le_bytes())?;
        self.put(name.as_bytes())?;
        self.put(&size.to_le_bytes())?;
        self.put(&crc.to_le_bytes())?;
        let mut content = content.take(size);
        let mut own = crc32fast::Hasher::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut copied = 0u64;
        loop {
            let n = match content.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            own.update(&buf[..n]);
            self.put(&buf[..n])?;
            copied += n as u64;
        }
        if copied != size {
            return Err(io::Error::other(format!(
                "{name}: ended after {copied} of {size} bytes while being archived"
            )));
        }
        let got = own.finalize();
        if got != crc {
            return Err(io::Error::other(format!(
                "{name}: changed while being archived (CRC-32 {got:08x}, expected {crc:08x})"
            )));
        }
        Ok(())
    }

    /// Writes the trailer and flushes; returns the writer and the archive's
    /// total length.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        let len = self.written;
        self.put(&TRAILER_MAGIC)?;
        self.put(&len.to_le_bytes())?;
        let crc = self.crc.clone().finalize();
        self.w.write_all(&crc.to_le_bytes())?;
        self.w.flush()?;
        Ok((self.w, self.written + 4))
    }
}

/// One file's header in an archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchivedFile {
    /// File name.
    pub name: String,
    /// Content length.
    pub size: u64,
    /// CRC-32 of the content, as the archive states it.
    pub crc: u32,
    /// Offset of the content in the archive.
    pub offset: u64,
}

/// Reads an archive front to back, checking its structure; errors name the
/// byte offset and the field.
pub struct ArchiveReader<R: Read> {
    r: Tracked<R>,
    /// Files announced by the header.
    pub file_count: u32,
    files_read: u32,
}

/// A reader that keeps the running CRC and offset of what passed through.
struct Tracked<R> {
    r: R,
    crc: crc32fast::Hasher,
    offset: u64,
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.r.read(buf)?;
        self.crc.update(&buf[..n]);
        self.offset += n as u64;
        Ok(n)
    }
}

impl<R: Read> ArchiveReader<R> {
    /// Reads and checks the magic, version, manifest and header CRC and the
    /// file count; returns the reader and the manifest's bytes (not yet
    /// parsed).
    pub fn open(r: R) -> Result<(Self, Vec<u8>), String> {
        let mut a = ArchiveReader {
            r: Tracked {
                r,
                crc: crc32fast::Hasher::new(),
                offset: 0,
            },
            file_count: 0,
            files_read: 0,
        };
        let magic: [u8; 8] = a.array("magic")?;
        if magic != MAGIC {
            return Err(format!(
                "not a Braid backup archive (magic bytes {magic:02x?}, expected \"BRAIDBAK\")"
            ));
        }
        let [version] = a.array::<1>("format version")?;
        if version != ARCHIVE_VERSION {
            return Err(format!(
                "unsupported archive version {version} (this build reads version {ARCHIVE_VERSION})"
            ));
        }
        let len = u32::from_le_bytes(a.array("manifest length")?);
        if len > MAX_MANIFEST_LEN {
            return Err(format!(
                "manifest length {len} at byte offset 9 exceeds the {MAX_MANIFEST_LEN}-byte limit (damaged header)"
            ));
        }
        let mut manifest = Vec::new();
        let at = a.r.offset;
        (&mut a.r)
            .take(u64::from(len))
            .read_to_end(&mut manifest)
            .map_err(|e| format!("reading the manifest at byte offset {at}: {e}"))?;
        if manifest.len() < len as usize {
            return Err(a.truncated(at, "the manifest"));
        }
        let computed = a.r.crc.clone().finalize();
        let crc_at = a.r.offset;
        let stored = u32::from_le_bytes(a.array("header CRC")?);
        if stored != computed {
            return Err(format!(
                "header CRC mismatch at byte offset {crc_at}: stored {stored:08x}, computed {computed:08x} (magic, version or manifest damaged)"
            ));
        }
        let count = u32::from_le_bytes(a.array("file count")?);
        if count == 0 || count > MAX_FILES {
            return Err(format!(
                "file count {count} at byte offset {} is impossible (damaged)",
                a.r.offset - 4
            ));
        }
        a.file_count = count;
        Ok((a, manifest))
    }

    fn truncated(&self, at: u64, what: &str) -> String {
        format!("truncated: the archive ends inside {what} (which starts at byte offset {at})")
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        let mut buf = [0u8; N];
        let at = self.r.offset;
        match self.r.read_exact(&mut buf) {
            Ok(()) => Ok(buf),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                Err(self.truncated(at, &format!("the {what}")))
            }
            Err(e) => Err(format!("reading the {what} at byte offset {at}: {e}")),
        }
    }

    /// The next file's header, or `None` after the last one.
    pub fn next_file(&mut self) -> Result<Option<ArchivedFile>, String> {
        if self.files_read == self.file_count {
            return Ok(None);
        }
        let at = self.r.offset;
        let len = u16::from_le_bytes(self.array("file name length")?);
        let mut name = vec![0u8; usize::from(len)];
        self.r.read_exact(&mut name).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                self.truncated(at, "a file name")
            } else {
                e.to_string()
            }
        })?;
        let name = String::from_utf8(name)
            .map_err(|_| format!("file name at byte offset {at} is not UTF-8 (damaged)"))?;
        super::manifest::check_file_name(&name)
            .map_err(|e| format!("file header at byte offset {at}: {e}"))?;
        let size = u64::from_le_bytes(self.array("file size")?);
        let crc = u32::from_le_bytes(self.array("file CRC")?);
        self.files_read += 1;
        Ok(Some(ArchivedFile {
            name,
            size,
            crc,
            offset: self.r.offset,
        }))
    }

    /// The current file's content: read exactly `size` bytes from it (a
    /// shorter read means the archive is truncated) before the next call.
    pub fn content(&mut self, size: u64) -> impl Read + '_ {
        (&mut self.r).take(size)
    }

    /// Offset of the next byte.
    pub fn offset(&self) -> u64 {
        self.r.offset
    }

    /// Reads and checks the trailer after the last file, and that nothing
    /// follows it.
    pub fn finish(mut self) -> Result<(), String> {
        if self.files_read != self.file_count {
            return Err(format!(
                "{} of the {} files not read",
                self.file_count - self.files_read,
                self.file_count
            ));
        }
        let at = self.r.offset;
        let magic: [u8; 8] = self.array("trailer")?;
        if magic != TRAILER_MAGIC {
            return Err(format!(
                "no trailer at byte offset {at} (found {magic:02x?}, expected \"BRAIDEND\"): damaged, or bytes added"
            ));
        }
        let len = u64::from_le_bytes(self.array("trailer length")?);
        if len != at {
            return Err(format!(
                "trailer says the archive body is {len} bytes, but it is {at} (damaged)"
            ));
        }
        let computed = self.r.crc.clone().finalize();
        let crc_at = self.r.offset;
        let stored = u32::from_le_bytes(self.array("trailer CRC")?);
        if stored != computed {
            return Err(format!(
                "archive CRC mismatch at byte offset {crc_at}: stored {stored:08x}, computed {computed:08x}"
            ));
        }
        let mut one = [0u8; 1];
        loop {
            match self.r.read(&mut one) {
                Ok(0) => return Ok(()),
                Ok(_) => {
                    return Err(format!(
                        "trailing bytes after the trailer, from byte offset {}",
                        self.r.offset - 1
                    ))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let content = b"hello snapshot".to_vec();
        let crc = crc32fast::hash(&content);
        let mut w = ArchiveWriter::new(Vec::new(), b"manifest text\n", 1).expect("header");
        w.file("snap", content.len() as u64, crc, &content[..])
            .expect("file");
        w.finish().expect("finish").0
    }

    fn read_all(bytes: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String> {
        let (mut a, manifest) = ArchiveReader::open(bytes)?;
        let f = a.next_file()?.ok_or("no file")?;
        let mut content = Vec::new();
        a.content(f.size)
            .read_to_end(&mut content)
            .map_err(|e| e.to_string())?;
        if content.len() as u64 != f.size {
            return Err("truncated content".into());
        }
        if crc32fast::hash(&content) != f.crc {
            return Err("content CRC".into());
        }
        if a.next_file()?.is_some() {
            return Err("extra file".into());
        }
        a.finish()?;
        Ok((manifest, content))
    }

    #[test]
    fn round_trip_and_damage() {
        let bytes = sample();
        let (m, c) = read_all(&bytes).expect("reads");
        assert_eq!(m, b"manifest text\n");
        assert_eq!(c, b"hello snapshot");
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(read_all(&b).is_err(), "flip at {i} not caught");
        }
        for n in 0..bytes.len() {
            let err = read_all(&bytes[..n]).expect_err("truncated");
            assert!(
                err.contains("truncated") || err.contains("magic"),
                "{n}: {err}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(read_all(&longer).is_err());
    }

    #[test]
    fn a_changed_source_is_refused() {
        let mut w = ArchiveWriter::new(Vec::new(), b"m\n", 1).expect("header");
        let err = w.file("x", 3, 0, &b"abc"[..]).expect_err("wrong crc");
        assert!(err.to_string().contains("changed"), "{err}");
    }
}
