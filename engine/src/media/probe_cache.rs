//! An on-disk cache of probe results, keyed by file fingerprint, so that a project of
//! thousands of clips over ~100 files loads without re-reading their sample tables.
//!
//! Fingerprint: file size, modification time and an xxh3 hash of the first and last MiB (plus
//! the registry's backend names, since the probe names the decoding backend). A file that
//! changes in any of these is probed again. Entries are JSON files written atomically; an
//! unreadable entry is treated as a miss and rewritten.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use framelock_components::MediaInfo;
use xxhash_rust::xxh3::Xxh3;

use super::decode::DecoderRegistry;
use super::{MediaError, probe};

const EDGE: u64 = 1 << 20;

/// Probe results on disk.
#[derive(Clone, Debug)]
pub struct ProbeCache {
    dir: PathBuf,
}

impl ProbeCache {
    /// A cache in `dir` (created if missing).
    pub fn new(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The fingerprint of `path` as a hex string: size, mtime, first and last MiB.
    pub fn fingerprint(path: &Path) -> Result<String, MediaError> {
        let io = |e| MediaError::io(path, e);
        let meta = std::fs::metadata(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                MediaError::NotFound {
                    path: path.to_path_buf(),
                }
            } else {
                MediaError::io(path, e)
            }
        })?;
        if meta.is_dir() {
            return Err(MediaError::IsDirectory {
                path: path.to_path_buf(),
            });
        }
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let mut hasher = Xxh3::new();
        hasher.update(&meta.len().to_le_bytes());
        hasher.update(&mtime.to_le_bytes());
        let mut file = std::fs::File::open(path).map_err(io)?;
        let mut buf = vec![0u8; EDGE.min(meta.len()) as usize];
        file.read_exact(&mut buf).map_err(io)?;
        hasher.update(&buf);
        if meta.len() > EDGE {
            let start = meta.len().saturating_sub(EDGE).max(EDGE);
            file.seek(SeekFrom::Start(start)).map_err(io)?;
            buf.clear();
            file.read_to_end(&mut buf).map_err(io)?;
            hasher.update(&buf);
        }
        Ok(format!("{:032x}", hasher.digest128()))
    }

    /// The probe of `path`: from the cache when its fingerprint matches, else probed and
    /// stored.
    pub fn probe(&self, path: &Path, registry: &DecoderRegistry) -> Result<MediaInfo, MediaError> {
        let key = format!(
            "{}-{}",
            Self::fingerprint(path)?,
            registry.names().join("+")
        );
        let entry = self.dir.join(format!("{key}.json"));
        if let Ok(bytes) = std::fs::read(&entry)
            && let Ok(mut info) = serde_json::from_slice::<MediaInfo>(&bytes)
        {
            info.path = path.to_path_buf();
            return Ok(info);
        }
        let info = probe(path, registry)?;
        if let Ok(json) = serde_json::to_vec(&info) {
            // A cache that cannot be written only costs the next load a probe.
            let _ = crate::fs::write_atomic(&entry, &json);
        }
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_changes_with_content_and_size() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("f.bin");
        std::fs::write(&p, vec![1u8; 3 << 20])?;
        let a = ProbeCache::fingerprint(&p).map_err(std::io::Error::other)?;
        let mut bytes = vec![1u8; 3 << 20];
        bytes[(3 << 20) - 10] = 2; // in the last MiB
        std::fs::write(&p, &bytes)?;
        let b = ProbeCache::fingerprint(&p).map_err(std::io::Error::other)?;
        assert_ne!(a, b);
        assert!(matches!(
            ProbeCache::fingerprint(&dir.path().join("missing")),
            Err(MediaError::NotFound { .. })
        ));
        Ok(())
    }
}
