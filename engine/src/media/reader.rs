//! Random access by frame index over a demuxer and a decoder, and parallel whole-file decode.
//!
//! [`VideoReader::frame`]`(n)` starts at the sync sample at or before `n` and decodes forward;
//! when `n` is still ahead of what the decoder has produced (sequential playback, a short
//! forward jump inside the GOP) it keeps going without a seek. Pictures are matched to samples
//! by order: the decoder emits in presentation order, so each picture is the pending sample
//! with the smallest presentation time (or, when the backend carries timestamps, the one it
//! names).

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::decode::{
    DecodeOptions, DecodedPicture, Decoder, DecoderRegistry, Packet, StreamDescription, Support,
};
use super::{MediaError, Mp4Demuxer, Picture};

/// Anything that hands out frames by index (the reader, a test double, later a cache).
pub trait FrameSource: Send {
    /// Frames in the stream.
    fn frame_count(&self) -> u64;
    /// Frame `index`, in presentation order.
    fn frame(&mut self, index: u64) -> Result<Picture, MediaError>;
}

/// Counters a reader keeps, for tests and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReaderStats {
    /// Times the decoder was reset and restarted at a sync sample.
    pub seeks: u64,
    /// Packets fed to the decoder.
    pub packets_decoded: u64,
    /// Pictures decoded but not asked for (before the target after a seek, or trimmed).
    pub frames_discarded: u64,
}

/// Frame-exact random access to one file's video track.
pub struct VideoReader {
    demux: Arc<Mp4Demuxer>,
    stream: StreamDescription,
    backend: &'static str,
    support: Support,
    /// The backend's estimate of what the decoder holds (see
    /// [`crate::media::decode::DecoderBackend::state_bytes`]).
    state_bytes: usize,
    decoder: Box<dyn Decoder>,
    /// Next decode index to feed; `None` when no decode session is open.
    next_decode: Option<usize>,
    /// Fed samples not yet matched to a picture: pts → decode index.
    pending: BTreeMap<i64, u32>,
    /// Pictures at or after the last request, in presentation order.
    ready: VecDeque<Picture>,
    /// Highest frame index this session has produced.
    produced: Option<u64>,
    /// The sample (decode order) this session started at: its keyframe.
    session_start: usize,
    flushed: bool,
    sample: Vec<u8>,
    out: Vec<DecodedPicture>,
    stats: ReaderStats,
    /// When set, frames decoded on the way to a target are kept here instead of dropped:
    /// the newest ones, within `skipped_limit` bytes.
    skipped: Option<VecDeque<Picture>>,
    skipped_limit: usize,
    /// Asked between two packets: `true` stops the decode with [`MediaError::Cancelled`].
    cancel: Option<CancelCheck>,
    /// Where turned pictures (a rotated track) take their planes from.
    pool: Option<crate::memory::BufferPool>,
}

/// A check a long decode asks between packets (see [`VideoReader::set_cancel`]).
pub type CancelCheck = Arc<dyn Fn() -> bool + Send + Sync>;

impl std::fmt::Debug for VideoReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoReader")
            .field("path", &self.demux.path())
            .field("backend", &self.backend)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl VideoReader {
    /// Opens `path` with the best backend `registry` has for its video stream.
    pub fn open(path: impl AsRef<Path>, registry: &DecoderRegistry) -> Result<Self, MediaError> {
        Self::from_demuxer(Arc::new(Mp4Demuxer::open(path)?), registry)
    }

    /// A reader over an already open file (several readers can share one demuxer).
    pub fn from_demuxer(
        demux: Arc<Mp4Demuxer>,
        registry: &DecoderRegistry,
    ) -> Result<Self, MediaError> {
        Self::from_demuxer_with(demux, registry, DecodeOptions::default())
    }

    /// [`VideoReader::from_demuxer`] with decoder `options` (see [`DecodeOptions`]).
    pub fn from_demuxer_with(
        demux: Arc<Mp4Demuxer>,
        registry: &DecoderRegistry,
        options: DecodeOptions,
    ) -> Result<Self, MediaError> {
        let stream = StreamDescription::from_track(demux.video());
        let selection = registry.select(&stream)?;
        let decoder = selection.backend.create_with(&stream, options)?;
        let state_bytes = selection.backend.state_bytes(&stream);
        Ok(Self {
            demux,
            stream,
            backend: selection.backend.name(),
            support: selection.support,
            state_bytes,
            decoder,
            next_decode: None,
            pending: BTreeMap::new(),
            ready: VecDeque::new(),
            produced: None,
            session_start: 0,
            flushed: false,
            sample: Vec::new(),
            out: Vec::new(),
            stats: ReaderStats::default(),
            skipped: None,
            skipped_limit: 0,
            cancel: None,
            pool: None,
        })
    }

    /// The demuxed file.
    pub fn demuxer(&self) -> &Arc<Mp4Demuxer> {
        &self.demux
    }

    /// Decoded pictures take their planes from `pool` from now on.
    pub fn set_frame_pool(&mut self, pool: crate::memory::BufferPool) {
        self.pool = Some(pool.clone());
        self.decoder.set_frame_pool(pool);
    }

    /// The stream as the decoder sees it.
    pub fn stream(&self) -> &StreamDescription {
        &self.stream
    }

    /// The backend decoding this stream.
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// What the decoder holds once running, as its backend estimates it: the bytes the
    /// memory budget counts for this reader.
    pub fn state_bytes(&self) -> usize {
        self.state_bytes
    }

    /// How exactly the backend decodes this stream.
    pub fn support(&self) -> &Support {
        &self.support
    }

    /// Counters.
    pub fn stats(&self) -> ReaderStats {
        self.stats
    }

    /// Frames in the stream.
    pub fn frame_count(&self) -> u64 {
        self.demux.video().frame_count()
    }

    fn restart(&mut self, at: usize) -> Result<(), MediaError> {
        self.decoder.reset()?;
        self.pending.clear();
        self.ready.clear();
        self.produced = None;
        self.flushed = false;
        self.next_decode = Some(at);
        self.session_start = at;
        self.stats.seeks += 1;
        Ok(())
    }

    /// Matches decoded pictures to samples and keeps those at or after `target`.
    fn collect(&mut self, target: u64) {
        let track = self.demux.video();
        for pic in self.out.drain(..) {
            let matched = match pic.pts {
                Some(pts) => self.pending.remove(&pts).map(|d| (pts, d)),
                None => self.pending.pop_first(),
            };
            let Some((_, d)) = matched else {
                self.stats.frames_discarded += 1;
                continue;
            };
            let sample = &track.samples[d as usize];
            match sample.frame {
                Some(index) => {
                    self.produced = Some(self.produced.map_or(index, |p| p.max(index)));
                    // Upright for display (a phone's portrait clip).
                    let mut frame = super::orient(pic.frame, track.orientation, self.pool.as_ref());
                    frame.index = index;
                    frame.time_secs = sample.pts as f64 / track.timescale as f64;
                    if index >= target {
                        self.ready.push_back(frame);
                    } else if let Some(kept) = self.skipped.as_mut() {
                        // The newest within the limit: a long GOP's run-up never holds
                        // more than that at once.
                        kept.push_back(frame);
                        let mut bytes: usize = kept.iter().map(Picture::size_bytes).sum();
                        while bytes > self.skipped_limit {
                            match kept.pop_front() {
                                Some(f) => bytes -= f.size_bytes(),
                                None => break,
                            }
                            self.stats.frames_discarded += 1;
                        }
                    } else {
                        self.stats.frames_discarded += 1;
                    }
                }
                None => self.stats.frames_discarded += 1,
            }
        }
    }

    /// Whether this session has produced frame `n` or a later one already (reaching `n`
    /// again needs a seek back to its keyframe).
    pub fn passed(&self, n: u64) -> bool {
        self.produced.is_some_and(|p| p >= n)
    }

    /// Whether [`VideoReader::frame`]`(n)` would continue the current decode (or find `n`
    /// already decoded) instead of seeking back to a keyframe.
    pub fn continues_to(&self, n: u64) -> bool {
        if self.ready.iter().any(|f| f.index == n) {
            return true;
        }
        self.demux
            .video()
            .seek_point(n)
            .is_some_and(|seek_point| self.continues(n, seek_point))
    }

    /// Whether decoding on from where this session is reaches frame `n` (whose GOP starts at
    /// sample `seek_point`): it has not produced `n` or later yet, `n`'s keyframe is not
    /// behind where the session started (a session stopped before its first picture, by a
    /// cancel, has produced nothing, and an earlier GOP must not pass for a later one), and
    /// not beyond the next packet.
    fn continues(&self, n: u64, seek_point: usize) -> bool {
        match self.next_decode {
            Some(next) => {
                self.produced.is_none_or(|p| p < n)
                    && (self.session_start..=next).contains(&seek_point)
            }
            None => false,
        }
    }

    /// Frame `n` (presentation order), exactly.
    pub fn frame(&mut self, n: u64) -> Result<Picture, MediaError> {
        let frames = self.frame_count();
        if n >= frames {
            return Err(MediaError::FrameOutOfRange { index: n, frames });
        }
        while self.ready.front().is_some_and(|f| f.index < n) {
            self.ready.pop_front();
        }
        if self.ready.front().is_some_and(|f| f.index == n) {
            return self
                .ready
                .pop_front()
                .ok_or(MediaError::FrameOutOfRange { index: n, frames });
        }
        let seek_point = self
            .demux
            .video()
            .seek_point(n)
            .ok_or(MediaError::FrameOutOfRange { index: n, frames })?;
        if !self.continues(n, seek_point) {
            self.restart(seek_point)?;
        }
        let result = self.decode_until(n);
        // Cancelled between two packets, the decoder is fine: a later request continues.
        if result
            .as_ref()
            .is_err_and(|e| !matches!(e, MediaError::Cancelled))
        {
            // The decoder's state is unknown after an error: the next request restarts.
            self.next_decode = None;
        }
        result
    }

    fn decode_until(&mut self, n: u64) -> Result<Picture, MediaError> {
        let total = self.demux.video().samples.len();
        loop {
            while self.ready.front().is_some_and(|f| f.index < n) {
                self.ready.pop_front();
            }
            if let Some(f) = self.ready.front() {
                if f.index == n {
                    return self.ready.pop_front().ok_or(MediaError::FrameOutOfRange {
                        index: n,
                        frames: self.frame_count(),
                    });
                }
                return Err(MediaError::Decode {
                    backend: self.backend,
                    reason: format!("frame {n} was skipped by the decoder (got {})", f.index),
                });
            }
            if self.cancel.as_ref().is_some_and(|c| c()) {
                return Err(MediaError::Cancelled);
            }
            let next = self.next_decode.unwrap_or(total);
            if next < total {
                self.demux.read_sample(next, &mut self.sample)?;
                let s = self.demux.video().samples[next];
                self.pending.insert(s.pts, next as u32);
                self.next_decode = Some(next + 1);
                self.stats.packets_decoded += 1;
                self.decoder.decode(
                    Packet {
                        data: &self.sample,
                        pts: s.pts,
                        is_sync: s.is_sync,
                    },
                    &mut self.out,
                )?;
            } else if !self.flushed {
                self.flushed = true;
                self.decoder.flush(&mut self.out)?;
            } else {
                return Err(MediaError::Decode {
                    backend: self.backend,
                    reason: format!("frame {n} never came out of the decoder"),
                });
            }
            self.collect(n);
        }
    }

    /// Sets the check a decode asks between packets: when it says `true`, the request stops
    /// with [`MediaError::Cancelled`] (a decode worker's job that a seek made stale stops
    /// within one frame's decode instead of finishing its GOP). The decoder stays usable.
    pub fn set_cancel(&mut self, cancel: Option<CancelCheck>) {
        self.cancel = cancel;
    }

    /// Keep the frames decoded on the way to a requested one (from the keyframe up to it)
    /// for [`VideoReader::take_skipped`], instead of dropping them: the newest ones, at most
    /// `bytes` of them (0: keep none). Reverse playback wants exactly those: one forward
    /// decode of the GOP serves the next requests.
    pub fn keep_skipped(&mut self, bytes: usize) {
        self.skipped = (bytes > 0).then(VecDeque::new);
        self.skipped_limit = bytes;
    }

    /// The frames kept since the last call (see [`VideoReader::keep_skipped`]).
    pub fn take_skipped(&mut self) -> Vec<Picture> {
        self.skipped
            .as_mut()
            .map(|k| k.drain(..).collect())
            .unwrap_or_default()
    }

    /// The frame after the last one returned (frame 0 first): sequential playback.
    pub fn next_frame(&mut self) -> Option<Result<Picture, MediaError>> {
        let n = match (self.ready.front(), self.produced) {
            (Some(f), _) => f.index,
            (None, Some(p)) => p + 1,
            (None, None) => 0,
        };
        (n < self.frame_count()).then(|| self.frame(n))
    }
}

impl FrameSource for VideoReader {
    fn frame_count(&self) -> u64 {
        VideoReader::frame_count(self)
    }

    fn frame(&mut self, index: u64) -> Result<Picture, MediaError> {
        VideoReader::frame(self, index)
    }
}

/// What [`parallel_decode`] did.
#[derive(Clone, Debug)]
pub struct ParallelDecodeReport {
    /// Frames handed to the callback.
    pub frames: u64,
    /// Decoder instances used.
    pub workers: usize,
    /// Backend name.
    pub backend: &'static str,
    /// Wall time.
    pub elapsed: Duration,
}

/// Decodes every frame of `path` with `workers` decoder instances, each over its own ranges
/// of whole GOPs (sync sample to sync sample), and hands each frame to `on_frame` on the
/// calling thread as it arrives (not in order; `frame.index` says which). Throughput work
/// (proxies, export, benchmarks) uses this; playback uses [`VideoReader`].
///
/// 🟧 Assumes closed GOPs: the leading pictures of an open GOP come out of the range that
/// contains their sync sample, decoded without their earlier reference.
pub fn parallel_decode(
    path: impl AsRef<Path>,
    registry: &DecoderRegistry,
    workers: usize,
    mut on_frame: impl FnMut(Picture),
) -> Result<ParallelDecodeReport, MediaError> {
    let start = Instant::now();
    let demux = Arc::new(Mp4Demuxer::open(path)?);
    let track = demux.video();
    let sync: Vec<usize> = (0..track.samples.len())
        .filter(|&d| track.samples[d].is_sync)
        .collect();
    // Ranges of whole GOPs, several per worker so that uneven GOPs balance out.
    let workers = workers.max(1).min(sync.len().max(1));
    let chunks = (workers * 4).min(sync.len().max(1));
    let mut ranges = Vec::with_capacity(chunks);
    for c in 0..chunks {
        let a = sync.get(c * sync.len() / chunks).copied().unwrap_or(0);
        let b = sync
            .get((c + 1) * sync.len() / chunks)
            .copied()
            .unwrap_or(track.samples.len());
        if c == 0 {
            ranges.push(0..b);
        } else if a < b {
            ranges.push(a..b);
        }
    }
    let (range_tx, range_rx) = crossbeam_channel::bounded(ranges.len());
    for r in ranges {
        let _ = range_tx.send(r);
    }
    drop(range_tx);
    let (frame_tx, frame_rx) = crossbeam_channel::bounded::<Result<Picture, MediaError>>(8);
    let mut readers = Vec::with_capacity(workers);
    for _ in 0..workers {
        readers.push(VideoReader::from_demuxer(demux.clone(), registry)?);
    }
    let backend = readers.first().map_or("none", VideoReader::backend);
    let mut frames = 0u64;
    let mut first_error = None;
    std::thread::scope(|scope| {
        for mut reader in readers {
            let range_rx = range_rx.clone();
            let frame_tx = frame_tx.clone();
            scope.spawn(move || {
                for range in range_rx.iter() {
                    let mut send = |f| frame_tx.send(Ok(f)).is_ok();
                    if let Err(e) = reader.decode_range(range, &mut send) {
                        let _ = frame_tx.send(Err(e));
                        return;
                    }
                }
            });
        }
        drop(frame_tx);
        for item in frame_rx.iter() {
            match item {
                Ok(frame) => {
                    frames += 1;
                    on_frame(frame);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
    });
    if let Some(e) = first_error {
        return Err(e);
    }
    Ok(ParallelDecodeReport {
        frames,
        workers,
        backend,
        elapsed: start.elapsed(),
    })
}

impl VideoReader {
    /// Decodes samples `range` (starting at a sync sample) and hands every presented frame to
    /// `on_frame`, which returns `false` to stop early (the receiver is gone, a job was
    /// cancelled).
    pub(crate) fn decode_range(
        &mut self,
        range: std::ops::Range<usize>,
        on_frame: &mut dyn FnMut(Picture) -> bool,
    ) -> Result<(), MediaError> {
        self.restart(range.start)?;
        for d in range {
            self.demux.read_sample(d, &mut self.sample)?;
            let s = self.demux.video().samples[d];
            self.pending.insert(s.pts, d as u32);
            self.stats.packets_decoded += 1;
            self.decoder.decode(
                Packet {
                    data: &self.sample,
                    pts: s.pts,
                    is_sync: s.is_sync,
                },
                &mut self.out,
            )?;
            if !self.hand_ready(on_frame) {
                return Ok(());
            }
        }
        self.decoder.flush(&mut self.out)?;
        self.hand_ready(on_frame);
        Ok(())
    }

    fn hand_ready(&mut self, on_frame: &mut dyn FnMut(Picture) -> bool) -> bool {
        self.collect(0);
        for f in self.ready.drain(..) {
            if !on_frame(f) {
                return false;
            }
        }
        true
    }
}
