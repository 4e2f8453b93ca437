//! One proxy, made: decode → scale → encode on several threads, mux in order on the caller's.
//!
//! ```text
//!  ranges of whole GOPs ──► worker 1: decode (own decoder) → scale in YUV → encode (own encoder)
//!  (a window of them)   ──► worker 2: …                                    │ (index, picture)
//!                                                                          ▼
//!                          caller: reorder by frame index → mux → progress → release ranges
//! ```
//!
//! Each worker owns a decoder and an openh264 encoder and starts every range with a forced
//! IDR, so ranges encode independently and only small compressed pictures wait in the reorder
//! buffer (never decoded frames). Only `workers + 1` ranges are out at once, which bounds that
//! buffer. All encoders share the settings, so their SPS/PPS are identical and the muxer puts
//! one pair in `avcC` (it refuses a picture whose parameter sets differ).
//!
//! The file is written through the muxer's temporary file; it is verified (frame count =
//! source's, first frame a keyframe, the source unchanged meanwhile) before it is renamed
//! over the proxy path, and the manifest is written last. Cancelled or failed: the temporary
//! file is removed and an older proxy is left exactly as it was.
//!
//! 🟧 Like [`parallel_decode`](crate::media::parallel_decode), assumes closed GOPs in the source.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use framelock_components::{MediaInfo, ProxyCodec, ProxyGeneration};

use super::ProxyError;
use super::codec::{Encoded, ProxyMux, RangeEncoder, check_codec};
use super::files::{
    MANIFEST_VERSION, ProxyCheck, ProxyManifest, absolute, check_proxy, manifest_path, proxy_path,
    remove_leftovers,
};
use crate::media::{
    AudioCopy, DecodeOptions, DecoderRegistry, EncodeSettings, EncodeSpeed, MediaError, Mp4Demuxer,
    ProbeCache, RateControl, TrackCodec, VideoReader, WriteError, probe,
};
use crate::memory::BufferPool;

/// Samples a range holds at least (GOPs are merged up to it), so all-intra sources are not
/// split into one-frame ranges.
const MIN_RANGE_SAMPLES: usize = 24;

/// Recycled picture buffers a worker may keep idle (a few 4K pictures: the decoder's
/// reordering depth).
const POOL_BYTES_PER_WORKER: usize = 96 << 20;

/// One proxy to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyJobSpec {
    /// The original media.
    pub source: PathBuf,
    /// The proxy folder.
    pub dir: PathBuf,
    /// Picture height (width follows the source's aspect, both even).
    pub height: u32,
    /// Codec, quality and priority.
    pub generation: ProxyGeneration,
}

impl ProxyJobSpec {
    /// Where this proxy goes.
    pub fn path(&self) -> PathBuf {
        proxy_path(&self.dir, &self.source, self.height, self.generation.codec)
    }
}

/// A proxy made.
#[derive(Clone, Debug)]
pub struct ProxyOutput {
    /// The proxy file.
    pub path: PathBuf,
    /// Its manifest.
    pub manifest: ProxyManifest,
    /// Its probe.
    pub info: MediaInfo,
}

/// The even width that keeps `src_w`:`src_h` at `height`.
pub fn proxy_width(src_w: u32, src_h: u32, height: u32) -> u32 {
    let w = (f64::from(src_w) * f64::from(height) / f64::from(src_h.max(1)) / 2.0).round() as u32;
    (w * 2).max(2)
}

/// Makes the proxy `spec` describes with `threads` decode/encode workers, calling
/// `progress(done, total)` as frames are muxed. Returns [`ProxyError::Cancelled`] soon after
/// `cancel` is set.
pub fn generate_proxy(
    spec: &ProxyJobSpec,
    registry: &DecoderRegistry,
    threads: usize,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ProxyOutput, ProxyError> {
    crate::profile_function!();
    let start = Instant::now();
    check_codec(spec.generation.codec)?;
    let source = spec.source.as_path();
    let source_fingerprint = ProbeCache::fingerprint(source)?;
    let info = probe(source, registry)?;
    if let Some(why) = &info.video.unsupported {
        return Err(MediaError::Unsupported {
            codec: info.video.codec.to_string(),
            reason: why.clone(),
        }
        .into());
    }
    let (sw, sh) = (info.video.width, info.video.height);
    let height = spec.height & !1;
    if height < 2 || height >= sh {
        return Err(ProxyError::NotSmaller {
            height: spec.height,
            source_height: sh,
        });
    }
    let width = proxy_width(sw, sh, height);
    let codec = spec.generation.codec;
    let qp = codec.qp(spec.generation.quality);
    let gop = codec.gop(info.video.frame_rate.as_f64());
    let settings = EncodeSettings {
        width,
        height,
        frame_rate: info.video.frame_rate,
        rate: RateControl::ConstantQp(qp),
        gop,
        speed: EncodeSpeed::Fast,
    };
    let path = spec.path();
    std::fs::create_dir_all(&spec.dir).map_err(|e| WriteError::Io {
        path: spec.dir.clone(),
        source: e,
    })?;
    // One job at a time makes a given proxy file, in this process or another: the claim is
    // an exclusive lock on a file beside it. Only its holder cleans up leftovers, so it never
    // deletes another job's live temporary file; a job that waited finds the proxy the other
    // made, and keeps it.
    let _claim = claim(&path, cancel)?;
    if let ProxyCheck::Ready(manifest) = check_proxy(source, &path)
        && manifest.generation == spec.generation
        && (manifest.width, manifest.height) == (width, height)
    {
        let info = probe(&path, registry)?;
        return Ok(ProxyOutput {
            path,
            manifest: *manifest,
            info,
        });
    }
    remove_leftovers(&path);

    let demux = Arc::new(Mp4Demuxer::open(source)?);
    let total = demux.video().frame_count();
    let ranges = gop_ranges(&demux);
    let threads = threads.max(1).min(ranges.len().max(1));
    // A shrink of 3x or more (4K → 720p) hides the deblocking filter's work: skip it
    // (libav only).
    let options = DecodeOptions {
        skip_loop_filter: spec.generation.fast_decode && height * 3 <= sh,
    };
    // Decoded pictures recycle their buffers (a 4K picture is 12 MB: a fresh one per frame
    // costs a zeroing pass and page faults besides the copy out of the decoder).
    let pool = BufferPool::new(POOL_BYTES_PER_WORKER * threads);
    let mut readers = Vec::with_capacity(threads);
    for _ in 0..threads {
        let mut reader = VideoReader::from_demuxer_with(demux.clone(), registry, options)?;
        reader.set_frame_pool(pool.clone());
        readers.push(reader);
    }
    let decode = match readers.first().map(VideoReader::backend) {
        Some("ffmpeg") if options.skip_loop_filter => "ffmpeg, deblocking skipped".to_string(),
        Some(name) => name.to_string(),
        None => String::new(),
    };
    let mut muxer = ProxyMux::create(&path, codec, settings)?;

    let window = threads + 1;
    let (range_tx, range_rx) = crossbeam_channel::bounded::<usize>(ranges.len().max(1));
    let (out_tx, out_rx) =
        crossbeam_channel::bounded::<Result<(u64, Encoded), ProxyError>>(threads * 16);
    let mut next = 0u64;
    let result = std::thread::scope(|scope| {
        for (w, mut reader) in readers.into_iter().enumerate() {
            let range_rx = range_rx.clone();
            let out_tx = out_tx.clone();
            let ranges = &ranges;
            std::thread::Builder::new()
                .name(format!("framelock-proxy-{w}"))
                .spawn_scoped(scope, move || {
                    crate::workers::lower_thread_priority();
                    let outcome = encode_ranges(
                        &mut reader,
                        ranges,
                        &range_rx,
                        &out_tx,
                        (codec, settings),
                        cancel,
                    );
                    if let Err(e) = outcome {
                        let _ = out_tx.send(Err(e));
                    }
                })
                .map_err(|e| ProxyError::Worker(e.to_string()))?;
        }
        drop(out_tx);
        let mut muxed = || -> Result<(), ProxyError> {
            let mut sent = 0usize;
            let mut done_ranges = 0usize;
            while sent < ranges.len() && sent < window {
                let _ = range_tx.send(sent);
                sent += 1;
            }
            let mut waiting: BTreeMap<u64, Encoded> = BTreeMap::new();
            while next < total {
                if cancel.load(Ordering::Relaxed) {
                    return Err(ProxyError::Cancelled);
                }
                let Ok(item) = out_rx.recv() else {
                    break; // every worker is done
                };
                let (index, picture) = item?;
                waiting.insert(index, picture);
                while let Some(picture) = waiting.remove(&next) {
                    muxer.write(&picture)?;
                    next += 1;
                    progress(next, total);
                }
                while done_ranges < ranges.len() && ranges[done_ranges].last_frame < next {
                    done_ranges += 1;
                }
                while sent < ranges.len() && sent < done_ranges + window {
                    let _ = range_tx.send(sent);
                    sent += 1;
                }
            }
            if cancel.load(Ordering::Relaxed) {
                return Err(ProxyError::Cancelled);
            }
            Ok(())
        };
        let r = muxed();
        // Release the workers whatever happened: no more ranges, and a closed result
        // channel makes their next send fail.
        drop(range_tx);
        drop(out_rx);
        r
    });
    result?;
    if next != total {
        return Err(ProxyError::FrameCount {
            expected: total,
            got: next,
        });
    }
    // The source's sound, copied packet for packet: a proxy is usable on its own.
    let audio = match crate::media::audio_copy(source) {
        Ok(Some(copy)) => {
            copy_audio(&mut muxer, source, &copy)?;
            Some(format!("AAC copied ({} packets)", copy.packets.len()))
        }
        Ok(None) => None,
        Err(why) => Some(format!("not copied: {why}")),
    };
    let written = muxer.finish_verified(|tmp| verify(tmp, total, source, &source_fingerprint))?;
    let proxy_fingerprint = ProbeCache::fingerprint(&written)?;
    let proxy_info = probe(&written, registry)?;
    let manifest = ProxyManifest {
        version: MANIFEST_VERSION,
        source: absolute(source),
        source_fingerprint,
        proxy_fingerprint,
        width,
        height,
        frames: total,
        codec,
        quality: spec.generation.quality,
        qp,
        gop,
        encoder: match codec {
            ProxyCodec::ProRes { .. } => "libav prores_ks".into(),
            _ => "openh264".into(),
        },
        decode,
        generation: spec.generation.clone(),
        seconds: start.elapsed().as_secs_f64(),
        audio,
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| ProxyError::Manifest {
        path: manifest_path(&path),
        source: std::io::Error::other(e),
    })?;
    // The manifest is what makes the proxy count: when it cannot be written (a full disk),
    // the proxy goes too, so neither is left without the other.
    if let Err(e) = crate::fs::write_atomic(manifest_path(&path), &json) {
        let _ = std::fs::remove_file(&path);
        return Err(ProxyError::Manifest {
            path: manifest_path(&path),
            source: e,
        });
    }
    Ok(ProxyOutput {
        path,
        manifest,
        info: proxy_info,
    })
}

/// Claims the right to make `proxy`: an exclusive lock on the hidden `.<name>.lock` beside
/// it (released when the file is dropped, or when the process dies). Waits while another job
/// holds it, giving up with [`ProxyError::Cancelled`] when `cancel` is set.
fn claim(proxy: &Path, cancel: &AtomicBool) -> Result<std::fs::File, ProxyError> {
    let name = proxy
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lock_path = proxy.with_file_name(format!(".{name}.lock"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| WriteError::Io {
            path: lock_path.clone(),
            source: e,
        })?;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => {
                if cancel.load(Ordering::Relaxed) {
                    return Err(ProxyError::Cancelled);
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(WriteError::Io {
                    path: lock_path,
                    source: e,
                }
                .into());
            }
        }
    }
}

/// Adds `copy`'s track to the proxy: the same packets (read from `source`), codec
/// configuration and edit.
fn copy_audio(muxer: &mut ProxyMux, source: &Path, copy: &AudioCopy) -> Result<(), WriteError> {
    use std::os::unix::fs::FileExt;
    let io = |e| WriteError::Io {
        path: source.to_path_buf(),
        source: e,
    };
    let file = std::fs::File::open(source).map_err(io)?;
    let m = muxer.muxer_mut();
    let track = m.add_audio(copy.rate, copy.channels)?;
    m.set_codec(
        track,
        TrackCodec::Aac {
            config: copy.config.clone(),
            bitrate: copy.bitrate,
        },
    )?;
    m.set_edit(track, copy.priming, copy.presented)?;
    let mut buf = Vec::new();
    for &(offset, size, duration) in &copy.packets {
        buf.resize(size as usize, 0);
        file.read_exact_at(&mut buf, offset).map_err(io)?;
        m.write_sample(track, &buf, duration, true)?;
    }
    Ok(())
}

/// A decode-order sample range starting at a sync sample, and the last presentation index
/// it yields.
struct Range {
    samples: std::ops::Range<usize>,
    last_frame: u64,
}

fn gop_ranges(demux: &Mp4Demuxer) -> Vec<Range> {
    let samples = &demux.video().samples;
    let mut starts: Vec<usize> = Vec::new();
    for (d, s) in samples.iter().enumerate() {
        if d == 0 || (s.is_sync && d - starts.last().copied().unwrap_or(0) >= MIN_RANGE_SAMPLES) {
            starts.push(d);
        }
    }
    let mut ranges = Vec::with_capacity(starts.len());
    for (i, &a) in starts.iter().enumerate() {
        let b = starts.get(i + 1).copied().unwrap_or(samples.len());
        let last_frame = samples[a..b]
            .iter()
            .filter_map(|s| s.frame)
            .max()
            .unwrap_or(0);
        ranges.push(Range {
            samples: a..b,
            last_frame,
        });
    }
    ranges
}

fn encode_ranges(
    reader: &mut VideoReader,
    ranges: &[Range],
    range_rx: &crossbeam_channel::Receiver<usize>,
    out_tx: &crossbeam_channel::Sender<Result<(u64, Encoded), ProxyError>>,
    (codec, settings): (ProxyCodec, EncodeSettings),
    cancel: &AtomicBool,
) -> Result<(), ProxyError> {
    let mut encoder = RangeEncoder::new(codec, settings)?;
    for r in range_rx.iter() {
        crate::profile_scope!("proxy range");
        encoder.start_range();
        let mut failed: Option<ProxyError> = None;
        let mut on_frame = |frame: crate::media::Picture| -> bool {
            if cancel.load(Ordering::Relaxed) {
                return false;
            }
            match encoder.encode(&frame, settings.width, settings.height) {
                Ok(picture) => out_tx.send(Ok((frame.index, picture))).is_ok(),
                Err(e) => {
                    failed = Some(e);
                    false
                }
            }
        };
        reader.decode_range(ranges[r].samples.clone(), &mut on_frame)?;
        if let Some(e) = failed {
            return Err(e);
        }
        if cancel.load(Ordering::Relaxed) {
            return Ok(());
        }
    }
    Ok(())
}

fn verify(tmp: &Path, total: u64, source: &Path, fingerprint: &str) -> Result<(), WriteError> {
    crate::media::verify_video(tmp, total)?;
    if ProbeCache::fingerprint(source)? != fingerprint {
        return Err(WriteError::Verify(
            "the source changed while its proxy was being made".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_keep_aspect_and_stay_even() {
        assert_eq!(proxy_width(3840, 2160, 720), 1280);
        assert_eq!(proxy_width(1920, 1080, 540), 960);
        assert_eq!(proxy_width(1440, 1080, 720), 960);
        assert_eq!(proxy_width(4096, 2160, 720), 1366);
        assert_eq!(proxy_width(1000, 1000, 3), 4);
    }
}
