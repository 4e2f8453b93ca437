//! `framelock monitor [PROJECT]`: a live terminal dashboard (ratatui) while a scene plays —
//! FPS, RAM against the budget, cache hit rate and GPU gauges, the timeline performance bar
//! with the playhead, and the optimization report's suggestions. `q` quits.
//!
//! [`Dashboard`] is plain data taken from the engine; [`render`] draws it on any ratatui
//! backend, so the test draws it on a `TestBackend` and reads the buffer.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use framelock::{
    BarColor, DecoderRegistry, EngineOptions, GpuStatus, PlayState, PlaybackEngine, Project,
    SegmentCost, SegmentStatus, WallClock,
};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Gauge, List, ListItem, Paragraph};

/// Arguments of `monitor`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A project JSON (default: the built-in `1080p-1track` scene, generated if missing).
    project: Option<PathBuf>,
    /// Where the built-in scene's media are kept.
    #[arg(long, default_value = "bench-media")]
    media_dir: PathBuf,
    /// Stop after this many seconds (default: until `q`).
    #[arg(long)]
    seconds: Option<f64>,
    /// Background render while it plays: off, manual (nothing is queued) or smart (the red
    /// stretches, after 3 s without a key pressed); the timeline bar shows what is rendered.
    #[arg(long, default_value = "off")]
    background: String,
}

/// What the dashboard shows (one refresh).
#[derive(Clone, Debug, Default)]
pub struct Dashboard {
    /// Scene name.
    pub title: String,
    /// Presented frames per second (recent), and the target.
    pub fps: (f64, f64),
    /// Dropped + held frames so far.
    pub late: u64,
    /// Pool bytes accounted, and the budget.
    pub ram: (usize, usize),
    /// Share of frames ready when needed.
    pub hit_rate: f64,
    /// GPU line.
    pub gpu: String,
    /// Audio line: where the sound plays and which clock leads.
    pub audio: String,
    /// Quality line: the adaptive-quality rung and why it was taken.
    pub quality: String,
    /// Timeline performance map.
    pub map: Vec<SegmentCost>,
    /// The render bar sampled across the timeline: (frame, colour), in order; empty: the bar
    /// follows the map alone.
    pub bar: Vec<(u64, BarColor)>,
    /// Playhead and timeline length, frames.
    pub playhead: (u64, u64),
    /// Suggestions, one line each.
    pub suggestions: Vec<String>,
    /// Media errors seen while playing ("file: what failed"), shown above the suggestions.
    pub errors: Vec<String>,
}

impl Dashboard {
    /// Reads the engine (metrics, cache, the optimization report).
    pub fn from_engine(title: &str, engine: &mut PlaybackEngine, fps: f64) -> Self {
        let m = engine.get_metrics();
        let report = engine.run_optimization();
        let p = engine.playhead();
        let mut samples: Vec<u64> = (0..BAR_SAMPLES)
            .map(|i| i * p.duration / BAR_SAMPLES)
            .collect();
        samples.dedup();
        let bar = samples
            .iter()
            .copied()
            .zip(engine.render_bar_at(&samples))
            .collect();
        Self {
            title: title.to_string(),
            fps: (fps, engine.frame_rate().as_f64()),
            late: m.playback.dropped + m.playback.held,
            ram: (m.cache.memory.accounted_bytes(), m.budget.max_memory),
            hit_rate: m.playback.cache_hit_rate,
            gpu: match m.gpu {
                GpuStatus::Unavailable { reason } => format!("GPU unavailable: {reason}"),
                GpuStatus::NotStarted => "idle: no effects yet".into(),
                GpuStatus::Opening => "opening (effects on the CPU path)".into(),
                GpuStatus::Active {
                    devices,
                    software,
                    effects_on,
                    choice,
                    gpu_frames,
                    lod,
                    last_render_ms,
                    ..
                } => format!(
                    "{}{}: effects on the {}, {gpu_frames} GPU frames, {last_render_ms:.1} ms, LOD 1/{}",
                    devices.join(", "),
                    if software { " (software)" } else { "" },
                    match (effects_on, choice.is_some()) {
                        (framelock::RenderPath::Gpu, _) => "GPU",
                        (framelock::RenderPath::Cpu, true) => "CPU (measured faster)",
                        (framelock::RenderPath::Cpu, false) => "CPU (measuring)",
                    },
                    lod.divisor()
                ),
            },
            audio: match (engine.audio_output(), engine.audio_sink_name()) {
                (None, _) => "none in the project".into(),
                (Some(_), None) => "not played (no output): video on the wall clock".into(),
                (Some(out), Some(name)) => format!(
                    "{name}: {}, {} underruns",
                    if engine.audio_is_master() {
                        "the audio clock leads"
                    } else {
                        "the wall clock leads"
                    },
                    out.underruns()
                ),
            },
            quality: quality_line(&engine.adaptive_quality()),
            map: report.timeline,
            bar,
            playhead: (p.frame, p.duration),
            suggestions: report.suggestions.into_iter().map(|s| s.message).collect(),
            errors: Vec::new(),
        }
    }
}

/// Frames the timeline bar is sampled at (the render bar needs each frame's content key).
const BAR_SAMPLES: u64 = 256;

/// "full" or "rung 2 of 4: 540p, effects LOD 1/2 (why)".
fn quality_line(q: &framelock::AdaptiveQuality) -> String {
    if q.level == 0 {
        return format!("full ({} changes)", q.changes);
    }
    let size = q
        .preview_height
        .map_or_else(|| "viewer size".to_string(), |h| format!("{h}p"));
    let why = q
        .last
        .as_ref()
        .map(|c| format!(" ({})", c.reason))
        .unwrap_or_default();
    format!(
        "rung {} of {}: {size}, effects LOD 1/{}{why}",
        q.level,
        q.levels - 1,
        q.step.effect_lod.divisor()
    )
}

fn gauge<'a>(title: &'a str, ratio: f64, label: String, colour: Color) -> Gauge<'a> {
    Gauge::default()
        .block(Block::bordered().title(title))
        .gauge_style(Style::new().fg(colour))
        .ratio(ratio.clamp(0.0, 1.0))
        .label(label)
}

/// Draws `d` over the whole frame.
pub fn render(frame: &mut Frame, d: &Dashboard) {
    let [head, sound, gauges, bar, list] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(3),
        Constraint::Length(4),
        Constraint::Min(3),
    ])
    .areas(frame.area());
    frame.render_widget(
        Paragraph::new(format!(
            "framelock monitor: {}  (q quits)  late frames: {}",
            d.title, d.late
        )),
        head,
    );
    frame.render_widget(
        Paragraph::new(format!("audio: {}   quality: {}", d.audio, d.quality)),
        sound,
    );
    let [fps, ram, cache, gpu] = Layout::horizontal([Constraint::Ratio(1, 4); 4]).areas(gauges);
    let fps_ok = d.fps.0 >= d.fps.1 * 0.95;
    frame.render_widget(
        gauge(
            "FPS",
            d.fps.0 / d.fps.1.max(1e-9),
            format!("{:.1}/{:.0}", d.fps.0, d.fps.1),
            if fps_ok { Color::Green } else { Color::Red },
        ),
        fps,
    );
    frame.render_widget(
        gauge(
            "RAM",
            d.ram.0 as f64 / d.ram.1.max(1) as f64,
            format!("{}/{} MiB", d.ram.0 >> 20, d.ram.1 >> 20),
            Color::Cyan,
        ),
        ram,
    );
    frame.render_widget(
        gauge(
            "cache",
            d.hit_rate,
            format!("{:.1}% hits", d.hit_rate * 100.0),
            Color::Yellow,
        ),
        cache,
    );
    frame.render_widget(
        Paragraph::new(d.gpu.clone()).block(Block::bordered().title("GPU")),
        gpu,
    );
    // The render bar: one cell per stretch of frames, green where its pictures are rendered,
    // red where it cannot play in real time (the performance map) and is not rendered,
    // yellow elsewhere; the playhead under it.
    let width = bar.width.saturating_sub(2).max(1) as u64;
    let duration = d.playhead.1.max(1);
    let cells: Vec<Span> = (0..width)
        .map(|i| {
            let t = i * duration / width;
            let sampled = d.bar.iter().take_while(|(f, _)| *f <= t).last();
            let colour = match sampled.map(|&(_, c)| c) {
                Some(BarColor::Green) => Color::Green,
                Some(BarColor::Yellow) => Color::Yellow,
                Some(BarColor::Red) => Color::Red,
                None => match d
                    .map
                    .iter()
                    .find(|s| s.start <= t && t < s.end)
                    .map(|s| s.status)
                {
                    Some(SegmentStatus::Smooth) => Color::Yellow,
                    Some(SegmentStatus::NeedsOptimization) => Color::Red,
                    None => Color::DarkGray,
                },
            };
            Span::styled("█", Style::new().fg(colour))
        })
        .collect();
    let at = (d.playhead.0 * width / duration).min(width - 1) as usize;
    let marker = format!("{}▲ frame {}", " ".repeat(at), d.playhead.0);
    frame.render_widget(
        Paragraph::new(vec![Line::from(cells), Line::from(marker)]).block(Block::bordered().title(
            "timeline (green: rendered, yellow: plays in real time, red: cannot, not rendered)",
        )),
        bar,
    );
    let mut items: Vec<ListItem> = d
        .errors
        .iter()
        .map(|e| ListItem::new(format!("error: {e}")).style(Style::new().fg(Color::Red)))
        .collect();
    if d.suggestions.is_empty() {
        items.push(ListItem::new("nothing to suggest"));
    } else {
        items.extend(
            d.suggestions
                .iter()
                .map(|s| ListItem::new(format!("• {s}"))),
        );
    }
    frame.render_widget(
        List::new(items).block(Block::bordered().title("suggestions")),
        list,
    );
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() {
        eprintln!(
            "framelock monitor draws a live dashboard and needs a terminal (stdout is not one); \
             `framelock bench` plays a scene and prints a report instead"
        );
        std::process::exit(2);
    }
    let (project, title) = match &args.project {
        Some(p) => {
            let json =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            let project =
                Project::from_json(&json).with_context(|| format!("project {}", p.display()))?;
            (project, p.display().to_string())
        }
        None => (
            crate::scene::built_in_project("1080p-1track", &args.media_dir)?,
            "1080p-1track".to_string(),
        ),
    };
    let clock = Arc::new(WallClock::new());
    let mut engine = PlaybackEngine::open(
        &project,
        EngineOptions {
            registry: DecoderRegistry::new(),
            ..EngineOptions::default()
        },
        clock.clone(),
        |_| {},
    )?;
    engine.set_background_render(match args.background.as_str() {
        "off" => framelock::BackgroundRender::Off,
        "manual" => framelock::BackgroundRender::Manual,
        "smart" => framelock::BackgroundRender::Smart,
        other => anyhow::bail!("unknown background mode {other:?}: off, manual, smart"),
    });
    let no_sound = play_sound(&mut engine);
    let events = engine.events();
    // Media errors, each file once: shown while playing, printed after.
    let mut errors: Vec<(PathBuf, String)> = Vec::new();
    let mut terminal = ratatui::init();
    let result = (|| -> anyhow::Result<()> {
        let start = Instant::now();
        let mut lp = MonitorLoop::new(clock);
        engine.play();
        loop {
            lp.tick(&mut engine);
            for e in events.try_iter() {
                if let framelock::EngineEvent::Error { media, error } = e
                    && !errors.iter().any(|(m, _)| *m == media)
                {
                    errors.push((media, error));
                }
            }
            lp.maybe_draw(&mut engine, |engine, fps| {
                let mut d = Dashboard::from_engine(&title, engine, fps);
                d.errors = errors
                    .iter()
                    .map(|(m, e)| format!("{}: {e}", m.display()))
                    .collect();
                if let Some(why) = &no_sound {
                    d.audio = why.clone();
                }
                terminal.draw(|f| render(f, &d))?;
                Ok(())
            })?;
            if ratatui::crossterm::event::poll(Duration::ZERO)?
                && let ratatui::crossterm::event::Event::Key(k) = ratatui::crossterm::event::read()?
                && k.code == ratatui::crossterm::event::KeyCode::Char('q')
            {
                return Ok(());
            }
            if args
                .seconds
                .is_some_and(|s| start.elapsed().as_secs_f64() >= s)
            {
                return Ok(());
            }
        }
    })();
    ratatui::restore();
    result?;
    // Frames that failed to decode were never shown: say which and why, and fail.
    let failed = engine.metrics().decode_errors;
    if failed > 0 || !errors.is_empty() {
        for (media, error) in &errors {
            eprintln!("error: {}: {error}", media.display());
        }
        anyhow::bail!(
            "{failed} source frame(s) failed to decode{}: they were shown as media offline",
            if errors.is_empty() {
                String::new()
            } else {
                format!(" in {} file(s)", errors.len())
            }
        );
    }
    Ok(())
}

/// Plays the project's sound on the default output device (the `cpal` feature): `None` when
/// it plays (or there is none to play), else why not, for the dashboard.
fn play_sound(engine: &mut PlaybackEngine) -> Option<String> {
    engine.audio_output()?;
    #[cfg(feature = "cpal")]
    let why = match engine.set_audio_sink(Box::new(framelock::CpalSink::new())) {
        Ok(_) => return None,
        Err(e) => format!("not played ({e}): video on the wall clock"),
    };
    #[cfg(not(feature = "cpal"))]
    let why = "not played (built without the `cpal` feature): video on the wall clock".to_string();
    Some(why)
}

/// The monitor's loop: ticks the engine (looping at the end) and, every quarter second of
/// the engine's clock, measures the presented rate and draws. Drawing is not taken off the
/// clock: the next tick sleeps less, or, if a draw outlasts a frame, that tick is late and
/// counted so. (Re-anchoring the clock after each draw made every frame after a draw early,
/// and the monitor played ~10% fast.)
struct MonitorLoop {
    clock: Arc<dyn framelock::Clock>,
    last_draw: Option<(Duration, u64)>,
}

impl MonitorLoop {
    fn new(clock: Arc<dyn framelock::Clock>) -> Self {
        Self {
            clock,
            last_draw: None,
        }
    }

    fn tick(&mut self, engine: &mut PlaybackEngine) {
        engine.tick();
        if engine.playhead().state != PlayState::Playing {
            engine.seek_frame(0);
            engine.play();
            engine.resync();
        }
    }

    /// Draws when a quarter second has passed since the last draw, with the rate presented
    /// since.
    fn maybe_draw(
        &mut self,
        engine: &mut PlaybackEngine,
        draw: impl FnOnce(&mut PlaybackEngine, f64) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let now = self.clock.now();
        let presented = engine.metrics().presented;
        let Some((at, count)) = self.last_draw else {
            self.last_draw = Some((now, presented));
            return Ok(());
        };
        let since = now.saturating_sub(at);
        if since < Duration::from_millis(250) {
            return Ok(());
        }
        let fps = (presented - count) as f64 / since.as_secs_f64();
        draw(engine, fps)?;
        self.last_draw = Some((now, presented));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn text(t: &Terminal<TestBackend>) -> Vec<String> {
        let buf = t.backend().buffer();
        (0..buf.area.height)
            .map(|y| {
                (0..buf.area.width)
                    .map(|x| buf[(x, y)].symbol().to_string())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn the_dashboard_shows_gauges_the_timeline_bar_and_suggestions() {
        let d = Dashboard {
            title: "scene".into(),
            fps: (24.0, 30.0),
            late: 7,
            ram: (512 << 20, 1024 << 20),
            hit_rate: 0.9,
            gpu: "GPU unavailable: CPU path".into(),
            audio: "null: the audio clock leads, 0 underruns".into(),
            quality: "rung 2 of 3: 540p".into(),
            map: vec![
                SegmentCost {
                    start: 0,
                    end: 50,
                    layers: 1,
                    cost_ms: 10.0,
                    budget_ms: 33.3,
                    status: SegmentStatus::Smooth,
                    estimated: false,
                },
                SegmentCost {
                    start: 50,
                    end: 100,
                    layers: 3,
                    cost_ms: 80.0,
                    budget_ms: 33.3,
                    status: SegmentStatus::NeedsOptimization,
                    estimated: false,
                },
            ],
            // Frames 0..20 rendered; the rest as the map says.
            bar: vec![
                (0, BarColor::Green),
                (20, BarColor::Yellow),
                (50, BarColor::Red),
            ],
            playhead: (75, 100),
            suggestions: vec!["switch to the performance mode".into()],
            errors: vec!["a.mp4: damaged bitstream at frame 12".into()],
        };
        let mut t = Terminal::new(TestBackend::new(100, 16)).expect("terminal");
        t.draw(|f| render(f, &d)).expect("draws");
        let lines = text(&t);
        let all = lines.join("\n");
        for want in [
            "FPS",
            "24.0/30",
            "RAM",
            "512/1024 MiB",
            "cache",
            "90.0% hits",
            "GPU",
            "late frames: 7",
            "audio: null: the audio clock leads",
            "quality: rung 2 of 3: 540p",
            "timeline",
            "switch to the performance mode",
            "error: a.mp4: damaged bitstream at frame 12",
        ] {
            assert!(all.contains(want), "{want:?} missing:\n{all}");
        }
        // The bar: green cells for frames 0..20 (rendered), yellow to 50 (smooth), red for
        // 50..100, the playhead at 3/4.
        let buf = t.backend().buffer();
        let bar_y = lines
            .iter()
            .position(|l| l.contains('▲'))
            .expect("playhead line") as u16
            - 1;
        let cells: Vec<Color> = (1..99).map(|x| buf[(x, bar_y)].fg).collect();
        assert_eq!(cells[0], Color::Green);
        assert_eq!(cells[30], Color::Yellow);
        assert_eq!(cells[cells.len() - 1], Color::Red);
        let split = cells
            .iter()
            .position(|c| *c == Color::Red)
            .expect("red part");
        assert!((48..=50).contains(&split), "{split}");
        let marker = &lines[bar_y as usize + 1];
        let at = marker.find('▲').expect("playhead marker");
        assert!(
            (70..=78).contains(&marker[..at].chars().count()),
            "{marker}"
        );
    }

    #[test]
    fn the_dashboard_follows_a_playing_engine() {
        use framelock::{ClipDef, GenerateOptions, Rational, TrackDef, VirtualClock};
        let dir = tempfile::tempdir().expect("tmp");
        let clip = dir.path().join("c.mp4");
        let mut o = GenerateOptions::new(320, 180, Rational::integer(30), 1.0);
        o.frames = 30;
        framelock::generate_test_clip(&clip, &o, |_, _| {}).expect("clip");
        let mut p = Project::new(Rational::integer(30), 320, 180);
        p.tracks.push(TrackDef {
            name: "v".into(),
            opacity: 1.0,
            clips: vec![ClipDef {
                media: clip,
                start: 0,
                duration: 30,
                source_in: 0,
                enabled: true,
                effects: Default::default(),
                audio: Default::default(),
            }],
        });
        let mut engine = PlaybackEngine::open(
            &p,
            EngineOptions::default(),
            Arc::new(VirtualClock::new()),
            |_| {},
        )
        .expect("open");
        engine.play();
        for _ in 0..10 {
            engine.tick();
            engine.wait_decodes(Duration::from_secs(30));
        }
        let d = Dashboard::from_engine("tiny", &mut engine, 30.0);
        assert_eq!(d.playhead, (9, 30)); // the first tick shows frame 0
        assert!(d.ram.0 > 0 && d.hit_rate > 0.5, "{d:?}");
        let mut t = Terminal::new(TestBackend::new(100, 16)).expect("terminal");
        t.draw(|f| render(f, &d)).expect("draws");
        let all = text(&t).join("\n");
        assert!(all.contains("tiny") && all.contains("▲ frame 9"), "{all}");
        assert!(all.contains("idle: no effects"), "{all}");
        // Rendered in the background, the bar turns green.
        assert!(
            d.bar.iter().all(|&(_, c)| c != BarColor::Green),
            "{:?}",
            d.bar
        );
        engine.pause();
        engine.set_background_render(framelock::BackgroundRender::Manual);
        engine.prioritize_render(0..30);
        let deadline = Instant::now() + Duration::from_secs(60);
        while engine.render_progress().done < 30 {
            assert!(Instant::now() < deadline, "never rendered");
            engine.tick();
            std::thread::sleep(Duration::from_millis(5));
        }
        let d = Dashboard::from_engine("tiny", &mut engine, 30.0);
        assert!(
            d.bar.iter().all(|&(_, c)| c == BarColor::Green),
            "{:?}",
            d.bar
        );
    }

    /// On the virtual clock, with every draw taking 8 ms of it, the monitor presents 30
    /// frames per second of clock time — not more — and its gauge says so.
    #[test]
    fn the_monitor_plays_at_the_real_rate() {
        use framelock::{ClipDef, Clock, GenerateOptions, Rational, TrackDef, VirtualClock};
        let dir = tempfile::tempdir().expect("tmp");
        let clip = dir.path().join("c.mp4");
        let mut o = GenerateOptions::new(160, 90, Rational::integer(30), 1.0);
        o.frames = 30;
        framelock::generate_test_clip(&clip, &o, |_, _| {}).expect("clip");
        let mut p = Project::new(Rational::integer(30), 160, 90);
        p.tracks.push(TrackDef {
            name: "v".into(),
            opacity: 1.0,
            clips: (0..4)
                .map(|i| ClipDef {
                    media: clip.clone(),
                    start: 30 * i,
                    duration: 30,
                    source_in: 0,
                    enabled: true,
                    effects: Default::default(),
                    audio: Default::default(),
                })
                .collect(),
        });
        let clock = Arc::new(VirtualClock::new());
        let mut engine = PlaybackEngine::open(&p, EngineOptions::default(), clock.clone(), |_| {})
            .expect("open");
        let mut lp = MonitorLoop::new(clock.clone());
        engine.play();
        let start = clock.now();
        let mut gauges = Vec::new();
        while clock.now() - start < Duration::from_secs(3) {
            lp.tick(&mut engine);
            engine.wait_decodes(Duration::from_secs(30));
            lp.maybe_draw(&mut engine, |_, fps| {
                gauges.push(fps);
                clock.set(clock.now() + Duration::from_millis(8));
                Ok(())
            })
            .expect("draw");
        }
        let presented = engine.metrics().presented;
        assert!((89..=91).contains(&presented), "{presented} frames in 3 s");
        assert!(gauges.len() >= 10, "{gauges:?}");
        for fps in &gauges[1..] {
            assert!((fps - 30.0).abs() < 4.5, "{gauges:?}");
        }
    }
}
