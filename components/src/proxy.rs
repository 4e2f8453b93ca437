//! Proxies: reduced-resolution copies of original media that play where originals cannot.
//!
//! [`ProxyStrategy`] says which proxies to make and when to use them; a [`Proxy`] entity
//! tracks one proxy file of one asset through `queued → generating → ready` (or `failed`,
//! `cancelled`). When it is ready its file is a [`MediaAsset`](crate::MediaAsset) entity of its
//! own, listed in the original asset's [`ProxyAssets`], and `lod_select` may point a clip's
//! [`Lod`](crate::Lod) at it.

use std::path::PathBuf;

use bevy_ecs::prelude::{Component, Entity};
use serde::{Deserialize, Serialize};

/// How a proxy is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ProxyCodec {
    /// H.264, long GOP (a keyframe every 2 seconds): small files for playback.
    #[default]
    H264,
    /// H.264, every frame a keyframe, at a higher bitrate: every frame decodes on its own, so
    /// scrubbing is instant. Plays the role ProRes Proxy plays in other editors.
    H264Intra,
    /// Apple ProRes 422 (libav's `prores_ks`, so only in builds with the `ffmpeg` feature) in a
    /// QuickTime `.mov`: every frame a keyframe, 4:2:2 10-bit. What editors exchange proxies
    /// in; the profile sets the bitrate.
    #[serde(rename = "prores")]
    ProRes {
        /// Which ProRes 422 flavour.
        profile: ProResProfile,
    },
}

/// The ProRes 422 flavours a proxy can be (Apple's target rates at 1080p30 in brackets).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ProResProfile {
    /// ProRes 422 Proxy (`apco`, ~45 Mb/s): the proxy flavour.
    #[default]
    Proxy,
    /// ProRes 422 LT (`apcs`, ~102 Mb/s).
    Lt,
    /// ProRes 422 (`apcn`, ~147 Mb/s).
    Standard,
}

impl ProResProfile {
    /// The QuickTime sample entry code.
    pub fn fourcc(self) -> [u8; 4] {
        match self {
            Self::Proxy => *b"apco",
            Self::Lt => *b"apcs",
            Self::Standard => *b"apcn",
        }
    }

    /// libav `prores_ks`'s `profile` option value.
    pub fn libav_name(self) -> &'static str {
        match self {
            Self::Proxy => "proxy",
            Self::Lt => "lt",
            Self::Standard => "standard",
        }
    }
}

impl ProxyCodec {
    /// The encoder's constant quantiser for `quality` (0 = smallest, 100 = best): monotonic,
    /// lower QP as quality rises. ProRes has none (0): its profile sets the rate.
    ///
    /// | quality | `H264` QP | `H264Intra` QP |
    /// |---------|-----------|----------------|
    /// | 0       | 40        | 34             |
    /// | 50      | 29        | 23             |
    /// | 100     | 18        | 12             |
    ///
    /// The all-intra proxy sits 6 QP (half the step size) lower: it is the high-bitrate edit
    /// proxy, and intra-only frames need the bits to look like their long-GOP counterpart.
    pub fn qp(self, quality: u8) -> u8 {
        let q = f64::from(quality.min(100));
        let base = match self {
            Self::H264 => 40.0,
            Self::H264Intra => 34.0,
            Self::ProRes { .. } => return 0,
        };
        (base - q * 0.22).round() as u8
    }

    /// Frames from one keyframe to the next at `fps`.
    pub fn gop(self, fps: f64) -> u32 {
        match self {
            Self::H264 => (fps * 2.0).round().max(1.0) as u32,
            Self::H264Intra | Self::ProRes { .. } => 1,
        }
    }

    /// The name used in manifests and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::H264 => "h264",
            Self::H264Intra => "h264-intra",
            Self::ProRes {
                profile: ProResProfile::Proxy,
            } => "prores",
            Self::ProRes {
                profile: ProResProfile::Lt,
            } => "prores-lt",
            Self::ProRes {
                profile: ProResProfile::Standard,
            } => "prores-standard",
        }
    }

    /// The codec [`ProxyCodec::name`] names.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::H264,
            Self::H264Intra,
            Self::ProRes {
                profile: ProResProfile::Proxy,
            },
            Self::ProRes {
                profile: ProResProfile::Lt,
            },
            Self::ProRes {
                profile: ProResProfile::Standard,
            },
        ]
        .into_iter()
        .find(|c| c.name() == name)
    }

    /// The proxy file's extension: `mov` for ProRes (QuickTime's codec), `mp4` otherwise.
    pub fn extension(self) -> &'static str {
        match self {
            Self::ProRes { .. } => "mov",
            _ => "mp4",
        }
    }
}

/// Which jobs run first.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum ProxyPriority {
    /// Runs after everything else.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Runs before normal and low jobs.
    High,
}

/// Picture heights above which a mode uses a proxy (`auto`), per editing mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoSwitchThresholds {
    /// Playing: sources taller than this play from a proxy.
    pub playback: u32,
    /// Paused or scrubbing.
    pub editing: u32,
    /// Clips with effects.
    pub effects: u32,
}

impl Default for AutoSwitchThresholds {
    fn default() -> Self {
        Self {
            playback: 1080,
            editing: 1080,
            effects: 720,
        }
    }
}

impl AutoSwitchThresholds {
    /// The threshold of `mode`.
    pub fn for_mode(&self, mode: EditMode) -> u32 {
        match mode {
            EditMode::Playback => self.playback,
            EditMode::Editing => self.editing,
            EditMode::Effects => self.effects,
        }
    }

    /// Every threshold at most `height`.
    pub fn capped(self, height: u32) -> Self {
        Self {
            playback: self.playback.min(height),
            editing: self.editing.min(height),
            effects: self.effects.min(height),
        }
    }

    /// The smallest of the three: sources taller than it get proxies at import.
    pub fn lowest(&self) -> u32 {
        self.playback.min(self.editing).min(self.effects)
    }
}

/// Which proxies to make.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyGeneration {
    /// Picture heights (aspect kept, dimensions rounded to even); only those below the
    /// source's height are made.
    pub resolutions: Vec<u32>,
    /// Codec.
    pub codec: ProxyCodec,
    /// 0..=100 (see [`ProxyCodec::qp`]).
    pub quality: u8,
    /// Queue priority.
    pub priority: ProxyPriority,
    /// Decode faster where it hardly shows: a proxy at most a third of its source's height
    /// (4K → 720p) is made from pictures decoded without H.264's in-loop deblocking filter
    /// (libav builds; openh264 has no such switch). It saves 5–25 % of the decode (x264 High
    /// camera-like footage – framelock's own test card, one thread) and costs 0.2 dB of luma
    /// PSNR on camera-quality sources (1.4 dB on heavily compressed ones). On by default.
    #[serde(default = "fast_decode_default")]
    pub fast_decode: bool,
}

fn fast_decode_default() -> bool {
    true
}

impl Default for ProxyGeneration {
    fn default() -> Self {
        Self {
            resolutions: vec![720, 1080],
            codec: ProxyCodec::H264,
            quality: 50,
            priority: ProxyPriority::Normal,
            fast_decode: true,
        }
    }
}

/// The proxy policy of a project.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ProxyStrategy {
    /// When `auto` switches to a proxy.
    pub auto_switch_thresholds: AutoSwitchThresholds,
    /// What to generate.
    pub generation: ProxyGeneration,
}

impl ProxyGeneration {
    /// The configured heights that make a proxy of a source `source_height` tall (below it),
    /// in configuration order.
    pub fn heights_below(&self, source_height: u32) -> impl Iterator<Item = u32> + '_ {
        self.resolutions
            .iter()
            .copied()
            .filter(move |&h| h >= 2 && h < source_height)
    }
}

impl ProxyStrategy {
    /// The proxy heights to generate for a source `source_height` tall: the configured ones
    /// below it (none when the source is not above the lowest switch threshold), shortest
    /// first.
    pub fn heights_for(&self, source_height: u32) -> Vec<u32> {
        if source_height <= self.auto_switch_thresholds.lowest() {
            return Vec::new();
        }
        let mut v: Vec<u32> = self.generation.heights_below(source_height).collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// Whether clips play from proxies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UseProxy {
    /// Always a ready proxy when there is one (the one best fitting the mode's threshold).
    Always,
    /// Per clip and mode: the strategy's thresholds and the measured decode load decide.
    #[default]
    Auto,
    /// Originals only.
    Never,
}

/// What the editor is doing with a clip, for the switch thresholds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EditMode {
    /// Playing.
    Playback,
    /// Paused or scrubbing.
    Editing,
    /// The clip has effects.
    Effects,
}

/// Marks a clip whose effect stack is not empty (it uses the `effects` switch threshold).
#[derive(Component, Clone, Copy, Debug, Default)]
pub struct HasEffects;

/// The hash of a clip's effect stack (its effects and their parameters, in order). It goes
/// into the cache key of every rendered frame the clip is part of, so editing an effect makes
/// exactly that clip's rendered frames miss. The effects system keeps it in step with the
/// stack; a clip without it has no effects.
#[derive(Component, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EffectsKey(pub u64);

/// Where a proxy is in its life.
#[derive(Clone, Debug, PartialEq)]
pub enum ProxyState {
    /// Waiting for a worker.
    Queued,
    /// Being made.
    Generating {
        /// Frames encoded.
        done: u64,
        /// Frames in the source.
        total: u64,
        /// Frames per second so far.
        fps: f64,
    },
    /// On disk, verified, usable.
    Ready,
    /// Generation failed; nothing was left at the proxy's path.
    Failed(String),
    /// Cancelled; nothing was left at the proxy's path.
    Cancelled,
}

/// One proxy of one asset.
#[derive(Component, Clone, Debug)]
pub struct Proxy {
    /// The original's asset entity.
    pub source: Entity,
    /// The proxy's own asset entity, once ready.
    pub asset: Option<Entity>,
    /// The job making it (the proxy manager's id).
    pub job: u64,
    /// Picture height.
    pub height: u32,
    /// Codec.
    pub codec: ProxyCodec,
    /// The proxy file.
    pub path: PathBuf,
    /// State.
    pub state: ProxyState,
}

/// On an original [`MediaAsset`](crate::MediaAsset): its ready proxies, as
/// (height, codec, proxy asset entity), shortest first.
#[derive(Component, Clone, Debug, Default)]
pub struct ProxyAssets(pub Vec<(u32, ProxyCodec, Entity)>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_maps_to_qp_monotonically() {
        for codec in [ProxyCodec::H264, ProxyCodec::H264Intra] {
            let qps: Vec<u8> = (0..=100).map(|q| codec.qp(q)).collect();
            assert!(qps.windows(2).all(|w| w[1] <= w[0]), "{codec:?}");
            assert!(qps.iter().all(|&q| q <= 51));
        }
        assert_eq!(ProxyCodec::H264.qp(50), 29);
        assert_eq!(ProxyCodec::H264Intra.qp(100), 12);
        assert_eq!(ProxyCodec::H264Intra.gop(30.0), 1);
        assert_eq!(ProxyCodec::H264.gop(29.97), 60);
    }

    #[test]
    fn heights_below_the_source_only() {
        let s = ProxyStrategy::default();
        assert_eq!(s.heights_for(2160), vec![720, 1080]);
        assert_eq!(s.heights_for(1440), vec![720, 1080]);
        assert_eq!(s.heights_for(1080), vec![720]);
        assert!(
            s.heights_for(720).is_empty(),
            "not above the lowest threshold"
        );
        assert!(s.heights_for(480).is_empty());
    }
}
