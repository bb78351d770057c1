//! Append-only text files that only ever hold whole lines, and whole-file replacement by rename.
//!
//! [`LineFile`] is the one way the reader appends to a file. Its guarantees:
//! - Every line is built in memory and handed to the kernel with one `write_all` on an `O_APPEND` descriptor, with
//!   no user-space buffer, so a line the kernel accepted survives the process being killed.
//! - A write can still be cut short (SIGKILL between pages of a long line, disk full). A failed append is rolled
//!   back with `ftruncate` to the last whole line, and [`LineFile::open`] cuts any tail that does not end in `\n`
//!   (a torn line, or the NUL bytes some file systems leave after a power cut). So every file always reads as
//!   whole lines, and appending resumes after the last whole one.
//! - Durability: [`LineFile::sync`] (`fdatasync`) is called by the store every few seconds and before a file is
//!   closed or renamed; [`sync_dir`] makes new and renamed names durable.
//!
//! [`replace`] writes a whole file under a temporary name and renames it over the old one, so readers see the old
//! or the new file, never a half-written one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// How far back [`LineFile::open`] looks for the last newline before it gives up and keeps the whole file: a tail
/// longer than this is not a torn line of ours.
const MAX_TORN_TAIL: u64 = 1 << 20;

/// An open append-only file of lines.
#[derive(Debug)]
pub struct LineFile {
    path: PathBuf,
    file: File,
    len: u64,
    unsynced: bool,
}

/// What [`LineFile::open`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Opened {
    /// The file was empty or did not exist.
    pub empty: bool,
    /// Bytes of a torn last line that were cut off.
    pub repaired: u64,
}

impl LineFile {
    /// Opens `path` for appending, creating it and its directories. A tail that is not a whole line is cut off.
    pub fn open(path: &Path) -> io::Result<(LineFile, Opened)> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let existed = path.exists();
        let file = OpenOptions::new().read(true).append(true).create(true).open(path)?;
        if !existed {
            // The new name must survive a power cut as much as the lines written to it.
            if let Some(dir) = path.parent() {
                sync_dir(dir)?;
            }
        }
        let len = file.metadata()?.len();
        let keep = whole_lines_len(&file, len)?;
        if keep < len {
            file.set_len(keep)?;
            file.sync_data()?;
        }
        let opened = Opened { empty: keep == 0, repaired: len - keep };
        Ok((LineFile { path: path.to_owned(), file, len: keep, unsynced: false }, opened))
    }

    /// Appends one line. `line` must end with `\n` and hold no other newline. On error the file is cut back to
    /// its previous length (if the file system still allows it) and the caller should drop this handle and
    /// reopen, which repairs any tail the cut could not remove.
    pub fn append(&mut self, line: &[u8]) -> io::Result<()> {
        debug_assert!(line.ends_with(b"\n"));
        match self.file.write_all(line) {
            Ok(()) => {
                self.len += line.len() as u64;
                self.unsynced = true;
                Ok(())
            }
            Err(e) => {
                // Best effort: a disk that refuses the write may refuse the truncate too; open() repairs later.
                let _ = self.file.set_len(self.len);
                Err(e)
            }
        }
    }

    /// Makes the appended lines durable (`fdatasync`), if any were appended since the last call.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.unsynced {
            self.file.sync_data()?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// The file's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of whole lines in the file.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file holds no line.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The length of the file up to and including its last `\n` (0 if there is none within [`MAX_TORN_TAIL`] of the
/// end and the file is that short).
fn whole_lines_len(file: &File, len: u64) -> io::Result<u64> {
    if len == 0 {
        return Ok(0);
    }
    let mut last = [0u8; 1];
    file.read_exact_at(&mut last, len - 1)?;
    if last[0] == b'\n' {
        return Ok(len);
    }
    let mut buf = vec![0u8; 8192];
    let mut end = len;
    while end > 0 && len - end < MAX_TORN_TAIL {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        file.read_exact_at(chunk, start)?;
        if let Some(i) = memrchr(b'\n', chunk) {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    // No newline anywhere (a torn first line) or a tail too long to be ours: a lone torn line is cut, a foreign
    // file is left alone.
    Ok(if end == 0 { 0 } else { len })
}

fn memrchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().rposition(|&b| b == needle)
}

/// Reads the first line of a file (without its `\n`), at most `limit` bytes; `None` if the file is empty or
/// unreadable.
#[must_use]
pub fn first_line(path: &Path, limit: usize) -> Option<String> {
    let file = File::open(path).ok()?;
    let mut buf = vec![0u8; limit];
    let n = read_at_most(&file, &mut buf, 0).ok()?;
    let text = &buf[..n];
    let end = text.iter().position(|&b| b == b'\n')?;
    String::from_utf8(text[..end].to_vec()).ok()
}

/// Reads whole lines from the end of a file backwards, newest first, until `keep_going` returns false or
/// `max_bytes` have been read.
pub fn lines_backwards(path: &Path, max_bytes: u64, mut keep_going: impl FnMut(&[u8]) -> bool) -> io::Result<()> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let floor = len.saturating_sub(max_bytes);
    let mut end = len;
    // Bytes of the line being assembled, which may span chunks (stored reversed for cheap prepending).
    let mut carry: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while end > floor {
        let start = end.saturating_sub(buf.len() as u64).max(floor);
        let chunk = &mut buf[..(end - start) as usize];
        file.read_exact_at(chunk, start)?;
        for &b in chunk.iter().rev() {
            if b == b'\n' {
                if !carry.is_empty() {
                    carry.reverse();
                    let go = keep_going(&carry);
                    carry.clear();
                    if !go {
                        return Ok(());
                    }
                }
            } else {
                carry.push(b);
            }
        }
        end = start;
    }
    if end == 0 && !carry.is_empty() {
        carry.reverse();
        keep_going(&carry);
    }
    Ok(())
}

fn read_at_most(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], offset + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Makes the names in a directory durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replaces `path` with `contents` atomically: written to `path` + `.tmp`, renamed over `path`. With `durable`,
/// the data and the rename are synced first (for files that must survive a power cut, not for the HTML page that
/// is rewritten every few seconds anyway).
pub fn replace(path: &Path, contents: &[u8], durable: bool) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(contents)?;
        if durable {
            file.sync_all()?;
        }
        drop(file);
        fs::rename(&tmp, path)?;
        if durable {
            sync_dir(dir)?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Renames `from` to `to` after syncing `from`'s data, then syncs the directory: the rename is atomic, and after
/// a power cut the file is found under one of the two names with all its data.
pub fn rename_durable(from: &Path, to: &Path) -> io::Result<()> {
    File::open(from)?.sync_all()?;
    fs::rename(from, to)?;
    if let Some(dir) = to.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &Path) -> String {
        fs::read_to_string(path).expect("readable")
    }

    #[test]
    fn appends_whole_lines_and_creates_directories() {
        let dir = crate::testutil::tempdir();
        let path = dir.path().join("a/b/x.jsonl");
        let (mut f, opened) = LineFile::open(&path).expect("open");
        assert_eq!(opened, Opened { empty: true, repaired: 0 });
        f.append(b"one\n").expect("append");
        f.append(b"two\n").expect("append");
        f.sync().expect("sync");
        assert_eq!(f.len(), 8);
        drop(f);
        let (mut f, opened) = LineFile::open(&path).expect("reopen");
        assert_eq!(opened, Opened { empty: false, repaired: 0 });
        f.append(b"three\n").expect("append");
        assert_eq!(read(&path), "one\ntwo\nthree\n");
    }

    #[test]
    fn reopening_cuts_a_torn_last_line() {
        let dir = crate::testutil::tempdir();
        let path = dir.path().join("x.csv");
        fs::write(&path, "h\n1,2\n3,").expect("write");
        let (mut f, opened) = LineFile::open(&path).expect("open");
        assert_eq!(opened, Opened { empty: false, repaired: 2 });
        f.append(b"3,4\n").expect("append");
        assert_eq!(read(&path), "h\n1,2\n3,4\n");
    }

    #[test]
    fn a_torn_first_line_and_nul_padding_are_cut() {
        let dir = crate::testutil::tempdir();
        let path = dir.path().join("x.csv");
        fs::write(&path, "time,pow").expect("write");
        let (_, opened) = LineFile::open(&path).expect("open");
        assert_eq!(opened, Opened { empty: true, repaired: 8 });
        assert_eq!(read(&path), "");
        fs::write(&path, b"a\n\0\0\0\0").expect("write");
        let (_, opened) = LineFile::open(&path).expect("open");
        assert_eq!(opened.repaired, 4);
        assert_eq!(read(&path), "a\n");
    }

    #[test]
    fn a_torn_tail_longer_than_a_chunk_is_found() {
        let dir = crate::testutil::tempdir();
        let path = dir.path().join("x.jsonl");
        let mut text = b"first\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', 20_000));
        fs::write(&path, &text).expect("write");
        let (_, opened) = LineFile::open(&path).expect("open");
        assert_eq!(opened.repaired, 20_000);
        assert_eq!(read(&path), "first\n");
    }

    #[test]
    fn a_failed_append_leaves_no_partial_line() {
        // /dev/full accepts the open and refuses every write with ENOSPC, like a full disk.
        let mut f = LineFile::open(Path::new("/dev/full")).expect("open /dev/full").0;
        let err = f.append(b"line\n").expect_err("disk full");
        assert_eq!(err.raw_os_error(), Some(28), "{err}");
        assert_eq!(f.len(), 0);
    }

    #[test]
    fn lines_come_back_newest_first_across_chunks() {
        let dir = crate::testutil::tempdir();
        let path = dir.path().join("x.jsonl");
        let lines: Vec<String> = (0..5000).map(|i| format!("line {i} {}", "y".repeat(i % 97))).collect();
        fs::write(&path, lines.join("\n") + "\n").expect("write");
        let mut got = Vec::new();
        lines_backwards(&path, u64::MAX, |l| {
            got.push(String::from_utf8(l.to_vec()).expect("utf8"));
            true
        })
        .expect("read");
        got.reverse();
        assert_eq!(got, lines);
        let mut first_two = Vec::new();
        lines_backwards(&path, u64::MAX, |l| {
            first_two.push(l.to_vec());
            first_two.len() < 2
        })
        .expect("read");
        assert_eq!(first_two, [lines[4999].as_bytes(), lines[4998].as_bytes()]);
    }

    #[test]
    fn replace_is_all_or_nothing() {
        let dir = crate::testutil::tempdir();
        let path = dir.path().join("p1.html");
        replace(&path, b"old", false).expect("write");
        replace(&path, b"new", true).expect("write");
        assert_eq!(read(&path), "new");
        assert!(!dir.path().join("p1.html.tmp").exists());
        assert_eq!(first_line(&path, 100), None, "no newline: no first line");
    }
}
