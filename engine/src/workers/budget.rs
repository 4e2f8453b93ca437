//! Open decoders in the memory budget (see `DecodePoolOptions::decoder_room` and
//! `decoders_expected`): each one's estimate, counted in the pool's decoder class for as
//! long as it is open, and a reservation for the expected ones not open yet.

use std::sync::Arc;

use crate::memory::{Accounted, BufferPool, PoolClass};

/// Open decoders in the budget: each one's estimate, plus what is expected and not open yet
/// (see [`DecodePoolOptions::decoders_expected`]).
pub(super) struct DecoderBytes {
    pool: BufferPool,
    expected: usize,
    /// Bytes of the open decoders, and the reservation for the rest of the expected ones.
    state: std::sync::Mutex<(usize, Accounted)>,
}

impl DecoderBytes {
    pub(super) fn new(pool: BufferPool, expected: usize) -> Arc<Self> {
        let mut reserve = pool.account(PoolClass::Decoders);
        reserve.set(expected);
        Arc::new(Self {
            pool,
            expected,
            state: std::sync::Mutex::new((0, reserve)),
        })
    }

    /// The reservation not used up yet.
    pub(super) fn reserved(&self) -> usize {
        self.state.lock().map_or(0, |s| s.1.bytes())
    }

    /// Counts a decoder of `bytes` for as long as the guard lives.
    pub(super) fn open(self: &Arc<Self>, bytes: usize) -> DecoderGuard {
        let mut counted = self.pool.account(PoolClass::Decoders);
        counted.set(bytes);
        self.change(|open| open + bytes);
        DecoderGuard {
            owner: self.clone(),
            _counted: counted,
            bytes,
        }
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
    _counted: Accounted,
    bytes: usize,
}

impl Drop for DecoderGuard {
    fn drop(&mut self) {
        let bytes = self.bytes;
        self.owner.change(|open| open.saturating_sub(bytes));
    }
}
