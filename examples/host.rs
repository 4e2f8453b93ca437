//! What an editor embedding framelock writes: a [`Player`] on its own thread, frames handed to
//! the UI over a bounded channel, the engine's events instead of polling, sound on an output
//! (the default device with the `cpal` feature, else a [`NullSink`] in real time), a scrub
//! drag with audio snippets, frame steps with timecode, live edits with undo, and errors as
//! values.
//!
//! ```sh
//! cargo run --release --example host              # sound to nowhere (NullSink)
//! cargo run --release --example host --features cpal   # sound on the default device
//! ```
//!
//! The sound track is made with Debian's `ffmpeg` when it is installed (a 440 Hz tone);
//! without it the timeline is silent and the example says so.

#![allow(clippy::print_stdout, reason = "an example prints")]

use std::sync::mpsc::sync_channel;
use std::time::Duration;

use framelock::{
    AudioClipDef, AudioSink, AudioTrackDef, ClipDef, ClipRef, Edit, EngineEvent, EngineOptions,
    GenerateOptions, NullSink, Player, PlayerError, Project, Rational, TrackDef,
    generate_test_clip, testcard,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let media = dir.path().join("clip.mp4");
    generate_test_clip(
        &media,
        &GenerateOptions::new(640, 360, Rational::integer(30), 4.0),
        |_, _| {},
    )?;
    let mut project = Project::new(Rational::integer(30), 640, 360);
    project.tracks.push(TrackDef {
        name: "v1".into(),
        opacity: 1.0,
        clips: vec![ClipDef {
            media: media.clone(),
            start: 0,
            duration: 120,
            source_in: 0,
            enabled: true,
            effects: Default::default(),
            audio: Default::default(),
        }],
    });
    let tone = dir.path().join("tone.wav");
    let made = std::process::Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=4",
        ])
        .arg(&tone)
        .status()
        .is_ok_and(|s| s.success());
    if made {
        project
            .audio_tracks
            .push(AudioTrackDef::new(vec![AudioClipDef::new(tone, 0, 120)]));
    } else {
        println!("no ffmpeg on PATH: the timeline is silent");
    }

    // Errors are values: a clip longer than its media is refused at open, with the numbers.
    let mut too_long = project.clone();
    too_long.tracks[0].clips[0].duration = 500;
    match Player::open(&too_long, EngineOptions::default(), |_| {}) {
        Err(e @ PlayerError::ClipBeyondMedia { .. }) => println!("refused: {e}"),
        other => println!("unexpected: {:?}", other.map(|_| ())),
    }

    // Frames arrive on the player's thread at their deadlines: hand them to the UI thread.
    let (frames_tx, frames) = sync_channel(64);
    let mut player = Player::open(&project, EngineOptions::default(), move |frame| {
        let _ = frames_tx.try_send(frame);
    })?;
    let events = player.events();
    if player.audio_pull().is_some() {
        #[cfg(feature = "cpal")]
        let sink: Box<dyn AudioSink> = Box::new(framelock::CpalSink::new());
        #[cfg(not(feature = "cpal"))]
        let sink: Box<dyn AudioSink> = Box::new(NullSink::new());
        match player.set_audio_sink(sink) {
            Ok(name) => println!("sound on {name}"),
            Err(e) => {
                println!("no sound ({e}); playing it to nowhere instead");
                player.set_audio_sink(Box::new(NullSink::new()))?;
            }
        }
    }
    println!(
        "{} frames at {} fps",
        player.duration_frames(),
        player.frame_rate().as_f64()
    );

    player.play();
    std::thread::sleep(Duration::from_millis(700));
    player.pause();
    // A scrub drag: many positions, latest wins; each plays a short snippet of the sound.
    for s in 0..20 {
        player.scrub(1.0 + f64::from(s) * 0.05);
        std::thread::sleep(Duration::from_millis(15));
    }
    std::thread::sleep(Duration::from_millis(200));
    player.step(1);
    std::thread::sleep(Duration::from_millis(200));
    let at = player.playhead().map_or(0, |p| p.frame);
    println!("stepped to {} ({})", at, player.timecode(at));

    // Live edits, as a timeline UI makes them: split the clip under the playhead, hide the
    // right part, then undo both by applying the inverses the player answered with.
    let mut undo = Vec::new();
    undo.push(player.edit(Edit::SplitClip {
        clip: ClipRef::new(0, 0),
        at: at.max(1),
    })?);
    undo.push(player.edit(Edit::SetEnabled {
        clip: ClipRef::new(0, at.max(1)),
        enabled: false,
    })?);
    // A refused edit changes nothing and says why.
    if let Err(e) = player.edit(Edit::MoveClip {
        clip: ClipRef::new(0, 0),
        track: 0,
        start: 1,
    }) {
        println!("refused: {e}");
    }
    while let Some(inverse) = undo.pop() {
        player.edit(inverse)?;
    }
    println!(
        "after undo the project is as opened: {}",
        player.project()? == project
    );

    for event in events.try_iter() {
        match event {
            EngineEvent::SeekDone { frame, exact } => {
                println!("seek landed on {frame} (exact: {exact})")
            }
            other => println!("event: {other:?}"),
        }
    }
    let last = frames.try_iter().last();
    if let Some(f) = last {
        println!(
            "last frame shown: timeline {} = source frame {:?}",
            f.timeline_frame,
            testcard::read_index(&f.picture)
        );
    }
    let m = player.metrics();
    println!(
        "presented {} dropped {} (per playing second: {:.1} fps)",
        m.presented, m.dropped, m.presented_fps
    );
    Ok(())
}
