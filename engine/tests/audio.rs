//! Audio on media Debian's ffmpeg makes with checkable content: PCM decoded bit-exact (whole
//! and after seeks), a click every second landing on sample N·48000 ± 1 after resampling from
//! 44.1 kHz (PCM and AAC), two tracks with gains and fades equal to a reference computed
//! here, corrupt and missing files handled without a panic.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests and benches fail loudly"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use framelock_components::{
    AudioClipDef, AudioFormat, AudioTrackDef, Project, Rational, db_to_gain,
};
use framelock_engine::audio::{AudioError, AudioSource, Mixer, ResampledSource};

fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("Debian's ffmpeg makes the test media (bash tools/install-deps.sh)");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn raw_s16(path: &Path, rate: u32, channels: u32) -> Vec<i16> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(path)
        .args(["-f", "s16le", "-acodec", "pcm_s16le", "-ar"])
        .arg(rate.to_string())
        .arg("-ac")
        .arg(channels.to_string())
        .arg("-")
        .output()
        .expect("ffmpeg");
    assert!(out.status.success());
    out.stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// A stereo 16-bit WAV: a 440 Hz sine left, 1000 Hz right.
fn tone_wav(dir: &Path, name: &str, rate: u32, seconds: u32) -> PathBuf {
    let path = dir.join(name);
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &format!("sine=frequency=440:sample_rate={rate}:duration={seconds}"),
        "-f",
        "lavfi",
        "-i",
        &format!("sine=frequency=1000:sample_rate={rate}:duration={seconds}"),
        "-filter_complex",
        "[0:a][1:a]join=inputs=2:channel_layout=stereo",
        "-c:a",
        "pcm_s16le",
        path.to_str().expect("utf-8"),
    ]);
    path
}

/// A mono click (one full-scale sample) at the start of every second, at `rate`.
fn clicks(dir: &Path, name: &str, rate: u32, seconds: u32, codec: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let mut args = vec![
        "-f".to_string(),
        "lavfi".into(),
        "-i".into(),
        format!("aevalsrc='if(eq(mod(n\\,{rate})\\,0)\\,0.9\\,0)':s={rate}:d={seconds}"),
    ];
    args.extend(codec.iter().map(|s| s.to_string()));
    args.push(path.to_str().expect("utf-8").into());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    ffmpeg(&refs);
    path
}

#[test]
fn pcm_decodes_bit_exact_whole_and_after_seeks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = tone_wav(dir.path(), "tone.wav", 48_000, 3);
    let reference = raw_s16(&wav, 48_000, 2);
    let mut src = AudioSource::open(&wav).expect("opens");
    assert_eq!((src.rate(), src.channels()), (48_000, 2));
    assert_eq!(src.frames(), Some(144_000));
    let mut all = Vec::new();
    src.read(0, 144_000, &mut all).expect("reads");
    assert_eq!(all.len(), reference.len());
    for (i, (a, r)) in all.iter().zip(&reference).enumerate() {
        assert_eq!(*a, f32::from(*r) / 32768.0, "sample {i}");
    }
    // Seeks land on the exact frame, backwards and forwards; sequential reads continue.
    for start in [100_000u64, 7, 48_000, 143_990, 1] {
        let mut part = Vec::new();
        src.read(start, 10, &mut part).expect("reads");
        let s = start as usize * 2;
        let want: Vec<f32> = all[s..(s + 20).min(all.len())].to_vec();
        assert_eq!(&part[..want.len()], &want[..], "read at {start}");
        let mut next = Vec::new();
        src.read(start + 10, 5, &mut next).expect("reads on");
        let s = s + 20;
        let want: Vec<f32> = all[s.min(all.len())..(s + 10).min(all.len())].to_vec();
        assert_eq!(&next[..want.len()], &want[..], "read after {start}");
    }
    // Past the end is silence.
    let mut tail = Vec::new();
    src.read(143_998, 4, &mut tail).expect("reads");
    assert_eq!(&tail[4..], &[0.0; 4]);
    assert_eq!(src.corrupt_packets(), 0);
}

/// The click at second `n` of a 44.1 kHz file is at output sample `n * 48000` (± 1).
fn assert_clicks_on_the_second(path: &Path, seconds: u64, what: &str) {
    let src = AudioSource::open(path).expect("opens");
    assert_eq!(src.rate(), 44_100, "{what}");
    let mut r = ResampledSource::new(src, 48_000, 2).expect("resampler");
    // Read in odd-sized pieces and out of order: blocks must join without a seam.
    let total = (seconds * 48_000) as usize;
    let mut out = vec![0.0f32; total * 2];
    let mut at = 0usize;
    let mut piece = 777usize;
    while at < total {
        let n = piece.min(total - at);
        r.mix_into(at as u64, &mut out[at * 2..(at + n) * 2], |_| 1.0)
            .expect("reads");
        at += n;
        piece = piece * 3 % 10_007 + 500;
    }
    for n in 1..seconds {
        let centre = (n * 48_000) as usize;
        let (peak, _) = (centre - 200..centre + 200)
            .map(|i| (i, out[i * 2].abs()))
            .fold((0, 0.0f32), |b, x| if x.1 > b.1 { x } else { b });
        assert!(
            peak.abs_diff(centre) <= 1,
            "{what}: click of second {n} at sample {peak}, expected {centre} ± 1"
        );
        // Both channels carry the mono source.
        assert_eq!(out[peak * 2], out[peak * 2 + 1]);
    }
    // A second reader that starts in the middle (a seek) makes the same samples.
    let src = AudioSource::open(path).expect("opens");
    let mut seeked = ResampledSource::new(src, 48_000, 2).expect("resampler");
    let from = 2 * 48_000 + 123;
    let mut part = vec![0.0f32; 2000];
    seeked
        .mix_into(from as u64, &mut part, |_| 1.0)
        .expect("reads");
    let max_diff = part
        .iter()
        .zip(&out[from * 2..from * 2 + 2000])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(max_diff < 1e-4, "{what}: a seek reads {max_diff} off");
}

#[test]
fn clicks_land_on_the_right_sample_after_resampling() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = clicks(dir.path(), "clicks.wav", 44_100, 5, &["-c:a", "pcm_s16le"]);
    assert_clicks_on_the_second(&wav, 5, "PCM");
    let aac = clicks(
        dir.path(),
        "clicks.m4a",
        44_100,
        5,
        &["-c:a", "aac", "-b:a", "192k"],
    );
    assert_clicks_on_the_second(&aac, 5, "AAC");
}

#[test]
fn two_tracks_with_gains_and_fades_equal_the_reference() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = tone_wav(dir.path(), "a.wav", 48_000, 4);
    let b = clicks(dir.path(), "b.wav", 48_000, 4, &["-c:a", "pcm_s16le"]);
    let rate = Rational::integer(30);
    let mut p = Project::new(rate, 64, 36);
    p.audio_tracks.push(AudioTrackDef {
        name: "tone".into(),
        gain_db: -6.0,
        mute: false,
        solo: false,
        clips: vec![AudioClipDef {
            media: a.clone(),
            start: 3,
            duration: 60,
            source_in: 15,
            gain_db: 0.0,
            fade_in: 10,
            fade_out: 20,
        }],
    });
    p.audio_tracks.push(AudioTrackDef {
        name: "clicks".into(),
        gain_db: 0.0,
        mute: false,
        solo: false,
        clips: vec![AudioClipDef {
            media: b.clone(),
            start: 30,
            duration: 60,
            source_in: 0,
            gain_db: 3.0,
            fade_in: 0,
            fade_out: 0,
        }],
    });
    let mut mixer = Mixer::new(&p).expect("mixer");
    assert_eq!(mixer.format(), AudioFormat::default());
    let frames = 100 * 1600; // 100 timeline frames of 1600 samples
    let mut out = vec![0.0f32; frames * 2];
    mixer.render(0, &mut out).expect("renders");

    // The reference: each source decoded whole, placed and weighed here.
    let ta = raw_s16(&a, 48_000, 2);
    // ffmpeg's own mono-to-stereo upmix is -3 dB; the mixer copies mono to both sides.
    let tb: Vec<i16> = raw_s16(&b, 48_000, 1)
        .into_iter()
        .flat_map(|v| [v, v])
        .collect();
    let mut want = vec![0.0f32; frames * 2];
    let mut add =
        |src: &[i16], start: usize, len: usize, offset: usize, gain: f32, fi: usize, fo: usize| {
            for i in 0..len {
                let mut g = gain;
                if i < fi {
                    g *= (i + 1) as f32 / fi as f32;
                }
                if fo > 0 && i + fo >= len {
                    g *= (len - i) as f32 / fo as f32;
                }
                for c in 0..2 {
                    let s = src.get((offset + i) * 2 + c).copied().unwrap_or(0);
                    want[(start + i) * 2 + c] += g * (f32::from(s) / 32768.0);
                }
            }
        };
    add(
        &ta,
        3 * 1600,
        60 * 1600,
        15 * 1600,
        db_to_gain(-6.0),
        10 * 1600,
        20 * 1600,
    );
    add(&tb, 30 * 1600, 60 * 1600, 0, db_to_gain(3.0), 0, 0);
    let max = out
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(max < 1e-6, "mix differs from the reference by {max}");
    // Silence before the first clip and after the last.
    assert!(out[..3 * 1600 * 2].iter().all(|v| *v == 0.0));
    assert!(out[90 * 1600 * 2..].iter().all(|v| *v == 0.0));
    // Rendering in pieces (as the real-time worker does) gives the same samples.
    let mut pieces = vec![0.0f32; frames * 2];
    for (k, chunk) in pieces.chunks_mut(1234 * 2).enumerate() {
        mixer.render((k * 1234) as u64, chunk).expect("renders");
    }
    assert_eq!(pieces, out);
    // Mute and solo.
    p.audio_tracks[1].solo = true;
    let mut solo = Mixer::new(&p).expect("mixer");
    solo.render(0, &mut out).expect("renders");
    assert!(
        out[3 * 1600 * 2..30 * 1600 * 2].iter().all(|v| *v == 0.0),
        "tone soloed out"
    );
    p.audio_tracks[1].mute = true;
    p.audio_tracks[1].solo = false;
    assert_eq!(Mixer::new(&p).expect("mixer").clips().len(), 1);
}

#[test]
fn bad_audio_is_a_clear_error_or_counted_never_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Missing.
    let missing = dir.path().join("missing.wav");
    assert!(matches!(
        AudioSource::open(&missing),
        Err(AudioError::Io { .. })
    ));
    // Not audio at all.
    let junk = dir.path().join("junk.wav");
    std::fs::write(&junk, vec![0x5au8; 10_000]).expect("write");
    assert!(AudioSource::open(&junk).is_err());
    // AAC in MP4 with garbage in the middle of its packets: decodes to the end, the bad
    // packets are skipped and counted, and everything after them stays in place (positions
    // come from the sample table). (An MP3 has no table: symphonia resyncs past damage and
    // later frames move earlier — a limitation of the format reader, not checked here.)
    let m4a = clicks(
        dir.path(),
        "c.m4a",
        44_100,
        6,
        &["-c:a", "aac", "-b:a", "128k"],
    );
    let mut bytes = std::fs::read(&m4a).expect("read");
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 64] {
        *b ^= 0xa5;
    }
    std::fs::write(&m4a, &bytes).expect("write");
    let mut src = AudioSource::open(&m4a).expect("the header is intact");
    let mut all = Vec::new();
    src.read(0, 6 * 44_100, &mut all).expect("reads through");
    assert_eq!(all.len(), 6 * 44_100 * src.channels());
    assert!(src.corrupt_packets() > 0, "no packet was counted corrupt");
    // The last click, after the damage, is still on its sample.
    let last = 5 * 44_100;
    let peak = (last - 3000..last + 3000)
        .max_by(|&a, &b| all[a].abs().total_cmp(&all[b].abs()))
        .unwrap_or(0);
    assert!(
        peak.abs_diff(last) <= 1,
        "the click after the damage is at {peak}"
    );
    // Truncated: what is there plays, the rest is silence.
    let wav = tone_wav(dir.path(), "t.wav", 48_000, 2);
    let bytes = std::fs::read(&wav).expect("read");
    std::fs::write(&wav, &bytes[..bytes.len() / 2]).expect("truncate");
    let mut src = AudioSource::open(&wav).expect("opens");
    let mut all = Vec::new();
    src.read(0, 96_000, &mut all).expect("reads");
    assert!(all[..1000].iter().any(|v| *v != 0.0));
    assert!(all[all.len() - 1000..].iter().all(|v| *v == 0.0));
}

#[test]
fn a_video_clip_plays_its_own_audio_from_its_source_in() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A 30 fps clip with a click every second: source frame 45 is 1.5 s in.
    let path = dir.path().join("av.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=64x36:rate=30:duration=4",
        "-f",
        "lavfi",
        "-i",
        "aevalsrc='if(eq(mod(n\\,48000)\\,0)\\,0.9\\,0)':s=48000:d=4",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-b:a",
        "192k",
        "-shortest",
        path.to_str().expect("utf-8"),
    ]);
    let mut p = Project::new(Rational::integer(30), 64, 36);
    p.tracks.push(framelock_components::TrackDef {
        name: String::new(),
        opacity: 1.0,
        clips: vec![framelock_components::ClipDef {
            media: path.clone(),
            start: 0,
            duration: 60,
            source_in: 45,
            enabled: true,
            effects: Default::default(),
            audio: Default::default(),
        }],
    });
    let mixer = Mixer::new(&p);
    let mut mixer = match mixer {
        Ok(m) => m,
        Err(e) => panic!("mixer: {e}"),
    };
    if mixer.clips().is_empty() {
        panic!("the clip's audio was skipped: {:?}", mixer.skipped());
    }
    let mut out = vec![0.0f32; 2 * 48_000 * 2];
    mixer.render(0, &mut out).expect("renders");
    // The source's click at 2 s plays at timeline 0.5 s.
    let peak = (0..2 * 48_000)
        .max_by(|&a, &b| out[a * 2].abs().total_cmp(&out[b * 2].abs()))
        .unwrap_or(0);
    assert!(
        peak.abs_diff(24_000) <= 1,
        "click at sample {peak}, expected 24000 ± 1"
    );
    // Muted: silence.
    p.tracks[0].clips[0].audio.muted = true;
    assert!(Mixer::new(&p).expect("mixer").clips().is_empty());
}

#[test]
fn output_pulls_the_mix_in_order_and_seeks_drop_old_audio() {
    use framelock_engine::audio::{AudioOutput, CHUNK_FRAMES};
    use std::time::Duration;
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = tone_wav(dir.path(), "tone.wav", 44_100, 6);
    let rate = Rational::integer(30);
    let mut p = Project::new(rate, 64, 36);
    p.audio_tracks.push(AudioTrackDef::new(vec![AudioClipDef {
        gain_db: -3.0,
        ..AudioClipDef::new(wav, 0, 180)
    }]));
    let mut offline = Mixer::new(&p).expect("mixer");
    let expect = |offline: &mut Mixer, at: u64, frames: usize| {
        let mut v = vec![0.0f32; frames * 2];
        offline.render(at, &mut v).expect("renders");
        v
    };
    let ring = 8 * CHUNK_FRAMES;
    let out = AudioOutput::start(Mixer::new(&p).expect("mixer"), ring);
    let pull = out.pull_handle();
    // Paused: silence, the position holds.
    let mut buf = vec![1.0f32; 512 * 2];
    assert_eq!(pull.pull(&mut buf), 0);
    assert!(buf.iter().all(|v| *v == 0.0));
    assert_eq!(out.position(), 0);
    out.set_playing(true);
    assert!(out.wait_buffered(4800, Duration::from_secs(10)));
    let mut buf = vec![0.0f32; 4800 * 2];
    assert_eq!(pull.pull(&mut buf), 4800);
    assert_eq!(buf, expect(&mut offline, 0, 4800), "the first 100 ms");
    assert_eq!(out.position(), 4800);
    pull.set_latency(1000);
    assert_eq!(out.position(), 3800, "the clock is what the listener hears");
    pull.set_latency(0);
    // Seeks, forwards and back: the first sample pulled after each is the new position's.
    let mut x = 0x9e37_79b9_u64;
    for _ in 0..50 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let at = x % (5 * 48_000);
        out.seek(at);
        assert!(out.wait_buffered(CHUNK_FRAMES, Duration::from_secs(10)));
        let mut buf = vec![0.0f32; 300 * 2];
        assert_eq!(pull.pull(&mut buf), 300);
        assert_eq!(buf, expect(&mut offline, at, 300), "after a seek to {at}");
        assert_eq!(out.position(), at + 300);
    }
    // A pull larger than the ring: the short part is silence, counted; never a wait.
    assert!(out.wait_buffered(ring, Duration::from_secs(10)));
    let before = out.underruns();
    let mut big = vec![0.0f32; (ring + 4 * CHUNK_FRAMES) * 2];
    let got = pull.pull(&mut big);
    assert!(got < ring + 4 * CHUNK_FRAMES);
    assert_eq!(out.underruns(), before + 1);
    assert!(big[got * 2..].iter().all(|v| *v == 0.0));
    assert_eq!(out.error(), None);
}

#[test]
fn waveforms_are_computed_in_the_background_and_kept_on_disk() {
    use framelock_engine::audio::{LEVELS, Peaks, WaveformState, Waveforms, read_stored};
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = clicks(dir.path(), "w.wav", 44_100, 3, &["-c:a", "pcm_s16le"]);
    let p = Peaks::compute(&wav).expect("peaks");
    assert_eq!(p.rate, 44_100);
    assert_eq!(p.levels.len(), LEVELS.len());
    for l in &p.levels {
        let n = l.samples_per_peak as usize;
        assert_eq!(l.peaks.len(), (3 * 44_100usize).div_ceil(n), "level {n}");
        // The clicks are in the runs that hold samples 0, 44100 and 88200, nowhere else.
        for (i, (lo, hi)) in l.peaks.iter().enumerate() {
            let start = i * n;
            let has = [0usize, 44_100, 88_200]
                .iter()
                .any(|c| (start..start + n).contains(c));
            if has {
                assert!((hi - 0.9).abs() < 1e-3, "level {n} run {i}: max {hi}");
            } else {
                assert_eq!(*hi, 0.0, "level {n} run {i}");
            }
            assert_eq!(*lo, 0.0);
        }
    }
    let store = dir.path().join("cache").join("analysis");
    let wait_ready = |w: &Waveforms| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match w.get(&wav) {
                Some(WaveformState::Ready(p)) => return p,
                Some(WaveformState::Failed(e)) => panic!("waveform failed: {e}"),
                _ if Instant::now() > deadline => panic!("waveform never finished"),
                _ => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    };
    let w = Waveforms::new(Some(store.clone()));
    assert!(w.get(&wav).is_none(), "not requested yet");
    w.request(&wav, 0xabc);
    assert_eq!(*wait_ready(&w), p);
    let file = store.join(format!("{:016x}.peaks", 0xabc));
    assert_eq!(read_stored(&file).expect("stored and read back"), p);
    // A damaged file is not trusted: it is recomputed and rewritten.
    let mut bytes = std::fs::read(&file).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&file, &bytes).expect("write");
    assert!(read_stored(&file).is_none());
    let again = Waveforms::new(Some(store));
    again.request(&wav, 0xabc);
    assert_eq!(*wait_ready(&again), p);
    assert_eq!(read_stored(&file).expect("rewritten"), p);
    // A file without audio fails clearly.
    let junk = dir.path().join("junk.bin");
    std::fs::write(&junk, [1u8; 100]).expect("write");
    again.request(&junk, 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(again.get(&junk), Some(WaveformState::Failed(_))) {
        assert!(Instant::now() < deadline, "no failure reported");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// With the `ffmpeg` feature, libav decodes what symphonia cannot (Opus in Ogg and MP4,
/// AC-3 raw and in MP4) with its priming trimmed: each click is on the sample where
/// Debian's ffmpeg decodes it — second `n` at `n * 48000` where the container says the
/// encoder's delay; a raw AC-3 stream cannot say it, so there both find it 256 samples
/// late — whole and after a seek.
#[cfg(feature = "ffmpeg")]
#[test]
fn libav_decodes_what_symphonia_cannot_on_the_right_sample() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: [(&str, &[&str], usize); 4] = [
        ("opus.opus", &["-c:a", "libopus", "-b:a", "160k"], 0),
        ("opus.mp4", &["-c:a", "libopus", "-b:a", "160k"], 0),
        ("ac3.ac3", &["-c:a", "ac3", "-b:a", "192k"], 256),
        ("ac3.mp4", &["-c:a", "ac3", "-b:a", "192k"], 0),
    ];
    let peak_near = |data: &[f32], ch: usize, centre: usize, from: usize| {
        (centre - 1000..centre + 1000)
            .map(|i| (i, data[(i - from) * ch].abs()))
            .fold((0, 0.0f32), |b, x| if x.1 > b.1 { x } else { b })
            .0
    };
    for (name, codec, delay) in cases {
        let path = clicks(dir.path(), name, 48_000, 5, codec);
        let reference: Vec<f32> = raw_s16(&path, 48_000, 1)
            .iter()
            .map(|&v| f32::from(v))
            .collect();
        let mut src = AudioSource::open(&path).expect("opens");
        assert_eq!(src.backend_name(), "ffmpeg", "{name}");
        assert_eq!(src.rate(), 48_000, "{name}");
        let ch = src.channels();
        let mut all = Vec::new();
        src.read(0, 5 * 48_000, &mut all).expect("reads");
        for n in 1..5 {
            let centre = n * 48_000;
            let theirs = peak_near(&reference, 1, centre, 0);
            assert_eq!(theirs, centre + delay, "{name}: ffmpeg's click {n}");
            let ours = peak_near(&all, ch, centre, 0);
            assert!(
                ours.abs_diff(theirs) <= 1,
                "{name}: click of second {n} at sample {ours}, ffmpeg has it at {theirs}"
            );
        }
        // After a seek (backwards, then forwards): the same click on the same sample.
        for n in [3usize, 1, 4] {
            let from = n * 48_000 - 2000;
            let mut part = Vec::new();
            src.read(from as u64, 4000, &mut part).expect("reads");
            let ours = peak_near(&part, ch, n * 48_000, from);
            assert!(
                ours.abs_diff(n * 48_000 + delay) <= 1,
                "{name}: after a seek, click {n} at {ours}"
            );
        }
        assert_eq!(src.corrupt_packets(), 0, "{name}");
    }
}
