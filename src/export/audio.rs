//! The export's audio thread: the timeline's mix over the whole range, encoded once (no
//! priming gaps at segment seams), sent to the coordinator in batches.

use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use framelock_components::Project;
use framelock_engine::audio::{AudioCodec, AudioEncoder, AudioPacket, Mixer};
use framelock_engine::media::TrackCodec;

use super::job::{Msg, Shared};
use super::{ExportAudio, ExportError};

/// Frames mixed and encoded per step (one second at 48 kHz).
const BLOCK: usize = 48_000;

/// What the audio track needs besides its packets.
#[derive(Clone, Debug)]
pub(super) struct AudioTrackInfo {
    pub(super) codec: AudioCodec,
    pub(super) track: TrackCodec,
    pub(super) rate: u32,
    pub(super) channels: u16,
    /// Encoder delay, in samples.
    pub(super) delay: u32,
    /// Samples presented (the range's length in samples).
    pub(super) frames: u64,
}

/// The codec `choice` resolves to for this build, or `None` for no audio track.
pub(super) fn resolve(choice: ExportAudio) -> Option<AudioCodec> {
    match choice {
        ExportAudio::None => None,
        ExportAudio::Codec(c) => Some(c),
        ExportAudio::Auto if AudioCodec::AAC.available() => Some(AudioCodec::AAC),
        ExportAudio::Auto => Some(AudioCodec::OPUS),
    }
}

/// Mixes and encodes `range` (timeline frames); sends `Msg::AudioStart`, then
/// `Msg::Audio` batches, then `Msg::AudioDone`. With [`ExportAudio::Auto`] and a silent
/// timeline (no clip with sound) it sends only `Msg::AudioDone(None)`.
pub(super) fn run(
    project: &Project,
    range: Range<u64>,
    choice: ExportAudio,
    tx: &crossbeam_channel::Sender<Msg>,
    shared: &Arc<Shared>,
) {
    let started = Instant::now();
    let result = encode(project, range, choice, tx, shared);
    let seconds = started.elapsed().as_secs_f64();
    let failed = result.is_err();
    let _ = tx.send(Msg::AudioDone(
        result.map(|r| r.map(|frames| (frames, seconds))),
    ));
    if failed {
        shared.stop();
    }
}

fn encode(
    project: &Project,
    range: Range<u64>,
    choice: ExportAudio,
    tx: &crossbeam_channel::Sender<Msg>,
    shared: &Arc<Shared>,
) -> Result<Option<u64>, ExportError> {
    let Some(codec) = resolve(choice) else {
        return Ok(None);
    };
    let mut project = project.clone();
    project.audio.sample_rate = codec.sample_rate(project.audio.sample_rate);
    let mut mixer = Mixer::new(&project)?;
    if choice == ExportAudio::Auto && mixer.clips().is_empty() {
        return Ok(None);
    }
    let format = mixer.format();
    let rate = project.frame_rate;
    let (start, end) = (
        format.sample_at_frame(range.start, rate),
        format.sample_at_frame(range.end, rate),
    );
    let mut encoder = AudioEncoder::new(codec, format)?;
    let info = AudioTrackInfo {
        codec,
        track: encoder.track_codec(),
        rate: format.sample_rate,
        channels: format.channels,
        delay: encoder.delay(),
        frames: end - start,
    };
    if tx.send(Msg::AudioStart(info)).is_err() {
        return Err(ExportError::Cancelled);
    }
    let ch = usize::from(format.channels);
    let mut buf = vec![0.0f32; BLOCK * ch];
    let mut at = start;
    while at < end {
        if !shared.wait_while_paused() {
            return Err(ExportError::Cancelled);
        }
        let n = ((end - at) as usize).min(BLOCK);
        mixer.render(at, &mut buf[..n * ch])?;
        let mut packets: Vec<AudioPacket> = Vec::new();
        encoder.encode(&buf[..n * ch], &mut packets)?;
        if !packets.is_empty() && tx.send(Msg::Audio(packets)).is_err() {
            return Err(ExportError::Cancelled);
        }
        at += n as u64;
    }
    let mut packets = Vec::new();
    encoder.finish(&mut packets)?;
    if !packets.is_empty() && tx.send(Msg::Audio(packets)).is_err() {
        return Err(ExportError::Cancelled);
    }
    Ok(Some(end - start))
}
