//! The engine's sound: the audio output kept on the playhead (seeks, scrub snippets, the
//! play state), the sink it plays on, and the host's accessors.

use std::sync::Arc;
use std::time::Duration;

use framelock_components::{OutputFormat, PlayState, Playhead};
use framelock_engine::audio::{AudioOutput, AudioPull, AudioSink, SinkError, WaveformState};
use framelock_systems::{AudioClock, RenderMode};

use super::PlaybackEngine;

/// Keeps the audio output on the playhead: a seek, a scrub or a rate change re-seeks it; it
/// plays only while playing at rate 1 (other rates are muted, as in most editors; returning
/// to 1 picks up sample-exact at the current frame).
pub(super) struct AudioSync {
    pub(super) output: Arc<AudioOutput>,
    pub(super) generation: Option<u64>,
    pub(super) playing: bool,
    /// The playhead generation a scrub made, whose move plays a snippet.
    pub(super) scrubbed: Option<u64>,
    /// A scrub snippet's length, output frames.
    pub(super) snippet: usize,
}

impl PlaybackEngine {
    /// Brings the audio output to the playhead (before each tick).
    pub(super) fn sync_audio(&mut self) {
        let Some(a) = &mut self.audio else {
            return;
        };
        if self
            .world
            .get_resource::<RenderMode>()
            .is_some_and(|m| *m == RenderMode::Offline)
        {
            return;
        }
        let p = *self.world.resource::<Playhead>();
        if a.generation != Some(p.generation) {
            a.generation = Some(p.generation);
            let rate = self.world.resource::<OutputFormat>().frame_rate;
            let at = a.output.format().sample_at_frame(p.frame, rate);
            if a.scrubbed == Some(p.generation) && a.snippet > 0 {
                a.output.scrub(at, a.snippet);
            } else {
                a.output.seek(at);
            }
        }
        let playing = p.state == PlayState::Playing && p.rate == 1.0;
        if playing != a.playing {
            a.playing = playing;
            a.output.set_playing(playing);
        }
    }

    /// The host's end of the audio output: call [`AudioPull::pull`] from the audio device's
    /// callback (and [`AudioPull::set_latency`] with its buffer). `None` when the project
    /// has no audio or [`EngineOptions::audio`](crate::EngineOptions::audio) is off.
    pub fn audio_pull(&self) -> Option<AudioPull> {
        self.audio.as_ref().map(|a| a.output.pull_handle())
    }

    /// The waveform of `path` (a file of the project's audio), computed in the background at
    /// open and kept in the disk cache's folder (`analysis/`) when there is one: `None` for a
    /// file the project does not play.
    pub fn waveform(&self, path: &std::path::Path) -> Option<WaveformState> {
        self.waveforms.get(path)
    }

    /// Plays the mix on `sink` (a device, [`NullSink`](framelock_engine::audio::NullSink), the
    /// host's own callback) from now on, replacing the one before; returns the sink's name.
    /// While it pulls at rate 1 the audio clock is the master. [`SinkError::NothingToPlay`]
    /// when the project has no audio (or [`EngineOptions::audio`](crate::EngineOptions::audio) is off).
    pub fn set_audio_sink(&mut self, mut sink: Box<dyn AudioSink>) -> Result<String, SinkError> {
        let Some(a) = &self.audio else {
            return Err(SinkError::NothingToPlay);
        };
        self.audio_sink = None;
        sink.start(a.output.pull_handle(), a.output.format())?;
        let name = sink.name();
        self.audio_sink = Some(sink);
        Ok(name)
    }

    /// The name of the sink playing the mix, if one was set.
    pub fn audio_sink_name(&self) -> Option<String> {
        self.audio_sink.as_ref().map(|s| s.name())
    }

    /// The audio output (its clock, underruns, the mixer's first error).
    pub fn audio_output(&self) -> Option<&AudioOutput> {
        self.audio.as_ref().map(|a| &*a.output)
    }

    /// Whether the last tick followed the audio clock (a device is pulling at rate 1).
    pub fn audio_is_master(&self) -> bool {
        self.world
            .get_resource::<AudioClock>()
            .is_some_and(|c| c.master)
    }

    /// A scrub to timeline frame `frame`: a seek (the picture is latest-wins, as for every
    /// seek) that, while paused, also plays a short snippet of the sound there
    /// ([`EngineOptions::scrub_audio`](crate::EngineOptions::scrub_audio) long), as editors do under a dragged playhead.
    pub fn scrub_frame(&mut self, frame: u64) {
        self.seek_frame(frame);
        let generation = self.world.resource::<Playhead>().generation;
        if let Some(a) = &mut self.audio {
            a.scrubbed = Some(generation);
        }
    }

    /// [`PlaybackEngine::scrub_frame`] to the frame shown at `seconds`.
    pub fn scrub(&mut self, seconds: f64) {
        let t = Duration::from_secs_f64(seconds.max(0.0));
        self.scrub_frame(self.pacer.tick_at(t));
    }
}
