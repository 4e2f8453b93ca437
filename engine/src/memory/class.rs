//! What a pooled buffer is for and the pools' counters: the classes the budget reports
//! ([`PoolClass`]), the shapes buffers are recycled by ([`PoolKey`]), and each class's bytes
//! and events ([`ClassStats`], [`PoolStats`]).

use crate::media::PixelFormat;

/// What a pooled buffer is for (the pools report per class).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PoolClass {
    /// Planes of decoded, scaled and composited frames.
    Frames,
    /// Decoded audio sample buffers.
    Audio,
    /// Effect scratch (intermediate images, staging copies).
    EffectScratch,
    /// Decoder state: each open decoder's reference and reordering pictures and
    /// per-macroblock state, as its backend estimates them (the decoder allocates them
    /// itself, so they are counted through
    /// [`BufferPool::account`](super::BufferPool::account), never shelved).
    Decoders,
}

impl PoolClass {
    /// Every class, in report order.
    pub const ALL: [Self; 4] = [
        Self::Frames,
        Self::Audio,
        Self::EffectScratch,
        Self::Decoders,
    ];

    pub(super) fn slot(self) -> usize {
        match self {
            Self::Frames => 0,
            Self::Audio => 1,
            Self::EffectScratch => 2,
            Self::Decoders => 3,
        }
    }
}

/// The shape a buffer is recycled by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PoolKey {
    /// One plane of a frame.
    Plane {
        /// Sample layout of the frame.
        format: PixelFormat,
        /// Frame width.
        width: u32,
        /// Frame height.
        height: u32,
        /// 0 = Y, 1 = U, 2 = V.
        plane: u8,
    },
    /// An audio buffer of this many bytes.
    Audio(usize),
    /// An effect scratch buffer of this many bytes.
    Scratch(usize),
}

impl PoolKey {
    /// The class this key belongs to.
    pub fn class(self) -> PoolClass {
        match self {
            Self::Plane { .. } => PoolClass::Frames,
            Self::Audio(_) => PoolClass::Audio,
            Self::Scratch(_) => PoolClass::EffectScratch,
        }
    }
}

/// One class's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassStats {
    /// Bytes handed out and not returned.
    pub in_use_bytes: usize,
    /// Bytes idle on the shelves.
    pub idle_bytes: usize,
    /// Buffers allocated (new memory).
    pub allocations: u64,
    /// Buffers served from the shelves.
    pub reuses: u64,
    /// Buffers freed (returned while over the limit, or trimmed).
    pub frees: u64,
}

/// The pools' counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Frames, audio, effect scratch, decoders (in [`PoolClass::ALL`] order).
    pub classes: [ClassStats; 4],
    /// The most bytes ever accounted at once.
    pub peak_bytes: usize,
    /// At that peak, per class (in [`PoolClass::ALL`] order): (in use, idle) bytes.
    pub peak_classes: [(usize, usize); 4],
    /// The limit idle buffers are trimmed to.
    pub limit_bytes: usize,
}

impl PoolStats {
    /// One class.
    pub fn class(&self, class: PoolClass) -> ClassStats {
        self.classes[class.slot()]
    }

    /// In use + idle, all classes.
    pub fn accounted_bytes(&self) -> usize {
        self.classes
            .iter()
            .map(|c| c.in_use_bytes + c.idle_bytes)
            .sum()
    }
}
