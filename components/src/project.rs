//! The project a host hands the engine: tracks of clips on a timeline, saved as JSON.
//!
//! Positions are whole frames of the project's rate (rational: frame `n` is at exactly
//! `n / frame_rate` seconds, so an hour of 29.97 never drifts). Track 0 is the bottom of the
//! stack; a higher track covers the ones below it where it has a clip (at its opacity).
//! Loading a project touches no media: checking files is the engine's job when it opens it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{AudioClipDef, AudioFormat, AudioTrackDef, ClipAudio, EffectStack, Rational};

/// The version this build writes. Version 2 added audio (audio tracks, the output audio
/// format, each video clip's own audio); version 1 files are read as version 2 with no
/// audio tracks, and their video clips play their media's audio.
pub const PROJECT_VERSION: u32 = 2;

/// The oldest version this build reads.
pub const OLDEST_PROJECT_VERSION: u32 = 1;

/// The largest output width or height a project may ask for (one RGBA8 frame of it is
/// 1 GiB; GPUs' texture limit is usually this).
pub const MAX_OUTPUT_SIDE: u32 = 16_384;

/// The largest frame position a project may name: clip starts, ends and source frames stay
/// below it (over four years at 30 fps), so frame arithmetic never overflows.
pub const MAX_FRAME: u64 = 1 << 32;

/// The highest output frame rate a project may ask for.
pub const MAX_FRAME_RATE: f64 = 1000.0;

/// A timeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Project {
    /// Format version ([`OLDEST_PROJECT_VERSION`]..=[`PROJECT_VERSION`] are read; loading
    /// upgrades to [`PROJECT_VERSION`]).
    pub version: u32,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Output frame rate.
    pub frame_rate: Rational,
    /// Output width.
    pub width: u32,
    /// Output height.
    pub height: u32,
    /// Tracks, bottom first.
    pub tracks: Vec<TrackDef>,
    /// Audio tracks, mixed with the video clips' own audio.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audio_tracks: Vec<AudioTrackDef>,
    /// The mixer's output format.
    #[serde(default)]
    pub audio: AudioFormat,
    /// The playback quality settings saved with the project (the controller's limits, drop
    /// policy, proxies, GPU); `None`: the host's own. An engine opening the project uses them
    /// in place of `EngineOptions::quality`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<crate::QualitySettings>,
}

/// One video track.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrackDef {
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// 0.0 (invisible) to 1.0 (opaque).
    #[serde(default = "one")]
    pub opacity: f32,
    /// Clips, in any order; they must not overlap.
    pub clips: Vec<ClipDef>,
}

fn one() -> f32 {
    1.0
}

fn yes() -> bool {
    true
}

/// A piece of a media file placed on a track.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClipDef {
    /// The media file.
    pub media: PathBuf,
    /// First timeline frame the clip covers.
    pub start: u64,
    /// Timeline frames the clip covers.
    pub duration: u64,
    /// The source frame shown at `start`.
    #[serde(default)]
    pub source_in: u64,
    /// Disabled clips are not shown.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Effects, blend mode and transition (empty: shown as decoded).
    #[serde(default, skip_serializing_if = "EffectStack::is_empty")]
    pub effects: EffectStack,
    /// The clip's own audio (its media's audio track, if it has one).
    #[serde(default, skip_serializing_if = "ClipAudio::is_default")]
    pub audio: ClipAudio,
}

impl ClipDef {
    /// One past the last timeline frame.
    pub fn end(&self) -> u64 {
        self.start + self.duration
    }

    /// Whether timeline frame `t` is inside the clip.
    pub fn covers(&self, t: u64) -> bool {
        self.start <= t && t < self.end()
    }

    /// The source frame shown at timeline frame `t` (inside the clip), for a source of
    /// `source_rate` in a project of `project_rate`: exact integer arithmetic.
    pub fn source_frame(&self, t: u64, project_rate: Rational, source_rate: Rational) -> u64 {
        let offset = u128::from(t.saturating_sub(self.start));
        let num = offset * u128::from(project_rate.den) * u128::from(source_rate.num);
        let den = u128::from(project_rate.num) * u128::from(source_rate.den);
        self.source_in + (num / den.max(1)) as u64
    }
}

/// Why a project cannot be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectError {
    /// Not JSON, or not a project.
    #[error("project JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Written by another version.
    #[error("project version {found} is not supported (this build reads {supported})")]
    UnsupportedVersion {
        /// Version in the file.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// Two clips of one track cover the same frame.
    #[error("track {track}: clips {first} and {second} overlap at frame {frame}")]
    OverlappingClips {
        /// Track index.
        track: usize,
        /// Index of one clip in the track.
        first: usize,
        /// Index of the other.
        second: usize,
        /// First frame both cover.
        frame: u64,
    },
    /// A size, rate, duration or opacity that cannot be played.
    #[error("invalid project: {0}")]
    Invalid(String),
}

impl Project {
    /// An empty project.
    pub fn new(frame_rate: Rational, width: u32, height: u32) -> Self {
        Self {
            version: PROJECT_VERSION,
            name: String::new(),
            frame_rate,
            width,
            height,
            tracks: Vec::new(),
            audio_tracks: Vec::new(),
            audio: AudioFormat::default(),
            quality: None,
        }
    }

    /// Parses and validates a project.
    pub fn from_json(json: &str) -> Result<Self, ProjectError> {
        #[derive(Deserialize)]
        struct Version {
            version: u32,
        }
        let v: Version = serde_json::from_str(json)?;
        if !(OLDEST_PROJECT_VERSION..=PROJECT_VERSION).contains(&v.version) {
            return Err(ProjectError::UnsupportedVersion {
                found: v.version,
                supported: PROJECT_VERSION,
            });
        }
        // Version 1 is version 2 without audio: the new fields default.
        let mut p: Self = serde_json::from_str(json)?;
        p.version = PROJECT_VERSION;
        p.validate()?;
        Ok(p)
    }

    /// Serializes the project.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Checks the rules [`Project::from_json`] enforces.
    pub fn validate(&self) -> Result<(), ProjectError> {
        let rate = self.frame_rate;
        if rate.num == 0 || rate.den == 0 || rate.as_f64() > MAX_FRAME_RATE {
            return Err(ProjectError::Invalid(format!(
                "frame_rate {}/{}: a rate above 0 and at most {MAX_FRAME_RATE} fps",
                rate.num, rate.den
            )));
        }
        if self.width == 0 || self.height == 0 || self.width % 2 == 1 || self.height % 2 == 1 {
            return Err(ProjectError::Invalid(format!(
                "output size {}x{} must be non-zero and even",
                self.width, self.height
            )));
        }
        if self.width > MAX_OUTPUT_SIDE || self.height > MAX_OUTPUT_SIDE {
            return Err(ProjectError::Invalid(format!(
                "output size {}x{}: at most {MAX_OUTPUT_SIDE} on a side",
                self.width, self.height
            )));
        }
        // Positions first: the checks below add them.
        let positions = self
            .tracks
            .iter()
            .enumerate()
            .flat_map(|(ti, t)| {
                t.clips.iter().enumerate().map(move |(ci, c)| {
                    (
                        format!("track {ti} clip {ci}"),
                        c.start,
                        c.duration,
                        c.source_in,
                    )
                })
            })
            .chain(self.audio_tracks.iter().enumerate().flat_map(|(ti, t)| {
                t.clips.iter().enumerate().map(move |(ci, c)| {
                    (
                        format!("audio track {ti} clip {ci}"),
                        c.start,
                        c.duration,
                        c.source_in,
                    )
                })
            }));
        for (what, start, duration, source_in) in positions {
            let end = start.checked_add(duration);
            let source_end = source_in.checked_add(duration);
            if end.is_none_or(|e| e > MAX_FRAME) || source_end.is_none_or(|e| e > MAX_FRAME) {
                return Err(ProjectError::Invalid(format!(
                    "{what}: start {start}, duration {duration}, source_in {source_in} reach past frame {MAX_FRAME}"
                )));
            }
        }
        if !(8_000..=384_000).contains(&self.audio.sample_rate)
            || !(1..=2).contains(&self.audio.channels)
        {
            return Err(ProjectError::Invalid(format!(
                "audio output {} Hz, {} channels: rates 8000..=384000 Hz, mono or stereo",
                self.audio.sample_rate, self.audio.channels
            )));
        }
        for (ti, track) in self.audio_tracks.iter().enumerate() {
            let mut order: Vec<usize> = (0..track.clips.len()).collect();
            order.sort_by_key(|&i| track.clips[i].start);
            for (i, clip) in track.clips.iter().enumerate() {
                if clip.duration == 0 || clip.fade_in.saturating_add(clip.fade_out) > clip.duration
                {
                    return Err(ProjectError::Invalid(format!(
                        "audio track {ti}: clip {i} has zero duration or fades longer than it"
                    )));
                }
                if !clip.gain_db.is_finite() {
                    return Err(ProjectError::Invalid(format!(
                        "audio track {ti}: clip {i} has gain {} dB",
                        clip.gain_db
                    )));
                }
            }
            for w in order.windows(2) {
                let (a, b) = (&track.clips[w[0]], &track.clips[w[1]]);
                if b.start < a.end() {
                    return Err(ProjectError::Invalid(format!(
                        "audio track {ti}: clips {} and {} overlap at frame {}",
                        w[0], w[1], b.start
                    )));
                }
            }
        }
        for (ti, track) in self.tracks.iter().enumerate() {
            if !(0.0..=1.0).contains(&track.opacity) {
                return Err(ProjectError::Invalid(format!(
                    "track {ti}: opacity {} is outside 0..=1",
                    track.opacity
                )));
            }
            let mut order: Vec<usize> = (0..track.clips.len()).collect();
            order.sort_by_key(|&i| track.clips[i].start);
            for (i, clip) in track.clips.iter().enumerate() {
                if clip.duration == 0 {
                    return Err(ProjectError::Invalid(format!(
                        "track {ti}: clip {i} has zero duration"
                    )));
                }
            }
            for w in order.windows(2) {
                let (a, b) = (&track.clips[w[0]], &track.clips[w[1]]);
                if b.start < a.end() {
                    return Err(ProjectError::OverlappingClips {
                        track: ti,
                        first: w[0],
                        second: w[1],
                        frame: b.start,
                    });
                }
            }
        }
        Ok(())
    }

    /// The quality settings to play and render it with: its own saved ones, else `host`'s.
    pub fn quality_or(&self, host: crate::QualitySettings) -> crate::QualitySettings {
        self.quality.unwrap_or(host)
    }

    /// Timeline length in frames (the end of the last clip, video or audio).
    pub fn duration_frames(&self) -> u64 {
        let video = self.tracks.iter().flat_map(|t| &t.clips).map(ClipDef::end);
        let audio = self
            .audio_tracks
            .iter()
            .flat_map(|t| &t.clips)
            .map(AudioClipDef::end);
        video.chain(audio).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clip(start: u64, duration: u64) -> ClipDef {
        ClipDef {
            media: "a.mp4".into(),
            start,
            duration,
            source_in: 0,
            enabled: true,
            effects: EffectStack::default(),
            audio: ClipAudio::default(),
        }
    }

    #[test]
    fn version_1_reads_as_version_2_without_audio() {
        let v1 = r#"{"version": 1, "frame_rate": {"num": 30, "den": 1}, "width": 64,
            "height": 36, "tracks": [{"clips": [{"media": "a.mp4", "start": 0, "duration": 5}]}]}"#;
        let p = Project::from_json(v1).expect("version 1 reads");
        assert_eq!(p.version, PROJECT_VERSION);
        assert!(p.audio_tracks.is_empty());
        assert_eq!(p.audio, AudioFormat::default());
        assert_eq!(p.tracks[0].clips[0].audio, ClipAudio::default());
        // Written back as the current version, read back the same.
        assert_eq!(Project::from_json(&p.to_json()).expect("v2"), p);
    }

    #[test]
    fn audio_tracks_round_trip_and_are_checked() {
        let mut p = Project::new(Rational::integer(30), 64, 36);
        let a = AudioClipDef {
            media: "music.wav".into(),
            start: 10,
            duration: 90,
            source_in: 30,
            gain_db: -6.0,
            fade_in: 15,
            fade_out: 30,
        };
        p.audio_tracks.push(AudioTrackDef {
            name: "music".into(),
            gain_db: 0.0,
            mute: false,
            solo: true,
            clips: vec![a.clone()],
        });
        assert_eq!(Project::from_json(&p.to_json()).expect("round trip"), p);
        assert_eq!(p.duration_frames(), 100);
        p.audio_tracks[0].clips.push(AudioClipDef {
            start: 50,
            ..a.clone()
        });
        assert!(matches!(p.validate(), Err(ProjectError::Invalid(m)) if m.contains("overlap")));
        p.audio_tracks[0].clips.pop();
        p.audio_tracks[0].clips[0].fade_out = 80;
        assert!(p.validate().is_err(), "fades longer than the clip");
        p.audio_tracks[0].clips[0].fade_out = 0;
        p.audio.channels = 6;
        assert!(p.validate().is_err(), "5.1 output is not offered");
    }

    #[test]
    fn roundtrip_and_rules() {
        let mut p = Project::new(Rational::integer(30), 1920, 1080);
        p.tracks.push(TrackDef {
            name: "v1".into(),
            opacity: 1.0,
            clips: vec![clip(0, 10), clip(10, 5)],
        });
        let back = Project::from_json(&p.to_json()).expect("roundtrip");
        assert_eq!(back, p);
        assert_eq!(p.duration_frames(), 15);

        p.tracks[0].clips.push(clip(12, 4));
        assert!(matches!(
            Project::from_json(&p.to_json()),
            Err(ProjectError::OverlappingClips { frame: 12, .. })
        ));
        let json = p.to_json().replace("\"version\": 2", "\"version\": 99");
        assert!(matches!(
            Project::from_json(&json),
            Err(ProjectError::UnsupportedVersion { found: 99, .. })
        ));
        assert!(matches!(
            Project::from_json("{"),
            Err(ProjectError::Json(_))
        ));
    }

    #[test]
    fn impossible_numbers_are_refused_naming_the_field() {
        let ok = || {
            let mut p = Project::new(Rational::integer(30), 64, 36);
            p.tracks.push(TrackDef {
                name: String::new(),
                opacity: 1.0,
                clips: vec![clip(0, 10)],
            });
            p
        };
        assert!(ok().validate().is_ok());
        type Breaks = Box<dyn Fn(&mut Project)>;
        let refused: [(&str, Breaks); 6] = [
            ("frame_rate 30/0", Box::new(|p| p.frame_rate.den = 0)),
            (
                "frame_rate 1000000/1",
                Box::new(|p| p.frame_rate.num = 1_000_000),
            ),
            (
                "100000x100000",
                Box::new(|p| (p.width, p.height) = (100_000, 100_000)),
            ),
            (
                "track 0 clip 0",
                Box::new(|p| p.tracks[0].clips[0].start = u64::MAX - 3),
            ),
            (
                "track 0 clip 0",
                Box::new(|p| p.tracks[0].clips[0].source_in = u64::MAX),
            ),
            (
                "audio track 0 clip 0",
                Box::new(|p| {
                    p.audio_tracks
                        .push(AudioTrackDef::new(vec![AudioClipDef::new(
                            "a.wav",
                            u64::MAX,
                            5,
                        )]))
                }),
            ),
        ];
        for (field, break_it) in refused {
            let mut p = ok();
            break_it(&mut p);
            let err = p.validate().expect_err(field).to_string();
            assert!(err.contains(field), "{field}: {err}");
            // The same through JSON, as a broken project file arrives.
            assert!(Project::from_json(&p.to_json()).is_err(), "{field}");
        }
    }

    #[test]
    fn source_frames_across_rates() {
        let c = ClipDef {
            source_in: 100,
            ..clip(50, 100)
        };
        let r30 = Rational::integer(30);
        assert_eq!(c.source_frame(50, r30, r30), 100);
        assert_eq!(c.source_frame(60, r30, r30), 110);
        // a 60 fps source in a 30 fps project advances two source frames per output frame
        assert_eq!(c.source_frame(60, r30, Rational::integer(60)), 120);
    }
}
