//! Open decoders in the memory budget (see `DecodePoolOptions::decoder_room` and
//! `decoders_expected`): each one's estimate, counted in the pool's decoder class for as
//! long as it is open, and a reservation for the expected ones not open yet.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use std::time::Instant;

use super::DecodeJob;
use super::worker::NO_ROOM_WAIT;
use crate::media::MediaError;
use crate::memory::{Accounted, BufferPool, PoolClass};

/// Open decoders in the budget: each one's estimate, plus what is expected and not open yet
/// (see [`DecodePoolOptions::decoders_expected`]).
pub(super) struct DecoderBytes {
    pool: BufferPool,
    expected: usize,
    /// Bytes of the open decoders, and the reservation for the rest of the expected ones.
    state: Mutex<(usize, Accounted)>,
    /// Bytes a worker needs to open a decoder of (0: none): the other workers close their
    /// least recently used decoders until that fits, between their jobs.
    wanted: AtomicUsize,
}

impl DecoderBytes {
    pub(super) fn new(pool: BufferPool, expected: usize) -> Arc<Self> {
        let mut reserve = pool.account(PoolClass::Decoders);
        reserve.set(expected);
        Arc::new(Self {
            pool,
            expected,
            state: Mutex::new((0, reserve)),
            wanted: AtomicUsize::new(0),
        })
    }

    /// The reservation not used up yet.
    pub(super) fn reserved(&self) -> usize {
        self.state.lock().map_or(0, |s| s.1.bytes())
    }

    /// Bytes another worker needs room for (0: none).
    pub(super) fn wanted(&self) -> usize {
        self.wanted.load(Ordering::SeqCst)
    }

    /// A worker needs room for a decoder of `bytes` (`0`: it has it now).
    pub(super) fn want(&self, bytes: usize) {
        if bytes == 0 {
            self.wanted.store(0, Ordering::SeqCst);
        } else {
            self.wanted.fetch_max(bytes, Ordering::SeqCst);
        }
    }

    /// Counts a decoder of `bytes` for as long as the guard lives, if it keeps the pool's
    /// accounted bytes within `room` (`None`: always) — what is reserved and not used up is
    /// room it may take. Checked and counted under one lock, so that two workers cannot both
    /// take the same room.
    pub(super) fn open(
        self: &Arc<Self>,
        bytes: usize,
        room: Option<usize>,
    ) -> Option<DecoderGuard> {
        let Ok(mut s) = self.state.lock() else {
            return None;
        };
        if let Some(room) = room
            && self.pool.accounted_bytes() + bytes.saturating_sub(s.1.bytes()) > room
        {
            return None;
        }
        // The reservation shrinks before the decoder is counted (and grows after it is
        // uncounted, on drop): never both at once, even for an instant the peak would see.
        s.0 += bytes;
        let rest = self.expected.saturating_sub(s.0);
        s.1.set(rest);
        let mut counted = self.pool.account(PoolClass::Decoders);
        counted.set(bytes);
        Some(DecoderGuard {
            owner: self.clone(),
            counted,
            bytes,
        })
    }

    fn change(&self, f: impl FnOnce(usize) -> usize) {
        if let Ok(mut s) = self.state.lock() {
            s.0 = f(s.0);
            let rest = self.expected.saturating_sub(s.0);
            s.1.set(rest);
        }
    }
}

/// One open decoder's bytes in the budget.
pub(super) struct DecoderGuard {
    owner: Arc<DecoderBytes>,
    counted: Accounted,
    bytes: usize,
}

impl Drop for DecoderGuard {
    fn drop(&mut self) {
        let bytes = self.bytes;
        self.counted.set(0);
        self.owner.change(|open| open.saturating_sub(bytes));
    }
}

/// A worker's decoders against the room: whether one more fits, counting it, and closing
/// decoders to make room (for itself, or for another worker that waits).
impl super::worker::Worker {
    /// Counts a decoder of `bytes` in the budget if it fits in the room: `None` when it does
    /// not; `Some(None)` without a pool to count in.
    #[allow(
        clippy::option_option,
        reason = "fits uncounted / fits counted / does not fit"
    )]
    pub(super) fn count(&self, bytes: usize) -> Option<Option<DecoderGuard>> {
        match &self.decoder_bytes {
            Some(d) => d.open(bytes, self.decoder_room).map(Some),
            None => Some(None),
        }
    }

    /// Counts a decoder of `bytes` in the budget, room or not.
    pub(super) fn count_anyway(&self, bytes: usize) -> Option<DecoderGuard> {
        self.decoder_bytes
            .as_ref()
            .and_then(|d| d.open(bytes, None))
    }

    /// A decoder of `bytes` more keeps the accounted bytes within the room. What is
    /// reserved for expected decoders is room this one may take.
    pub(super) fn fits(&self, bytes: usize) -> bool {
        let (Some(room), Some(pool)) = (self.decoder_room, &self.pool) else {
            return true;
        };
        let reserved = self.decoder_bytes.as_ref().map_or(0, |d| d.reserved());
        pool.accounted_bytes() + bytes.saturating_sub(reserved) <= room
    }

    /// Closes decoders for one another worker needs room for (see [`DecoderBytes::want`]):
    /// this worker's least recently used ones, but those of `keep` (the asset it decodes
    /// now).
    pub(super) fn shed_for_others(&mut self, keep: Option<u64>) {
        let wanted = self.decoder_bytes.as_ref().map_or(0, |d| d.wanted());
        if wanted > 0 {
            self.make_room(wanted, keep.unwrap_or(u64::MAX));
        }
    }

    /// Closes this worker's least recently used decoders of assets other than `keep` until
    /// `bytes` more fit in the room (or none is left to close). Idle pooled buffers go
    /// first: they are room nobody uses.
    pub(super) fn make_room(&mut self, bytes: usize, keep: u64) {
        if let (Some(room), Some(pool)) = (self.decoder_room, &self.pool)
            && !self.fits(bytes)
        {
            let reserved = self.decoder_bytes.as_ref().map_or(0, |d| d.reserved());
            pool.trim_to(room.saturating_sub(bytes.saturating_sub(reserved)));
        }
        while !self.fits(bytes) {
            let lru = self
                .readers
                .iter()
                .filter(|(a, _)| **a != keep)
                .flat_map(|(&a, rs)| rs.iter().enumerate().map(move |(i, o)| (o.used, a, i)))
                .min();
            let Some((_, asset, i)) = lru else {
                return;
            };
            if let Some(rs) = self.readers.get_mut(&asset) {
                rs.remove(i);
                if rs.is_empty() {
                    self.readers.remove(&asset);
                }
            }
            // Frames kept from the closed decoder's run are worth less than the room.
            self.kept.retain(|(a, _)| *a != asset);
            self.kept_bytes = self.kept.iter().map(|(_, f)| f.size_bytes()).sum();
        }
    }

    /// Counts a new decoder of `bytes` for `job`'s asset, making room first. Still no room:
    /// the other workers close their least recently used decoders between their jobs, and
    /// the request comes again on a later tick (`NoRoom`: the budget holds; the frame is
    /// late instead). Frames cached below the warning level are not evicted for a decoder,
    /// so after [`NO_ROOM_WAIT`] it opens over the room (counted: evict then sees critical
    /// pressure and frees frames down to warning) rather than wait for ever.
    pub(super) fn count_new(
        &mut self,
        job: &DecodeJob,
        bytes: usize,
    ) -> Result<Option<DecoderGuard>, MediaError> {
        self.make_room(bytes, job.asset_id);
        let waited = *self
            .no_room
            .entry(job.asset_id)
            .or_insert_with(Instant::now);
        let counted = match self.count(bytes) {
            Some(counted) => Some(counted),
            None if waited.elapsed() >= NO_ROOM_WAIT => {
                log::debug!(
                    "{}: decoder opened over the memory room after {NO_ROOM_WAIT:?}",
                    job.path.display()
                );
                Some(self.count_anyway(bytes))
            }
            None => None,
        };
        match counted {
            Some(counted) => {
                self.no_room.remove(&job.asset_id);
                if let Some(d) = &self.decoder_bytes {
                    d.want(0);
                }
                Ok(counted)
            }
            None => {
                if let Some(d) = &self.decoder_bytes {
                    d.want(bytes);
                }
                Err(MediaError::NoRoom {
                    path: job.path.to_path_buf(),
                    bytes,
                })
            }
        }
    }
}
