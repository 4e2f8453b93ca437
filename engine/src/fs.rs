//! Atomic file writes: every file framelock produces is written to a temporary file in the
//! destination's directory and renamed over the destination only once it is complete.
//!
//! A failed or interrupted write (an error, a panic, a full disk, a killed process before the
//! rename) never leaves a partial file at the destination and never replaces a good one: the
//! temporary file is removed when the [`AtomicFile`] is dropped without [`AtomicFile::commit`].

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A file being written, invisible at its destination until [`AtomicFile::commit`].
#[derive(Debug)]
pub struct AtomicFile {
    temp: tempfile::NamedTempFile,
    dest: PathBuf,
}

impl AtomicFile {
    /// Starts writing `dest`: creates a hidden temporary file beside it.
    pub fn create(dest: impl AsRef<Path>) -> io::Result<Self> {
        let dest = dest.as_ref().to_path_buf();
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            .tempfile_in(dir)?;
        // Temporary files are private (0600); the result is an ordinary file like any other
        // the user makes (proxies, reports, the cache index).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            temp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644))?;
        }
        Ok(Self { temp, dest })
    }

    /// The destination this file will be renamed to.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Where the bytes are until [`AtomicFile::commit`] (for verifying them before).
    pub fn temp_path(&self) -> &Path {
        self.temp.path()
    }

    /// The open temporary file, for writers that need `Write + Seek`.
    pub fn file_mut(&mut self) -> &mut std::fs::File {
        self.temp.as_file_mut()
    }

    /// Flushes to disk and renames the temporary file over the destination.
    pub fn commit(self) -> io::Result<()> {
        self.temp.as_file().sync_all()?;
        self.temp.persist(&self.dest).map_err(|e| e.error)?;
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.temp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.temp.flush()
    }
}

/// Writes `bytes` to `dest` atomically.
pub fn write_atomic(dest: impl AsRef<Path>, bytes: &[u8]) -> io::Result<()> {
    let mut file = AtomicFile::create(dest)?;
    file.write_all(bytes)?;
    file.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_write_leaves_old_file_and_no_temp() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let dest = dir.path().join("out.bin");
        write_atomic(&dest, b"good")?;
        {
            let mut f = AtomicFile::create(&dest)?;
            f.write_all(b"partial")?;
            // dropped without commit: an error path
        }
        assert_eq!(std::fs::read(&dest)?, b"good");
        let entries: Vec<_> = std::fs::read_dir(dir.path())?.collect();
        assert_eq!(entries.len(), 1, "temporary file left behind");
        Ok(())
    }
}
