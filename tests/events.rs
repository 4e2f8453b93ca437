//! The engine's events on the virtual clock: play → seek → end in order, one `Error` with
//! its text for a file truncated during playback (and the timeline plays on, the clip showing
//! the media-offline picture until the file returns), seeks while
//! paused are not drops, and `Player::playhead` agrees with a command just sent.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests and benches fail loudly"
)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use framelock::{
    EngineEvent, EngineOptions, PlayState, PlaybackEngine, Player, Project, Rational, TrackDef,
    VirtualClock,
};

fn project(media: &std::path::Path, frames: u64) -> Project {
    let mut p = Project::new(Rational::integer(30), 160, 90);
    p.tracks.push(TrackDef {
        name: "v".into(),
        opacity: 1.0,
        clips: vec![common::clip_def(media, 0, frames, 0, Default::default())],
    });
    p
}

/// The engine on the virtual clock, playing `frames` of `media`, with no sink.
fn open(media: &std::path::Path, frames: u64) -> PlaybackEngine {
    PlaybackEngine::open(
        &project(media, frames),
        EngineOptions::default(),
        Arc::new(VirtualClock::new()),
        |_| {},
    )
    .expect("open")
}

fn tick(engine: &mut PlaybackEngine) {
    engine.tick();
    assert!(engine.wait_idle(Duration::from_secs(60)), "workers stuck");
}

fn drain(rx: &crossbeam_channel::Receiver<EngineEvent>) -> Vec<EngineEvent> {
    rx.try_iter().collect()
}

#[test]
fn play_seek_and_end_come_as_events_in_order() {
    let clip = common::clip("ev.mp4", 160, 90, Rational::integer(30), 40, 10);
    let mut engine = open(&clip, 40);
    let events = engine.events();
    engine.play();
    for _ in 0..5 {
        tick(&mut engine);
    }
    engine.seek_frame(30);
    for _ in 0..20 {
        tick(&mut engine);
    }
    assert_eq!(engine.playhead().state, PlayState::Paused);
    let got = drain(&events);
    // Playing on, the sought frame may not be decoded by its tick: then the first picture
    // is a later one, and `exact` says so.
    let seek = got
        .iter()
        .find_map(|e| match e {
            EngineEvent::SeekDone { frame, exact } => Some((*frame, *exact)),
            _ => None,
        })
        .expect("a SeekDone");
    assert!(
        (30..=33).contains(&seek.0) && seek.1 == (seek.0 == 30),
        "{got:?}"
    );
    assert_eq!(
        got,
        vec![
            EngineEvent::StateChanged {
                from: PlayState::Paused,
                to: PlayState::Playing
            },
            EngineEvent::SeekDone {
                frame: seek.0,
                exact: seek.1
            },
            EngineEvent::EndOfTimeline { frame: 39 },
            EngineEvent::StateChanged {
                from: PlayState::Playing,
                to: PlayState::Paused
            },
        ]
    );
    // Frame events only when asked for: one per picture.
    engine.set_frame_events(true);
    engine.seek_frame(0);
    engine.play();
    for _ in 0..3 {
        tick(&mut engine);
    }
    let frames: Vec<u64> = drain(&events)
        .into_iter()
        .filter_map(|e| match e {
            EngineEvent::FramePresented {
                frame,
                repeated: false,
                ..
            } => Some(frame),
            _ => None,
        })
        .collect();
    assert_eq!(frames, [0, 1, 2]);
    assert_eq!(engine.events_dropped(), 0);
}

/// A copy of a 90-frame clip in a temporary folder (to cut short while it plays), and the
/// clip's bytes (to cut it from, and to restore it).
fn copy_to_cut(name: &str) -> (tempfile::TempDir, std::path::PathBuf, Vec<u8>) {
    let src = common::clip(name, 160, 90, Rational::integer(30), 90, 10);
    let dir = tempfile::tempdir().expect("tmp");
    let clip = dir.path().join("clip.mp4");
    std::fs::copy(&src, &clip).expect("copy");
    let bytes = std::fs::read(&src).expect("read");
    (dir, clip, bytes)
}

/// Cuts `clip` to the first third of `bytes`.
fn cut(clip: &std::path::Path, bytes: &[u8]) {
    std::fs::write(clip, &bytes[..bytes.len() / 3]).expect("truncate");
}

/// The clip's file is cut short while the engine has it open: playing over the lost part
/// gives exactly one `Error` event, with the decoder's text; the playhead still reaches the
/// end.
#[test]
fn a_file_truncated_during_playback_is_reported_once_with_its_text() {
    let (_dir, clip, bytes) = copy_to_cut("ev-cut-src.mp4");
    let mut engine = open(&clip, 90);
    let events = engine.events();
    cut(&clip, &bytes);
    engine.play();
    for _ in 0..100 {
        tick(&mut engine);
    }
    assert_eq!(engine.playhead().frame, 89, "the playhead stopped");
    let errors: Vec<(std::path::PathBuf, String)> = drain(&events)
        .into_iter()
        .filter_map(|e| match e {
            EngineEvent::Error { media, error } => Some((media, error)),
            _ => None,
        })
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, clip);
    assert!(!errors[0].1.is_empty());
    assert!(engine.metrics().decode_errors >= 1);
}

/// A clip whose file is cut mid-playback shows the media-offline picture (and says so in its
/// layer) while the rest plays on; restored, the file decodes again on the next seek, with a
/// `MediaRecovered` event and the right pictures.
#[test]
fn offline_media_shows_the_offline_picture_and_recovers_when_the_file_returns() {
    use framelock::{MEDIA_OFFLINE_YUV, OFFLINE_INDEX, PresentedFrame, testcard};
    let (_dir, clip, bytes) = copy_to_cut("ev-offline-src.mp4");
    let shown: Arc<std::sync::Mutex<Vec<PresentedFrame>>> = Arc::default();
    let sink = shown.clone();
    let mut engine = PlaybackEngine::open(
        &project(&clip, 90),
        EngineOptions::default(),
        Arc::new(VirtualClock::new()),
        move |f| sink.lock().unwrap().push(f),
    )
    .expect("open");
    let events = engine.events();
    cut(&clip, &bytes);
    engine.play();
    for _ in 0..100 {
        tick(&mut engine);
    }
    assert_eq!(engine.playhead().frame, 89, "the timeline played on");
    let last = shown.lock().unwrap().last().cloned().expect("pictures");
    assert_eq!(
        last.layers[0].source_frame, OFFLINE_INDEX,
        "{:?}",
        last.layers
    );
    let (w, h) = (last.picture.width as usize, last.picture.height as usize);
    let y = last.picture.planes[0][h / 2 * w + w / 2];
    assert!(y.abs_diff(MEDIA_OFFLINE_YUV[0]) <= 2, "luma {y}");
    assert!(
        drain(&events)
            .iter()
            .any(|e| matches!(e, EngineEvent::Error { .. }))
    );

    // The file comes back: the next seek decodes it.
    std::fs::write(&clip, &bytes).expect("restore");
    engine.seek_frame(80);
    for _ in 0..4 {
        tick(&mut engine);
    }
    let last = shown.lock().unwrap().last().cloned().expect("pictures");
    assert_eq!(last.layers[0].source_frame, 80);
    assert_eq!(testcard::read_index(&last.picture), Some(80));
    assert!(
        drain(&events)
            .iter()
            .any(|e| matches!(e, EngineEvent::MediaRecovered { media } if *media == clip))
    );
}

/// Seeking while paused waits for the new picture; it drops nothing.
#[test]
fn seeks_while_paused_are_not_drops() {
    let clip = common::clip("ev-paused.mp4", 160, 90, Rational::integer(30), 60, 10);
    let mut engine = open(&clip, 60);
    let events = engine.events();
    for f in [45, 5, 33, 12] {
        engine.seek_frame(f);
        // The tick right after the seek finds nothing decoded yet.
        engine.tick();
        assert!(engine.wait_idle(Duration::from_secs(60)));
        for _ in 0..3 {
            tick(&mut engine);
        }
    }
    let m = engine.metrics();
    assert_eq!((m.dropped, m.held), (0, 0), "{m:?}");
    let seeks: Vec<EngineEvent> = drain(&events)
        .into_iter()
        .filter(|e| matches!(e, EngineEvent::SeekDone { .. }))
        .collect();
    assert_eq!(
        seeks,
        [45, 5, 33, 12]
            .map(|frame| EngineEvent::SeekDone { frame, exact: true })
            .to_vec()
    );
}

/// A command is visible in the very next property snapshot.
#[test]
fn the_player_playhead_agrees_with_the_last_command() {
    let clip = common::clip("ev-player.mp4", 160, 90, Rational::integer(30), 60, 10);
    let player = Player::open(&project(&clip, 60), EngineOptions::default(), |_| {}).expect("open");
    let events = player.events();
    for _ in 0..20 {
        player.play();
        assert_eq!(player.playhead().unwrap().state, PlayState::Playing);
        player.seek_frame(20);
        assert_eq!(player.playhead().unwrap().frame, 20);
        player.pause();
        assert_eq!(player.playhead().unwrap().state, PlayState::Paused);
    }
    // The events say the same, from the player's thread.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut got = Vec::new();
    while got.len() < 2 && std::time::Instant::now() < deadline {
        if let Ok(e) = events.recv_timeout(Duration::from_millis(100))
            && matches!(e, EngineEvent::StateChanged { .. })
        {
            got.push(e);
        }
    }
    assert!(!got.is_empty(), "no state events");
}

/// Rates and frame times count playing time only: a long pause in the middle changes
/// neither the presented rate nor the frame-time percentiles.
#[test]
fn metrics_leave_paused_time_out() {
    let clip = common::clip("ev-rate.mp4", 160, 90, Rational::integer(30), 90, 10);
    let mut engine = open(&clip, 90);
    tick(&mut engine);
    engine.play();
    for _ in 0..20 {
        tick(&mut engine);
    }
    engine.pause();
    for _ in 0..90 {
        tick(&mut engine); // three seconds paused
    }
    engine.seek_frame(50); // a seek while paused presents a picture: not a frame interval
    for _ in 0..3 {
        tick(&mut engine);
    }
    engine.play();
    for _ in 0..20 {
        tick(&mut engine);
    }
    let m = engine.metrics();
    assert!((m.presented_fps - 30.0).abs() < 0.5, "{m:?}");
    assert!((m.frame_ms_p99 - 1000.0 / 30.0).abs() < 1e-3, "{m:?}");
}

/// At half speed each frame is due on two ticks: the second time it is flagged as a repeat
/// and not counted as a new picture.
#[test]
fn half_speed_repeats_are_flagged() {
    let clip = common::clip("ev-half.mp4", 160, 90, Rational::integer(30), 60, 10);
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    let mut engine = PlaybackEngine::open(
        &project(&clip, 60),
        EngineOptions::default(),
        Arc::new(VirtualClock::new()),
        move |f| {
            sink.lock().unwrap().push((f.timeline_frame, f.repeated));
        },
    )
    .expect("open");
    tick(&mut engine);
    engine.set_rate(0.5);
    engine.play();
    let before = engine.metrics().presented;
    for _ in 0..20 {
        tick(&mut engine);
    }
    let seen = seen.lock().unwrap().clone();
    let fresh: Vec<u64> = seen.iter().filter(|(_, r)| !r).map(|(f, _)| *f).collect();
    let mut dedup = fresh.clone();
    dedup.dedup();
    assert_eq!(fresh, dedup, "a frame sent twice as new: {seen:?}");
    assert!(seen.iter().filter(|(_, r)| *r).count() >= 8, "{seen:?}");
    assert_eq!(
        engine.metrics().presented - before,
        fresh.len() as u64,
        "{seen:?}"
    );
}

/// Frame steps from the host (shown exactly, visible in the next snapshot), the getters, and
/// a cache cleared without waiting, reported by event.
#[test]
fn the_player_steps_frames_and_clears_caches_without_waiting() {
    let clip = common::clip("ev-step.mp4", 160, 90, Rational::integer(30), 60, 10);
    let shown = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = shown.clone();
    let player = Player::open(&project(&clip, 60), EngineOptions::default(), move |f| {
        if !f.repeated {
            sink.lock().unwrap().push(f.timeline_frame);
        }
    })
    .expect("open");
    assert_eq!(player.duration_frames(), 60);
    assert_eq!(player.frame_rate(), Rational::integer(30));
    assert_eq!(player.timecode(45), "00:00:01:15");
    let events = player.events();
    player.seek_frame(10);
    player.step(1);
    player.step(1);
    player.step(-5);
    let p = player.playhead().unwrap();
    assert_eq!((p.frame, p.state), (7, PlayState::Paused));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !shown.lock().unwrap().contains(&7) {
        assert!(std::time::Instant::now() < deadline, "frame 7 never shown");
        std::thread::sleep(Duration::from_millis(10));
    }
    player.clear_cache_later(framelock::ClearCache::Decoded);
    let cleared = loop {
        let e = events
            .recv_timeout(Duration::from_secs(30))
            .expect("a CacheCleared event");
        if let EngineEvent::CacheCleared {
            ram_entries, error, ..
        } = e
        {
            break (ram_entries, error);
        }
    };
    assert_eq!(cleared.1, None);
    assert!(cleared.0 >= 1, "{cleared:?}");
}
