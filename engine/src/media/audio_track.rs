//! An MP4/MOV's first audio track as stored: the edit that hides the encoder's priming (for
//! readers that ignore edit lists) and its packets, to copy into another file unchanged.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use re_mp4::{StsdBoxContent, TrackKind};

use super::demux::{audio_info, codec_of, edit_list, handler_is};

/// The first audio track's edit list of an MP4/MOV file, as frames to add to its decoded
/// positions (`delay - media_time`, in the track's timescale, which for audio is its sample
/// rate), and that timescale; `None` when the file is not MP4 or has no audio track. Audio
/// readers that ignore edit lists (symphonia's) use it to drop the encoder's priming frames
/// (AAC: 1024 or 2112) the way every player does.
pub fn audio_edit(path: &Path) -> Option<(i64, u64)> {
    let (mp4, _) = read(path).ok()?;
    let track = first_audio(&mp4)?;
    let timescale = track.timescale.max(1);
    let (delay, media_time) = edit_list(&mp4, track.trak(&mp4), timescale);
    Some((delay - media_time.unwrap_or(0), timescale))
}

/// `path`'s boxes and sample tables, and the file's size; a reader that panics on
/// malformed boxes is an error.
fn read(path: &Path) -> Result<(re_mp4::Mp4, u64), String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let size = file.metadata().map_err(|e| e.to_string())?.len();
    let mp4 = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        re_mp4::Mp4::read(BufReader::new(&file), size)
    }))
    .map_err(|_| "malformed MP4".to_string())?
    .map_err(|e| e.to_string())?;
    Ok((mp4, size))
}

/// The first track with a sound handler.
fn first_audio(mp4: &re_mp4::Mp4) -> Option<&re_mp4::Track> {
    mp4.tracks()
        .values()
        .find(|t| handler_is(mp4, t, TrackKind::Audio, b"soun"))
}

/// An MP4/MOV's first audio track as stored, to copy into another file unchanged (a proxy
/// carries its source's sound): AAC only, with its AudioSpecificConfig rebuilt from `esds`
/// (object types 1–4: Main, LC, SSR, LTP; implicit SBR/PS stays in-band), every packet's
/// place and duration, and the edit that hides the encoder's priming.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioCopy {
    /// Sample rate (the media timescale of the copy).
    pub rate: u32,
    /// Channels.
    pub channels: u16,
    /// The AudioSpecificConfig.
    pub config: Vec<u8>,
    /// Average bits per second, as the source says (0 when it does not).
    pub bitrate: u32,
    /// Each packet's byte offset in the file, size and duration (in `rate` ticks), in order.
    pub packets: Vec<(u64, u32, u32)>,
    /// Ticks of the first packets the presentation skips (the edit's `media_time`).
    pub priming: u64,
    /// Ticks presented from there (the edit's duration), when the file says.
    pub presented: Option<u64>,
}

/// The first audio track of `path` as an [`AudioCopy`], or why it cannot be copied (no
/// audio track is `Ok(None)`).
pub fn audio_copy(path: &Path) -> Result<Option<AudioCopy>, String> {
    let (mp4, size) = read(path)?;
    let Some(track) = first_audio(&mp4) else {
        return Ok(None);
    };
    let trak = track.trak(&mp4);
    let StsdBoxContent::Mp4a(mp4a) = &trak.mdia.minf.stbl.stsd.contents else {
        let (codec, _) = codec_of(&trak.mdia.minf.stbl.stsd.contents);
        return Err(format!("{codec} audio is not copied (only AAC)"));
    };
    let Some(esds) = &mp4a.esds else {
        return Err("AAC without an esds box".into());
    };
    let d = &esds.es_desc.dec_config.dec_specific;
    if !(1..=4).contains(&d.profile) || d.freq_index > 12 || d.chan_conf > 7 || d.chan_conf == 0 {
        return Err(format!(
            "AAC object type {}, rate index {}, channel configuration {} is not copied",
            d.profile, d.freq_index, d.chan_conf
        ));
    }
    let info = audio_info(&mp4, track);
    let rate = u32::try_from(track.timescale).map_err(|_| "timescale".to_string())?;
    if rate != info.sample_rate {
        return Err(format!(
            "the track's timescale {rate} is not its sample rate {}",
            info.sample_rate
        ));
    }
    let asc = (u16::from(d.profile) << 11)
        | (u16::from(d.freq_index) << 7)
        | (u16::from(d.chan_conf) << 3);
    let mut packets = Vec::with_capacity(track.samples.len());
    for s in &track.samples {
        let end = s.offset.checked_add(s.size);
        if end.is_none_or(|e| e > size) {
            return Err("an audio packet lies past the end of the file".into());
        }
        packets.push((
            s.offset,
            u32::try_from(s.size).map_err(|_| "packet size".to_string())?,
            u32::try_from(s.duration).map_err(|_| "packet duration".to_string())?,
        ));
    }
    let (delay, media_time) = edit_list(&mp4, trak, track.timescale.max(1));
    if delay != 0 {
        return Err("an audio track that starts after an empty edit is not copied".into());
    }
    let movie_timescale = u64::from(mp4.moov.mvhd.timescale.max(1));
    let presented = trak
        .edts
        .as_ref()
        .and_then(|e| e.elst.as_ref())
        .and_then(|l| l.entries.first())
        .map(|e| {
            (u128::from(e.segment_duration) * u128::from(rate) / u128::from(movie_timescale)) as u64
        })
        .filter(|&p| p > 0);
    Ok(Some(AudioCopy {
        rate,
        channels: info.channels,
        config: asc.to_be_bytes().to_vec(),
        bitrate: esds.es_desc.dec_config.avg_bitrate,
        packets,
        priming: media_time.map_or(0, |m| m.max(0) as u64),
        presented,
    }))
}
