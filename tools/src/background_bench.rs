//! `bench --background`: what background render buys on a scene that cannot play in real
//! time, in one run, on the wall clock: the scene played without it; played while the queue
//! renders the whole timeline in the background (the queue yields to playback); rendered in
//! the background while paused (the time it takes); then played again from the rendered
//! tiers. Frames/s and drops of each pass.

use std::time::{Duration, Instant};

use framelock::{
    BackgroundOptions, BackgroundRender, EngineOptions, PlaybackEngine, Project, WallClock,
};

/// Where the after pass's pictures came from.
struct Sources {
    ram_hits: u64,
    disk_reads: u64,
    rendered_again: u64,
    disk_entries: usize,
}

/// One pass's figures.
struct Pass {
    fps: f64,
    dropped: u64,
    presented: u64,
    seconds: f64,
}

/// An engine for one pass; with a disk tier, each pass has a directory of its own under it
/// (no pass finds another's frames).
fn open(project: &Project, options: &EngineOptions, pass: &str) -> anyhow::Result<PlaybackEngine> {
    let mut options = options.clone();
    if let Some(d) = &mut options.disk_cache {
        d.dir = d.dir.join(pass);
    }
    let mut engine = PlaybackEngine::open(
        project,
        options,
        std::sync::Arc::new(WallClock::new()),
        |_| {},
    )?;
    engine.set_background_options(BackgroundOptions {
        idle_delay: Duration::ZERO,
        ..BackgroundOptions::default()
    });
    Ok(engine)
}

/// Plays the timeline from frame 0 to its end on the wall clock, after a preroll: the
/// first frame decoded and shown, and the workers idle (the render queue held meanwhile;
/// `queue` says whether it runs while playing).
fn play(engine: &mut PlaybackEngine, queue: bool) -> Pass {
    engine.pause_render_queue();
    engine.seek_frame(0);
    for _ in 0..3 {
        engine.tick();
        engine.wait_idle(Duration::from_secs(10));
    }
    if queue {
        engine.resume_render_queue();
    }
    let before = engine.metrics();
    engine.resync();
    engine.play();
    let start = Instant::now();
    let limit = Duration::from_secs_f64(
        engine.playhead().duration as f64 / engine.frame_rate().as_f64() * 3.0 + 10.0,
    );
    while engine.playhead().state == framelock::PlayState::Playing && start.elapsed() < limit {
        engine.tick();
    }
    let seconds = start.elapsed().as_secs_f64();
    let after = engine.metrics();
    let presented = after.presented - before.presented;
    Pass {
        fps: presented as f64 / seconds.max(1e-9),
        dropped: after.dropped - before.dropped,
        presented,
        seconds,
    }
}

/// Runs the passes and prints the figures.
pub fn run(
    project: &Project,
    options: &EngineOptions,
    name: &str,
    json: bool,
) -> anyhow::Result<()> {
    let frames = project.duration_frames();
    let rate = project.frame_rate.as_f64();
    // 1. Without background render.
    let mut plain = open(project, options, "without")?;
    let without = play(&mut plain, false);
    drop(plain);
    // 2. Playing while the queue renders the whole timeline.
    let mut busy = open(project, options, "alongside")?;
    busy.set_background_render(BackgroundRender::Manual);
    busy.prioritize_render(0..frames);
    let alongside = play(&mut busy, true);
    let alongside_stats = busy.background_stats();
    drop(busy);
    // 3. Rendered in the background while paused, then played from the rendered tiers.
    let mut engine = open(project, options, "after")?;
    engine.set_background_render(BackgroundRender::Manual);
    engine.prioritize_render(0..frames);
    let start = Instant::now();
    loop {
        engine.tick();
        let p = engine.render_progress();
        if p.queued == 0 && p.rendering == 0 {
            break;
        }
        if start.elapsed() > Duration::from_secs(3600) {
            anyhow::bail!("background render did not finish in an hour: {p:?}");
        }
    }
    let render_seconds = start.elapsed().as_secs_f64();
    let stats = engine.background_stats();
    if let Some(e) = &stats.last_error {
        anyhow::bail!("background render failed: {e}");
    }
    let (stats_before, render_before) = (engine.cache_stats(), engine.render_stats());
    let after = play(&mut engine, false);
    // Where the after pass's pictures came from.
    let (cache, render) = (engine.cache_stats(), engine.render_stats());
    let sources = Sources {
        ram_hits: cache.ram_rendered.hits - stats_before.ram_rendered.hits,
        disk_reads: cache.disk_reads - stats_before.disk_reads,
        rendered_again: (render.cpu_frames + render.gpu_frames)
            - (render_before.cpu_frames + render_before.gpu_frames),
        disk_entries: cache.disk.map_or(0, |d| d.tier.entries),
    };
    if json {
        let pass = |p: &Pass| serde_json::json!({"fps": p.fps, "dropped": p.dropped, "presented": p.presented, "seconds": p.seconds});
        let v = serde_json::json!({
            "scene": name,
            "frames": frames,
            "rate": rate,
            "without_background": pass(&without),
            "with_queue_working": pass(&alongside),
            "queue_frames_while_playing": alongside_stats.frames,
            "queue_yielded_ticks": alongside_stats.yielded_ticks,
            "background_render_seconds": render_seconds,
            "background_frames": stats.frames,
            "after_background_render": pass(&after),
            "after_ram_hits": sources.ram_hits,
            "after_disk_reads": sources.disk_reads,
            "after_rendered_again": sources.rendered_again,
            "disk_entries": sources.disk_entries,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let line = |what: &str, p: &Pass| {
            println!(
                "{what:<34} {:6.2} fps  {:4} dropped  {:5} presented in {:.1} s",
                p.fps, p.dropped, p.presented, p.seconds
            );
        };
        println!("background render: {name}, {frames} frames at {rate:.3} fps");
        line("played, no background render", &without);
        line("played, queue working alongside", &alongside);
        println!(
            "{:<34} {} frames rendered while playing, gate shut {} ticks",
            "", alongside_stats.frames, alongside_stats.yielded_ticks
        );
        println!(
            "{:<34} {:.1} s for {} frames ({:.2} frames/s)",
            "rendered in the background, paused",
            render_seconds,
            stats.frames,
            stats.frames as f64 / render_seconds.max(1e-9)
        );
        line("played after background render", &after);
        println!(
            "{:<34} {} RAM-tier hits, {} read from the disk tier ({} held), {} effects frames rendered again",
            "", sources.ram_hits, sources.disk_reads, sources.disk_entries, sources.rendered_again
        );
    }
    Ok(())
}
