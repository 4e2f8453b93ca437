//! Plays a generated two-clip timeline on a [`Player`] (its own thread, wall clock) and prints
//! what a host sees: frames arriving at 30 fps, a seek, a reverse run, and the metrics.
//!
//! ```sh
//! cargo run --release --example play
//! ```

#![allow(clippy::print_stdout, reason = "an example prints")]

use std::sync::mpsc::sync_channel;
use std::time::Duration;

use framelock::{
    ClipDef, EngineOptions, GenerateOptions, Player, Project, Rational, TrackDef,
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

    // Two clips of the same file with a cut at frame 60: the second starts at source frame 0.
    let mut project = Project::new(Rational::integer(30), 640, 360);
    project.tracks.push(TrackDef {
        name: "v1".into(),
        opacity: 1.0,
        clips: vec![
            ClipDef {
                media: media.clone(),
                start: 0,
                duration: 60,
                source_in: 30,
                enabled: true,
                effects: Default::default(),
                audio: Default::default(),
            },
            ClipDef {
                media,
                start: 60,
                duration: 60,
                source_in: 0,
                enabled: true,
                effects: Default::default(),
                audio: Default::default(),
            },
        ],
    });

    // The sink runs on the player's thread: hand frames to the UI over a bounded channel.
    let (tx, rx) = sync_channel(64);
    let player = Player::open(&project, EngineOptions::default(), move |frame| {
        let _ = tx.try_send(frame);
    })?;
    player.play();
    std::thread::sleep(Duration::from_secs(1));
    player.seek(3.0); // frame 90 exactly
    std::thread::sleep(Duration::from_millis(300));
    player.set_rate(-1.0);
    std::thread::sleep(Duration::from_millis(700));
    player.pause();

    for f in rx.try_iter() {
        let shown = testcard::read_index(&f.picture);
        println!(
            "tick {:>3}  timeline frame {:>3}  source frame {:?}",
            f.tick, f.timeline_frame, shown
        );
    }
    let m = player.metrics();
    println!(
        "presented {}  dropped {}  held {}  cache hit rate {:.0}%  tick p99 {:.2} ms",
        m.presented,
        m.dropped,
        m.held,
        m.cache_hit_rate * 100.0,
        m.tick_ms_p99
    );
    Ok(())
}
