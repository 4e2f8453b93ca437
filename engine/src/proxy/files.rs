//! Where proxies live and how a proxy proves it is the proxy of a source as it is now.
//!
//! `<proxy dir>/<stem>_<height>p.mp4` is the proxy; `<stem>_<height>p.json` beside it is its
//! manifest: the source (path and fingerprint), the proxy file's own fingerprint, its geometry
//! and frame count, and the encoder settings. A proxy is usable only when the manifest
//! parses, names this source, the source's fingerprint is unchanged and the proxy's
//! fingerprint matches the file on disk; anything else is stale and is regenerated.
//!
//! Two sources with the same stem in one proxy folder: the second gets
//! `<stem>-<8 hex digits of the path's hash>_<height>p.mp4`. A ProRes proxy is
//! `<stem>_<height>p_prores.mov` (manifest `<stem>_<height>p_prores.json`), so it lives beside
//! an H.264 proxy of the same height.

use std::path::{Path, PathBuf};

use framelock_components::{ProxyCodec, ProxyGeneration};
use serde::{Deserialize, Serialize};

use crate::media::ProbeCache;

/// Manifest format version.
pub const MANIFEST_VERSION: u32 = 1;

/// What a proxy was made from and how.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProxyManifest {
    /// [`MANIFEST_VERSION`].
    pub version: u32,
    /// The source file (absolute).
    pub source: PathBuf,
    /// The source's fingerprint (size, mtime, first/last MiB) when the proxy was made.
    pub source_fingerprint: String,
    /// The proxy file's fingerprint.
    pub proxy_fingerprint: String,
    /// Proxy width.
    pub width: u32,
    /// Proxy height.
    pub height: u32,
    /// Frames (= the source's).
    pub frames: u64,
    /// Codec.
    pub codec: ProxyCodec,
    /// Quality 0..=100.
    pub quality: u8,
    /// The constant QP it maps to (0 for ProRes, whose profile sets the rate).
    pub qp: u8,
    /// Keyframe interval the encoder was given (segments start with a keyframe too).
    pub gop: u32,
    /// Encoder (`openh264`, `libav prores_ks`).
    pub encoder: String,
    /// How the source was decoded (backend, and whether the deblocking filter was skipped,
    /// see [`ProxyGeneration::fast_decode`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub decode: String,
    /// The strategy's generation settings the job came from.
    pub generation: ProxyGeneration,
    /// Seconds the generation took.
    pub seconds: f64,
    /// The source's sound in the proxy: `None` when the source has none, else what was done
    /// ("AAC copied", or why it was not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<String>,
}

/// Whether a usable proxy is on disk.
#[derive(Clone, Debug, PartialEq)]
pub enum ProxyCheck {
    /// Usable.
    Ready(Box<ProxyManifest>),
    /// No proxy file (or no manifest: an interrupted job's leftovers are not proxies).
    Missing,
    /// A proxy exists but must not be used: why.
    Stale(String),
}

/// The absolute form of `path` (canonical when it exists).
pub fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    })
}

/// The manifest path of a proxy file.
pub fn manifest_path(proxy: &Path) -> PathBuf {
    proxy.with_extension("json")
}

fn read_manifest(proxy: &Path) -> Option<ProxyManifest> {
    let bytes = std::fs::read(manifest_path(proxy)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The path of `source`'s `codec` proxy at `height` in `dir`.
pub fn proxy_path(dir: &Path, source: &Path, height: u32, codec: ProxyCodec) -> PathBuf {
    let stem = source
        .file_stem()
        .map_or_else(|| "media".into(), |s| s.to_string_lossy().into_owned());
    let (tail, ext) = match codec {
        ProxyCodec::ProRes { .. } => ("_prores", codec.extension()),
        _ => ("", codec.extension()),
    };
    let plain = dir.join(format!("{stem}_{height}p{tail}.{ext}"));
    match read_manifest(&plain) {
        Some(m) if m.source != absolute(source) => {
            let hash = xxhash_rust::xxh3::xxh3_64(absolute(source).to_string_lossy().as_bytes());
            dir.join(format!("{stem}-{:08x}_{height}p{tail}.{ext}", hash as u32))
        }
        _ => plain,
    }
}

/// Checks the proxy at `proxy` against `source` as it is now.
pub fn check_proxy(source: &Path, proxy: &Path) -> ProxyCheck {
    if !proxy.is_file() {
        return ProxyCheck::Missing;
    }
    let Some(m) = read_manifest(proxy) else {
        return ProxyCheck::Stale("no readable manifest".into());
    };
    if m.version != MANIFEST_VERSION {
        return ProxyCheck::Stale(format!("manifest version {}", m.version));
    }
    if m.source != absolute(source) {
        return ProxyCheck::Stale(format!("made from {}", m.source.display()));
    }
    match ProbeCache::fingerprint(source) {
        Ok(f) if f == m.source_fingerprint => {}
        Ok(_) => return ProxyCheck::Stale("the source changed since".into()),
        Err(e) => return ProxyCheck::Stale(format!("source: {e}")),
    }
    match ProbeCache::fingerprint(proxy) {
        Ok(f) if f == m.proxy_fingerprint => ProxyCheck::Ready(Box::new(m)),
        Ok(_) => ProxyCheck::Stale("the proxy file is not the one its manifest describes".into()),
        Err(e) => ProxyCheck::Stale(format!("proxy: {e}")),
    }
}

/// Removes temporary files interrupted jobs left for `proxy` (a killed process cannot clean
/// up after itself; they are hidden `.<name>.*.tmp` files and never taken for proxies).
pub fn remove_leftovers(proxy: &Path) -> usize {
    let (Some(dir), Some(name)) = (proxy.parent(), proxy.file_name()) else {
        return 0;
    };
    let name = name.to_string_lossy();
    let prefixes = [
        format!(".{name}."),
        format!(
            ".{}.",
            manifest_path(proxy)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ),
    ];
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let n = entry.file_name().to_string_lossy().into_owned();
        if n.ends_with(".tmp")
            && prefixes.iter().any(|p| n.starts_with(p.as_str()))
            && std::fs::remove_file(entry.path()).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_leftovers() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let src = dir.path().join("4K_video_01.mp4");
        std::fs::write(&src, b"not really video")?;
        let prores = ProxyCodec::ProRes {
            profile: framelock_components::ProResProfile::Proxy,
        };
        let m = proxy_path(dir.path(), &src, 1080, prores);
        assert_eq!(m, dir.path().join("4K_video_01_1080p_prores.mov"));
        assert_eq!(
            manifest_path(&m),
            dir.path().join("4K_video_01_1080p_prores.json")
        );
        let p = proxy_path(dir.path(), &src, 1080, ProxyCodec::H264Intra);
        assert_eq!(p, dir.path().join("4K_video_01_1080p.mp4"));
        assert_eq!(manifest_path(&p), dir.path().join("4K_video_01_1080p.json"));
        assert_eq!(check_proxy(&src, &p), ProxyCheck::Missing);
        std::fs::write(&p, b"partial")?;
        assert!(matches!(check_proxy(&src, &p), ProxyCheck::Stale(_)));
        std::fs::write(dir.path().join(".4K_video_01_1080p.mp4.Ab12.tmp"), b"x")?;
        std::fs::write(dir.path().join(".other.mp4.Ab12.tmp"), b"x")?;
        assert_eq!(remove_leftovers(&p), 1);
        assert!(dir.path().join(".other.mp4.Ab12.tmp").exists());
        Ok(())
    }
}
