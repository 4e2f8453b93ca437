//! A/V sync on the virtual clock, with the test as the audio device (it pulls from the
//! engine's ring between ticks): the audio clock is the master while a device pulls, video
//! follows it exactly (no drift over ten minutes, and a device 0.1% fast pulls the picture
//! along),
//! seeks restart the sound at the exact sample, and with no device pulling the tick count
//! stays master.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests and benches fail loudly"
)]

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use framelock::{
    AudioClipDef, AudioFormat, AudioTrackDef, ClipDef, DecoderRegistry, EngineOptions, Mixer,
    PlaybackEngine, Project, Rational, TrackDef, VirtualClock,
};

const SECONDS: u64 = 600;

/// A mono click at the start of every second, 44.1 kHz (so playback resamples).
fn clicks() -> PathBuf {
    common::cached("clicks.wav", |path| {
        let ok = common::ffmpeg()
            .args(["-f", "lavfi", "-i"])
            .arg(format!(
                "aevalsrc='if(eq(mod(n\\,44100)\\,0)\\,0.9\\,0)':s=44100:d={SECONDS}"
            ))
            .args(["-c:a", "pcm_s16le"])
            .arg(path)
            .status()
            .expect("ffmpeg");
        assert!(ok.success());
    })
}

fn project() -> Project {
    let video = common::clip("sync.mp4", 320, 180, Rational::integer(30), 300, 30);
    let mut p = Project::new(Rational::integer(30), 320, 180);
    p.tracks.push(TrackDef {
        name: String::new(),
        opacity: 1.0,
        clips: (0..SECONDS / 10)
            .map(|i| ClipDef {
                media: video.clone(),
                start: i * 300,
                duration: 300,
                source_in: 0,
                enabled: true,
                effects: Default::default(),
                audio: Default::default(),
            })
            .collect(),
    });
    p.audio_tracks
        .push(AudioTrackDef::new(vec![AudioClipDef::new(
            clicks(),
            0,
            SECONDS * 30,
        )]));
    p
}

fn open() -> PlaybackEngine {
    let options = EngineOptions {
        registry: DecoderRegistry::openh264_only(),
        workers: 1,
        render_workers: 1,
        gpu: None,
        ..EngineOptions::default()
    };
    PlaybackEngine::open(&project(), options, Arc::new(VirtualClock::new()), |_| {}).expect("opens")
}

/// Plays `ticks` ticks with a device that pulls `speed` times the nominal 1600 frames a tick.
/// Returns the frames pulled.
fn play_with_device(engine: &mut PlaybackEngine, ticks: u64, speed: f64) -> u64 {
    let pull = engine.audio_pull().expect("the project has audio");
    let mut owed = 0.0f64;
    let mut pulled = 0u64;
    let mut buf = Vec::new();
    for _ in 0..ticks {
        engine.tick();
        owed += 1600.0 * speed;
        let n = owed.floor() as usize;
        owed -= n as f64;
        let out = engine.audio_output().expect("output");
        assert!(
            out.wait_buffered(n, Duration::from_secs(30)),
            "the mixer fell behind"
        );
        buf.resize(n * 2, 0.0);
        assert_eq!(pull.pull(&mut buf), n, "underrun");
        pulled += n as u64;
    }
    pulled
}

#[test]
fn video_follows_the_audio_clock_without_drift() {
    for speed in [1.0, 1.001] {
        let mut engine = open();
        engine.play();
        let ticks = SECONDS * 30 - 30;
        let pulled = play_with_device(&mut engine, ticks, speed);
        engine.tick();
        assert!(
            engine.audio_is_master(),
            "speed {speed}: audio is not the master"
        );
        let audio_pos = engine.audio_output().expect("output").position();
        assert_eq!(audio_pos, pulled);
        let frame = engine.playhead().frame;
        // The frame shown is the one whose time covers the audio clock: |A - V| is below one
        // frame and does not grow (no drift over ten minutes).
        let want = audio_pos * 30 / 48_000;
        assert_eq!(
            frame, want,
            "speed {speed}: video at {frame}, audio at frame {want}"
        );
        let a = audio_pos as f64 / 48_000.0;
        let v = frame as f64 / 30.0;
        assert!((0.0..1.0 / 30.0).contains(&(a - v)), "A - V = {} s", a - v);
        if speed > 1.0 {
            // The device ran 0.1% fast: the picture was pulled ahead of the tick count.
            assert!(
                frame > ticks,
                "video did not follow the fast device ({frame} <= {ticks})"
            );
        }
        assert_eq!(engine.audio_output().expect("output").underruns(), 0);
    }
}

#[test]
fn seeks_restart_the_sound_at_the_exact_sample() {
    let p = project();
    let mut offline = Mixer::new(&p).expect("mixer");
    let mut engine = open();
    engine.play();
    play_with_device(&mut engine, 5, 1.0);
    let pull = engine.audio_pull().expect("audio");
    let format = AudioFormat::default();
    let mut x = 0x2545_f491_u64;
    for _ in 0..50 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let frame = x % (SECONDS * 30 - 60);
        engine.seek_frame(frame);
        engine.tick();
        let out = engine.audio_output().expect("output");
        assert!(out.wait_buffered(512, Duration::from_secs(30)));
        let at = format.sample_at_frame(frame, p.frame_rate);
        let mut heard = vec![0.0f32; 512 * 2];
        assert_eq!(pull.pull(&mut heard), 512);
        let mut want = vec![0.0f32; 512 * 2];
        offline.render(at, &mut want).expect("renders");
        assert_eq!(heard, want, "first samples after a seek to frame {frame}");
        engine.tick();
        assert_eq!(
            engine.playhead().frame,
            frame,
            "video is at the seek, with the sound"
        );
    }
}

#[test]
fn without_a_device_the_tick_count_stays_master() {
    let mut engine = open();
    // The project's audio got its waveform in the background; video-only media have none.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        match engine.waveform(&clicks()) {
            Some(framelock::WaveformState::Ready(p)) => {
                assert_eq!(
                    p.levels[0].peaks.len() as u64,
                    (SECONDS * 44_100).div_ceil(256)
                );
                break;
            }
            Some(framelock::WaveformState::Failed(e)) => panic!("waveform: {e}"),
            _ => assert!(std::time::Instant::now() < deadline, "no waveform"),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    engine.play();
    for _ in 0..60 {
        engine.tick();
    }
    assert!(!engine.audio_is_master());
    assert_eq!(engine.playhead().frame, 59);
    // Other rates play muted (as most editors do) and the ticks lead.
    engine.set_rate(2.0);
    let pull = engine.audio_pull().expect("audio");
    let mut buf = vec![0.0f32; 1600 * 2];
    for _ in 0..10 {
        engine.tick();
        assert_eq!(pull.pull(&mut buf), 0, "2x is silent");
    }
    assert!(!engine.audio_is_master());
    assert_eq!(engine.playhead().frame, 59 + 2 * 10, "the ticks moved it");
    // Back to 1x: the sound picks up at the current frame and is master again.
    engine.set_rate(1.0);
    let at = engine.playhead().frame;
    play_with_device(&mut engine, 30, 1.0);
    assert!(engine.audio_is_master());
    let f = engine.playhead().frame;
    assert!(
        (at..=at + 30).contains(&f),
        "frame {f} after resuming at {at}"
    );
}

#[test]
fn a_null_sink_pulls_in_real_time_and_becomes_the_master() {
    let mut engine = open();
    let sink = framelock::NullSink::new().with_period(Duration::from_millis(5));
    let pulled = sink.pulled();
    let name = engine.set_audio_sink(Box::new(sink)).expect("starts");
    assert!(name.contains("null"), "{name}");
    engine.play();
    // The sink pulls on its own thread at the wall clock's pace; ticks on the virtual clock
    // follow it once it is heard.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !engine.audio_is_master() {
        assert!(
            std::time::Instant::now() < deadline,
            "the null sink never became the master"
        );
        engine.tick();
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(pulled.load(std::sync::atomic::Ordering::Acquire) > 0);
    // Decoded audio and the ring are in the memory budget (the pool's audio class).
    let audio = engine
        .cache_stats()
        .memory
        .class(framelock::PoolClass::Audio);
    let ring = engine.audio_output().expect("output").ring_bytes();
    assert!(
        audio.in_use_bytes > ring,
        "the audio class holds the ring ({ring} B) and decoded blocks: {audio:?}"
    );
    // Replacing the sink stops the old one; a project without audio has nothing to play.
    let silent = framelock::NullSink::new();
    engine.set_audio_sink(Box::new(silent)).expect("replaced");
    let video = common::clip("sync.mp4", 320, 180, Rational::integer(30), 300, 30);
    let mut p = Project::new(Rational::integer(30), 320, 180);
    p.tracks.push(TrackDef {
        name: String::new(),
        opacity: 1.0,
        clips: vec![common::clip_def(&video, 0, 30, 0, Default::default())],
    });
    let options = EngineOptions {
        registry: DecoderRegistry::openh264_only(),
        gpu: None,
        ..EngineOptions::default()
    };
    let mut mute =
        PlaybackEngine::open(&p, options, Arc::new(VirtualClock::new()), |_| {}).expect("opens");
    assert!(matches!(
        mute.set_audio_sink(Box::new(framelock::NullSink::new())),
        Err(framelock::SinkError::NothingToPlay)
    ));
}

#[test]
fn scrubbing_plays_a_short_snippet_at_each_position() {
    let p = project();
    let mut offline = Mixer::new(&p).expect("mixer");
    let mut engine = open();
    let pull = engine.audio_pull().expect("audio");
    let format = AudioFormat::default();
    // 80 ms at 48 kHz.
    let snippet = 3840;
    // Paused: a plain seek is silent.
    engine.seek_frame(100);
    engine.tick();
    let out = engine.audio_output().expect("output");
    assert!(out.wait_buffered(snippet, Duration::from_secs(30)));
    let mut buf = vec![0.0f32; 4096 * 2];
    assert_eq!(pull.pull(&mut buf), 0, "a paused seek plays nothing");
    for frame in [30u64, 9_000, 31, 17_990] {
        engine.scrub_frame(frame);
        engine.tick();
        let out = engine.audio_output().expect("output");
        assert!(out.wait_buffered(snippet, Duration::from_secs(30)));
        // The snippet is the mix at the scrub position, exactly, then silence.
        let mut heard = vec![0.0f32; 4096 * 2];
        assert_eq!(pull.pull(&mut heard), snippet, "scrub to {frame}");
        let mut want = vec![0.0f32; snippet * 2];
        let at = format.sample_at_frame(frame, p.frame_rate);
        offline.render(at, &mut want).expect("renders");
        if frame % 30 == 0 {
            assert!(want[0] != 0.0, "a whole second starts with its click");
        }
        assert_eq!(&heard[..snippet * 2], &want[..], "scrub to {frame}");
        assert!(heard[snippet * 2..].iter().all(|&s| s == 0.0));
        assert_eq!(pull.pull(&mut heard), 0, "the snippet has ended");
        assert_eq!(
            engine.playhead().frame,
            frame,
            "the picture is at the scrub"
        );
    }
    // A scrub cut short by the next: only the new position is heard.
    engine.scrub_frame(60);
    engine.tick();
    engine.scrub_frame(90);
    engine.tick();
    let out = engine.audio_output().expect("output");
    assert!(out.wait_buffered(snippet, Duration::from_secs(30)));
    let mut heard = vec![0.0f32; 1024 * 2];
    pull.pull(&mut heard);
    let mut want = vec![0.0f32; 1024 * 2];
    offline
        .render(format.sample_at_frame(90, p.frame_rate), &mut want)
        .expect("renders");
    assert_eq!(heard, want);
}
