//! A source at the mixer's format: channels converted, resampled with rubato, read in
//! blocks kept in a small cache.
//!
//! Blocks are aligned to the rate ratio: with `out / in = p / q` in lowest terms, every block
//! starts at an output frame that is a multiple of `p`, i.e. at an input frame that is a
//! multiple of `q`, so each block's resampling has the same phase as one continuous pass would
//! have. Each block is resampled from its input span plus a margin on both sides (the
//! filter's reach), and only the middle is kept: blocks join without a seam, and any block can
//! be made on its own — a seek costs one block, not a decode from the start.
//!
//! Channel layouts: mono is copied to both sides; stereo to mono is the mean; 5.1 (WAVE
//! order FL FR FC LFE BL BR) to stereo uses the ITU-R BS.775 coefficients
//! (`L = FL + 0.7071 FC + 0.7071 BL`, LFE dropped); other counts keep their first channels.

use std::collections::HashMap;
use std::sync::Arc;

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

use super::AudioError;
use super::source::AudioSource;

/// Output frames per block (about a second at 48 kHz, rounded to the ratio's period).
const BLOCK_TARGET: u64 = 48_000;
/// Input frames of context resampled on each side of a block.
const MARGIN_TARGET: u64 = 2048;
/// Blocks kept per source.
const BLOCKS_KEPT: usize = 8;

/// Converts interleaved `input` of `from` channels to `to` channels.
pub fn convert_channels(input: &[f32], from: usize, to: usize) -> Vec<f32> {
    if from == to {
        return input.to_vec();
    }
    let frames = input.len() / from.max(1);
    let mut out = vec![0.0f32; frames * to];
    const K: f32 = std::f32::consts::FRAC_1_SQRT_2;
    for (i, o) in out.chunks_exact_mut(to).enumerate() {
        let f = &input[i * from..(i + 1) * from];
        match (from, to) {
            (1, _) => o.fill(f[0]),
            (2, 1) => o[0] = 0.5 * (f[0] + f[1]),
            (6, 2) => {
                o[0] = f[0] + K * f[2] + K * f[4];
                o[1] = f[1] + K * f[2] + K * f[5];
            }
            (6, 1) => o[0] = 0.5 * (f[0] + f[1]) + K * f[2] + 0.5 * K * (f[4] + f[5]),
            _ => {
                for (c, v) in o.iter_mut().enumerate() {
                    *v = f.get(c).copied().unwrap_or(0.0);
                }
            }
        }
    }
    out
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// A source read at the mixer's rate and channels.
pub struct ResampledSource {
    src: AudioSource,
    out_rate: u32,
    out_channels: usize,
    /// `out / in = p / q`.
    p: u64,
    q: u64,
    block: u64,
    margin: u64,
    resampler: Option<Fft<f32>>,
    blocks: HashMap<u64, (Arc<Vec<f32>>, u64)>,
    uses: u64,
}

impl std::fmt::Debug for ResampledSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResampledSource")
            .field("src", &self.src)
            .field("out_rate", &self.out_rate)
            .field("out_channels", &self.out_channels)
            .finish_non_exhaustive()
    }
}

impl ResampledSource {
    /// `src` read at `rate` Hz with `channels` channels.
    pub fn new(src: AudioSource, rate: u32, channels: usize) -> Result<Self, AudioError> {
        let g = gcd(u64::from(rate), u64::from(src.rate()));
        let (p, q) = (u64::from(rate) / g, u64::from(src.rate()) / g);
        let block = BLOCK_TARGET.div_ceil(p).max(1) * p;
        let margin = MARGIN_TARGET.div_ceil(q).max(1) * q;
        let resampler = if p == q {
            None
        } else {
            Some(
                Fft::<f32>::new(
                    src.rate() as usize,
                    rate as usize,
                    1024,
                    channels.max(1),
                    FixedSync::Input,
                )
                .map_err(|e| AudioError::Unsupported {
                    path: src.path().to_path_buf(),
                    reason: format!("resampling {} Hz to {rate} Hz: {e}", src.rate()),
                })?,
            )
        };
        Ok(Self {
            src,
            out_rate: rate,
            out_channels: channels.max(1),
            p,
            q,
            block,
            margin,
            resampler,
            blocks: HashMap::new(),
            uses: 0,
        })
    }

    /// The source underneath.
    pub fn source(&self) -> &AudioSource {
        &self.src
    }

    /// Frames at the output rate, when the container says.
    pub fn frames(&self) -> Option<u64> {
        self.src.frames().map(|n| n * self.p / self.q)
    }

    /// Bytes of decoded audio held in blocks.
    pub fn bytes_held(&self) -> usize {
        self.blocks.values().map(|(b, _)| b.len() * 4).sum()
    }

    /// Reads `frames` output frames from output frame `start`, adding each sample times
    /// `gain(frame offset)` into `out` (interleaved, output channels).
    pub fn mix_into(
        &mut self,
        start: u64,
        out: &mut [f32],
        gain: impl Fn(u64) -> f32,
    ) -> Result<(), AudioError> {
        let ch = self.out_channels;
        let frames = (out.len() / ch) as u64;
        let mut done = 0u64;
        while done < frames {
            let at = start + done;
            let b = at / self.block;
            let block = self.block(b)?;
            let from = at - b * self.block;
            let n = (self.block - from).min(frames - done);
            for i in 0..n {
                let g = gain(done + i);
                let s = ((from + i) as usize) * ch;
                let d = ((done + i) as usize) * ch;
                for c in 0..ch {
                    out[d + c] += g * block.get(s + c).copied().unwrap_or(0.0);
                }
            }
            done += n;
        }
        Ok(())
    }

    /// Output frames `b * block .. (b + 1) * block`.
    fn block(&mut self, b: u64) -> Result<Arc<Vec<f32>>, AudioError> {
        self.uses += 1;
        if let Some((data, used)) = self.blocks.get_mut(&b) {
            *used = self.uses;
            return Ok(data.clone());
        }
        let data = Arc::new(self.make_block(b)?);
        if self.blocks.len() >= BLOCKS_KEPT
            && let Some(old) = self
                .blocks
                .iter()
                .min_by_key(|(_, (_, u))| *u)
                .map(|(k, _)| *k)
        {
            self.blocks.remove(&old);
        }
        self.blocks.insert(b, (data.clone(), self.uses));
        Ok(data)
    }

    fn make_block(&mut self, b: u64) -> Result<Vec<f32>, AudioError> {
        crate::profile_function!();
        let ch = self.out_channels;
        let out_start = b * self.block;
        let in_start = out_start / self.p * self.q;
        let in_len = self.block / self.p * self.q;
        let mut raw = Vec::new();
        let Some(resampler) = self.resampler.as_mut() else {
            self.src.read(in_start, in_len as usize, &mut raw)?;
            return Ok(convert_channels(&raw, self.src.channels(), ch));
        };
        // Input with a margin each side (from frame 0 at the start: still aligned).
        let first = in_start.saturating_sub(self.margin);
        let span = (in_start - first) + in_len + self.margin;
        self.src.read(first, span as usize, &mut raw)?;
        let input = convert_channels(&raw, self.src.channels(), ch);
        let frames = input.len() / ch;
        let adapter =
            InterleavedSlice::new(&input, ch, frames).map_err(|e| AudioError::Unsupported {
                path: self.src.path().to_path_buf(),
                reason: format!("resampler input: {e}"),
            })?;
        let resampled = resampler
            .process_all(&adapter, frames, None)
            .map_err(|e| AudioError::Unsupported {
                path: self.src.path().to_path_buf(),
                reason: format!("resampling: {e}"),
            })?
            .take_data();
        // Output frame `out_start` is input frame `in_start`, `(in_start - first) * p / q`
        // frames into the resampled span.
        let skip = ((in_start - first) * self.p / self.q) as usize * ch;
        let mut block = vec![0.0f32; self.block as usize * ch];
        let have = resampled.len().saturating_sub(skip).min(block.len());
        block[..have].copy_from_slice(&resampled[skip..skip + have]);
        Ok(block)
    }
}
