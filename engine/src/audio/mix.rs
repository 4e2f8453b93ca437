//! The mixer: a project's audio — audio-track clips and the video clips' own audio — placed
//! sample-exactly on the timeline, with clip and track gains, fades, mute and solo, summed
//! into the output format. [`Mixer::render`] fills any range, so it runs in real time (on a
//! worker, ahead of the sink) and offline (every sample, for export) alike.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use framelock_components::{AudioFormat, Project, Rational, VideoStreamInfo, db_to_gain};

use super::AudioError;
use super::resampled::ResampledSource;
use super::source::AudioSource;
use crate::media::{DecoderRegistry, probe};
use crate::memory::{Accounted, BufferPool, PoolClass};

/// One clip as the mixer plays it, in output samples (frames of the output format).
#[derive(Clone, Debug, PartialEq)]
pub struct MixClip {
    /// Which source ([`Mixer::sources`]).
    pub source: usize,
    /// First output frame of the timeline it covers.
    pub start: u64,
    /// Output frames it covers.
    pub len: u64,
    /// Output frames into the source (at the output rate) its first frame reads.
    pub offset: u64,
    /// Linear gain: the clip's and its track's.
    pub gain: f32,
    /// Output frames of fade in / fade out (linear).
    pub fade_in: u64,
    /// See `fade_in`.
    pub fade_out: u64,
}

impl MixClip {
    /// The gain at frame `i` of the clip: `gain`, times `(i + 1) / fade_in` over the fade in
    /// and `(len - i) / fade_out` over the fade out.
    pub fn gain_at(&self, i: u64) -> f32 {
        let mut g = self.gain;
        if i < self.fade_in {
            g *= (i + 1) as f32 / self.fade_in as f32;
        }
        if self.fade_out > 0 && i + self.fade_out >= self.len {
            g *= (self.len - i) as f32 / self.fade_out as f32;
        }
        g
    }
}

/// The timeline's audio, ready to render.
#[derive(Debug)]
pub struct Mixer {
    format: AudioFormat,
    sources: Vec<ResampledSource>,
    clips: Vec<MixClip>,
    /// Video clips whose media has no audio track (not an error) and why others were left
    /// out.
    skipped: Vec<(PathBuf, String)>,
    /// The decoded blocks' bytes, counted in the engine's pool (audio class) when given one.
    counted: Option<Accounted>,
    /// Sources of the layout before, by path, while [`Mixer::relayout`] builds the new one
    /// (each is taken over, with what it has decoded, when the new layout plays its file).
    spare: HashMap<PathBuf, ResampledSource>,
    /// The project it was laid out for.
    layout: Project,
}

fn frames_at(frames: u64, rate: Rational, sample_rate: u32) -> u64 {
    AudioFormat {
        sample_rate,
        channels: 1,
    }
    .sample_at_frame(frames, rate)
}

impl Mixer {
    /// The mixer for `project`: every audio-track clip (a file that cannot be read is an
    /// error: it was put there for its sound) and every video clip's own audio (media without
    /// audio are skipped, and listed in [`Mixer::skipped`]).
    pub fn new(project: &Project) -> Result<Self, AudioError> {
        Self::build(project, HashMap::new()).map_err(|(e, _)| e)
    }

    /// Lays the mixer out again for `project` after a timeline edit: the sources of files it
    /// still plays are kept (with what they have decoded), new files are opened, the others
    /// closed. On an error (an audio-track file that cannot be read) the layout before stays
    /// and the error is returned. The output format stays.
    pub fn relayout(&mut self, project: &Project) -> Result<(), AudioError> {
        let mut project = project.clone();
        project.audio = self.format;
        let spare = self
            .sources
            .drain(..)
            .map(|s| (s.source().path().to_path_buf(), s))
            .collect();
        let counted = self.counted.take();
        let (result, fresh) = match Self::build(&project, spare) {
            Ok(fresh) => (Ok(()), fresh),
            // Every source is in `spare` again: the layout before needs no file opened.
            Err((e, spare)) => (
                Err(e),
                Self::build(&self.layout, spare).unwrap_or_else(|(_, _)| Self::empty(self.format)),
            ),
        };
        *self = fresh;
        self.spare.clear();
        self.counted = counted;
        result
    }

    fn empty(format: AudioFormat) -> Self {
        let mut layout = Project::new(Rational::integer(1), 2, 2);
        layout.audio = format;
        Self {
            format,
            sources: Vec::new(),
            clips: Vec::new(),
            skipped: Vec::new(),
            counted: None,
            spare: HashMap::new(),
            layout,
        }
    }

    /// The mixer for `project`, taking the sources of `spare` that it plays; on an error,
    /// every source (taken or spare) comes back with it.
    fn build(
        project: &Project,
        spare: HashMap<PathBuf, ResampledSource>,
    ) -> Result<Self, (AudioError, HashMap<PathBuf, ResampledSource>)> {
        let mut mixer = Self::empty(project.audio);
        mixer.spare = spare;
        mixer.layout = project.clone();
        match mixer.lay_out(project) {
            Ok(()) => Ok(mixer),
            Err(e) => {
                let mut spare = std::mem::take(&mut mixer.spare);
                for s in mixer.sources.drain(..) {
                    spare.insert(s.source().path().to_path_buf(), s);
                }
                Err((e, spare))
            }
        }
    }

    fn lay_out(&mut self, project: &Project) -> Result<(), AudioError> {
        let format = self.format;
        let rate = project.frame_rate;
        let sr = format.sample_rate;
        let mut by_path: HashMap<PathBuf, Option<usize>> = HashMap::new();
        let soloed = project.audio_tracks.iter().any(|t| t.solo);
        for track in &project.audio_tracks {
            if track.mute || (soloed && !track.solo) {
                continue;
            }
            for clip in &track.clips {
                let Some(source) = self.source(&mut by_path, &clip.media, true)? else {
                    continue;
                };
                let start = format.sample_at_frame(clip.start, rate);
                self.clips.push(MixClip {
                    source,
                    start,
                    len: format.sample_at_frame(clip.end(), rate) - start,
                    offset: frames_at(clip.source_in, rate, sr),
                    gain: db_to_gain(clip.gain_db) * db_to_gain(track.gain_db),
                    fade_in: frames_at(clip.fade_in, rate, sr),
                    fade_out: frames_at(clip.fade_out, rate, sr),
                });
            }
        }
        if !soloed {
            let registry = DecoderRegistry::openh264_only();
            let mut video_rates: HashMap<PathBuf, Option<VideoStreamInfo>> = HashMap::new();
            for clip in project.tracks.iter().flat_map(|t| &t.clips) {
                if clip.audio.muted || !clip.enabled {
                    continue;
                }
                let Some(source) = self.source(&mut by_path, &clip.media, false)? else {
                    continue;
                };
                // The clip's source_in is in the video's frames: at its rate, or at its
                // frame's own time when the rate varies.
                let video = video_rates
                    .entry(clip.media.clone())
                    .or_insert_with(|| probe(&clip.media, &registry).ok().map(|i| i.video));
                let offset = match video.as_ref() {
                    Some(v) => match &v.frame_times {
                        Some(times) => {
                            let ticks = times.time_of(clip.source_in) - times.time_of(0);
                            (u128::from(ticks.max(0) as u64) * u128::from(sr)
                                / u128::from(times.timescale)) as u64
                        }
                        None => frames_at(clip.source_in, v.frame_rate, sr),
                    },
                    None => 0,
                };
                let start = format.sample_at_frame(clip.start, rate);
                self.clips.push(MixClip {
                    source,
                    start,
                    len: format.sample_at_frame(clip.end(), rate) - start,
                    offset,
                    gain: db_to_gain(clip.audio.gain_db),
                    fade_in: 0,
                    fade_out: 0,
                });
            }
        }
        Ok(())
    }

    fn source(
        &mut self,
        by_path: &mut HashMap<PathBuf, Option<usize>>,
        path: &Path,
        required: bool,
    ) -> Result<Option<usize>, AudioError> {
        if let Some(s) = by_path.get(path) {
            return Ok(*s);
        }
        if let Some(kept) = self.spare.remove(path) {
            self.sources.push(kept);
            by_path.insert(path.to_path_buf(), Some(self.sources.len() - 1));
            return Ok(Some(self.sources.len() - 1));
        }
        let opened = match AudioSource::open(path) {
            Ok(src) => Some(src),
            Err(e) if !required => {
                self.skipped.push((path.to_path_buf(), e.to_string()));
                None
            }
            Err(e) => return Err(e),
        };
        let index = match opened {
            Some(src) => {
                let r = ResampledSource::new(
                    src,
                    self.format.sample_rate,
                    usize::from(self.format.channels),
                )?;
                self.sources.push(r);
                Some(self.sources.len() - 1)
            }
            None => None,
        };
        by_path.insert(path.to_path_buf(), index);
        Ok(index)
    }

    /// The output format.
    pub fn format(&self) -> AudioFormat {
        self.format
    }

    /// The clips, as placed.
    pub fn clips(&self) -> &[MixClip] {
        &self.clips
    }

    /// The sources, one per file.
    pub fn sources(&self) -> &[ResampledSource] {
        &self.sources
    }

    /// Media left out of the mix and why (video clips whose media has no audio).
    pub fn skipped(&self) -> &[(PathBuf, String)] {
        &self.skipped
    }

    /// Packets that failed to decode, over every source (their frames are silent).
    pub fn corrupt_packets(&self) -> u64 {
        self.sources
            .iter()
            .map(|s| s.source().corrupt_packets())
            .sum()
    }

    /// Counts the decoded audio the sources hold in `pool` (its audio class, in the memory
    /// budget), kept up to date by every [`Mixer::render`].
    pub fn count_in(&mut self, pool: &BufferPool) {
        let mut counted = pool.account(PoolClass::Audio);
        counted.set(self.bytes_held());
        self.counted = Some(counted);
    }

    /// Bytes of decoded audio the sources hold.
    pub fn bytes_held(&self) -> usize {
        self.sources.iter().map(ResampledSource::bytes_held).sum()
    }

    /// Fills `out` (interleaved, `channels` per frame) with the mix from output frame
    /// `start`: silence where no clip plays.
    pub fn render(&mut self, start: u64, out: &mut [f32]) -> Result<(), AudioError> {
        crate::profile_function!();
        out.fill(0.0);
        let ch = usize::from(self.format.channels);
        let frames = (out.len() / ch) as u64;
        let end = start + frames;
        for clip in &self.clips {
            let lo = clip.start.max(start);
            let hi = (clip.start + clip.len).min(end);
            if lo >= hi {
                continue;
            }
            let window = &mut out[((lo - start) as usize) * ch..((hi - start) as usize) * ch];
            let into = lo - clip.start;
            self.sources[clip.source]
                .mix_into(clip.offset + into, window, |i| clip.gain_at(into + i))?;
        }
        if let Some(c) = &mut self.counted {
            c.set(self.sources.iter().map(ResampledSource::bytes_held).sum());
        }
        Ok(())
    }
}
