//! Audio in the project: audio tracks of clips ([`AudioTrackDef`], [`AudioClipDef`]), the
//! audio a video clip carries ([`ClipAudio`]), and the output format ([`AudioFormat`]).
//!
//! Positions are timeline frames, like video, and placement is sample-exact: a clip's first
//! sample is at exactly `start / frame_rate` seconds, i.e. output sample
//! `start * sample_rate / frame_rate` (rounded down, exact rational arithmetic).

use std::path::PathBuf;

use bevy_ecs::prelude::Resource;
use serde::{Deserialize, Serialize};

use crate::Rational;

/// The mixer's output: sample rate and channels (interleaved f32).
#[derive(Resource, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioFormat {
    /// Samples per second per channel.
    pub sample_rate: u32,
    /// Channels (1 mono, 2 stereo).
    pub channels: u16,
}

impl Default for AudioFormat {
    /// 48 kHz stereo.
    fn default() -> Self {
        Self {
            sample_rate: 48_000,
            channels: 2,
        }
    }
}

impl AudioFormat {
    /// The output sample (per channel) at timeline frame `frame` of a timeline at `rate`:
    /// `frame * sample_rate / rate`, rounded down.
    pub fn sample_at_frame(&self, frame: u64, rate: Rational) -> u64 {
        let num = u128::from(frame) * u128::from(rate.den) * u128::from(self.sample_rate);
        (num / u128::from(rate.num).max(1)) as u64
    }

    /// The first timeline frame whose start is at or after output sample `sample`.
    pub fn frame_at_sample(&self, sample: u64, rate: Rational) -> u64 {
        let num = u128::from(sample) * u128::from(rate.num);
        let den = u128::from(rate.den) * u128::from(self.sample_rate);
        num.div_ceil(den.max(1)) as u64
    }
}

/// Decibels to a linear gain (`0 dB` = 1).
pub fn db_to_gain(db: f32) -> f32 {
    10f32.powf(db / 20.0)
}

/// The audio of a video clip: played with the clip (when its media has audio) unless muted.
#[derive(Clone, Copy, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct ClipAudio {
    /// Silences the clip's own audio.
    #[serde(default)]
    pub muted: bool,
    /// Gain in dB (0 = as recorded).
    #[serde(default)]
    pub gain_db: f32,
}

impl ClipAudio {
    /// Whether it is the default (not written to project files).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// One audio track.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AudioTrackDef {
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Track gain in dB, applied after each clip's own.
    #[serde(default)]
    pub gain_db: f32,
    /// Silences the track.
    #[serde(default)]
    pub mute: bool,
    /// When any track is soloed, only soloed tracks play (video clips' own audio included:
    /// it belongs to no audio track and so is silent while a track is soloed).
    #[serde(default)]
    pub solo: bool,
    /// Clips, in any order; they must not overlap.
    pub clips: Vec<AudioClipDef>,
}

/// A piece of a media file's audio placed on an audio track.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AudioClipDef {
    /// The media file (any container with audio: MP4/MOV, WAV, OGG, MP3, FLAC).
    pub media: PathBuf,
    /// First timeline frame the clip covers.
    pub start: u64,
    /// Timeline frames the clip covers.
    pub duration: u64,
    /// Where in the source the clip starts, in timeline frames (`source_in / frame_rate`
    /// seconds into the media).
    #[serde(default)]
    pub source_in: u64,
    /// Gain in dB.
    #[serde(default)]
    pub gain_db: f32,
    /// Linear fade in over the clip's first frames (0 = none).
    #[serde(default)]
    pub fade_in: u64,
    /// Linear fade out over the clip's last frames (0 = none).
    #[serde(default)]
    pub fade_out: u64,
}

impl AudioTrackDef {
    /// An unnamed track at 0 dB, neither muted nor soloed, with `clips`.
    pub fn new(clips: Vec<AudioClipDef>) -> Self {
        Self {
            name: String::new(),
            gain_db: 0.0,
            mute: false,
            solo: false,
            clips,
        }
    }
}

impl AudioClipDef {
    /// `media` from its start at timeline frames `start..start + duration`, at 0 dB, no
    /// fades.
    pub fn new(media: impl Into<PathBuf>, start: u64, duration: u64) -> Self {
        Self {
            media: media.into(),
            start,
            duration,
            source_in: 0,
            gain_db: 0.0,
            fade_in: 0,
            fade_out: 0,
        }
    }

    /// One past the last timeline frame.
    pub fn end(&self) -> u64 {
        self.start + self.duration
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_is_exact_at_ntsc_rates() {
        let f = AudioFormat::default();
        let ntsc = Rational {
            num: 30000,
            den: 1001,
        };
        // 30000 frames of 29.97 are exactly 1001 s: 48,048,000 samples, no drift.
        assert_eq!(f.sample_at_frame(30000, ntsc), 48_048_000);
        assert_eq!(f.sample_at_frame(1, ntsc), 1601); // 1601.6 rounded down
        assert_eq!(f.frame_at_sample(48_048_000, ntsc), 30000);
        assert_eq!(f.frame_at_sample(1602, ntsc), 2);
        assert!((db_to_gain(-6.0) - 0.501_187).abs() < 1e-5);
        assert_eq!(db_to_gain(0.0), 1.0);
    }
}
