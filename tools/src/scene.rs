//! `framelock bench [SCENE]`: plays a scene on the wall clock, end to end, on media it
//! generates itself, and reports fps, drops, frame times, seek latency, cache hit rate,
//! decode throughput and peak memory.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use framelock::{
    AutoSwitchThresholds, ClipDef, DecoderRegistry, EngineOptions, GenerateOptions, PlayState,
    PlaybackEngine, PresentedFrame, Project, ProxyOptions, ProxyPriority, ProxyState, Rational,
    TrackDef, UseProxy, VideoReader, WallClock, generate_test_clip,
};

/// Arguments of `bench`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Built-in scene: 1080p-1track, 4k-3tracks-cuts, scrub-random, reverse.
    #[arg(default_value = "1080p-1track")]
    scene: String,
    /// Play a project JSON instead of a built-in scene.
    #[arg(long)]
    scene_file: Option<PathBuf>,
    /// Where generated media are kept between runs.
    #[arg(long, default_value = "bench-media")]
    media_dir: PathBuf,
    /// Decode worker threads (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// Play from proxies of this height (made first, in the media dir's `Proxies/`, unless
    /// fresh ones are there; the time it took is reported).
    #[arg(long)]
    proxy: Option<u32>,
    /// Playback resolution: composite the viewer picture at most this tall (default: the
    /// proxy height with --proxy, else the output size). 0 = full output size.
    #[arg(long)]
    preview: Option<u32>,
    /// Serve the profile live to `puffin_viewer` (default address 127.0.0.1:8585): every
    /// system, decode job and proxy range is a scope, every tick a frame.
    #[arg(long, num_args = 0..=1, default_missing_value = "127.0.0.1:8585", value_name = "ADDR")]
    puffin: Option<String>,
    /// Hold the last frame instead of dropping late ones.
    #[arg(long)]
    hold: bool,
    /// Turn the quality controller and the adaptive effect LOD off (`auto_reduce_quality`,
    /// `adaptive_effect_lod: false`): the baseline that shows what adaptive quality gains.
    #[arg(long)]
    no_adapt: bool,
    /// Memory budget in MiB (default 1024): every frame buffer is counted against it.
    #[arg(long, value_name = "MIB")]
    budget: Option<usize>,
    /// Keep a disk tier of the frame cache in this folder (L3; survives runs).
    #[arg(long, value_name = "DIR")]
    disk_cache: Option<PathBuf>,
    /// Disk tier limit in MiB.
    #[arg(long, default_value_t = 4096, value_name = "MIB")]
    disk_limit: u64,
    /// Disk tier payload compression: none or lz4.
    #[arg(long, default_value = "none")]
    compression: String,
    /// How to move over the scene, measuring the cache: `play` (one pass, the default),
    /// `second-pass` (play once to warm, measure a second pass), `pingpong` (scrub forward
    /// and back over the first 10 s, three round trips, measured after the first sweep),
    /// `reverse` (play backwards from the end).
    #[arg(long, default_value = "play")]
    pattern: String,
    /// Also write a self-contained HTML report (plots of frame time, its histogram, memory,
    /// cache hit rate and the timeline performance map) here, and its JSON beside it.
    #[arg(long, value_name = "FILE.html")]
    report: Option<PathBuf>,
    /// Put an effect stack on every clip: `grade`, `blur` (radius 8), `full` (grade, blur 4,
    /// sharpen, transform; upper tracks screen-blended). Effects run on the GPU when wgpu
    /// finds an adapter (lavapipe counts), else on the CPU path.
    #[arg(long, value_name = "STACK")]
    effects: Option<String>,
    /// Run the effects on the CPU path even when there is a GPU.
    #[arg(long)]
    cpu_effects: bool,
    /// Highest effect LOD: full, half or quarter (adaptive below it).
    #[arg(long, default_value = "full")]
    effect_lod: String,
    /// Render the whole scene offline (every frame, in order, on the playback systems) instead
    /// of playing it, then again with one decode worker, one render worker and a rayon pool of
    /// one thread, all pinned to one core: frames/s of both and their ratio.
    #[arg(long)]
    offline: bool,
    /// Export the scene to H.264 (segment-parallel, every core), then the same work naively
    /// (decode → composite → encode frame by frame, pinned to one core) and, for one-clip
    /// scenes, with ffmpeg (libx264 veryfast, same QP): frames/s of each and the ratios.
    #[arg(long)]
    export: bool,
    /// Plays the scene without background render, then while the queue renders the whole
    /// timeline alongside, then renders it in the background while paused (timed) and plays
    /// it again from the rendered tiers: frames/s and drops of each pass.
    #[arg(long)]
    background: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Check every exact picture shown: read its burned-in index (test-card media) and
    /// compare it with the source frame the timeline has at that frame. Wrong frames are
    /// listed and make the run fail; pictures whose index cannot be read (effects that blur
    /// it, translucent tracks) are counted apart.
    #[arg(long)]
    verify: bool,
}

/// A picture's timeline frame and the burned-in index read from it (`--verify`).
type IndexRead = (u64, Option<u64>);

/// What `--verify` found.
#[derive(Debug, Default)]
struct Verified {
    checked: u64,
    wrong: Vec<(u64, Option<u64>, u64)>,
    unreadable: u64,
}

/// The source frame the timeline shows at `t` when one opaque clip is on top there (`None`:
/// a gap, or a translucent top track whose picture is a blend). `rates` are the media's.
fn expected_source(
    project: &Project,
    rates: &std::collections::HashMap<PathBuf, Rational>,
    t: u64,
) -> Option<u64> {
    let mut top = None;
    for track in &project.tracks {
        if let Some(c) = track.clips.iter().find(|c| c.enabled && c.covers(t)) {
            if track.opacity >= 1.0 {
                top = Some(c);
            } else if track.opacity > 0.0 {
                top = None;
            }
        }
    }
    let c = top?;
    let rate = rates.get(&c.media).copied().unwrap_or(project.frame_rate);
    Some(c.source_frame(t, project.frame_rate, rate))
}

/// Compares the indexes read with the timeline.
fn verify(project: &Project, read: &[(u64, Option<u64>)]) -> Verified {
    let registry = DecoderRegistry::new();
    let rates = project
        .tracks
        .iter()
        .flat_map(|t| &t.clips)
        .filter_map(|c| {
            let info = framelock::probe(&c.media, &registry).ok()?;
            (info.video.frame_times.is_none()).then(|| (c.media.clone(), info.video.frame_rate))
        })
        .collect();
    let mut v = Verified::default();
    for &(t, index) in read {
        let Some(want) = expected_source(project, &rates, t) else {
            v.unreadable += 1;
            continue;
        };
        match index {
            None => v.unreadable += 1,
            Some(i) if i == want => v.checked += 1,
            Some(_) => {
                v.checked += 1;
                v.wrong.push((t, index, want));
            }
        }
    }
    v
}

/// `--offline`: the scene rendered offline with every core, then with one thread each (one
/// decode worker, one render worker, a one-thread rayon pool), all pinned to one core.
fn offline_bench(
    project: &Project,
    options: &EngineOptions,
    name: &str,
    json: bool,
) -> anyhow::Result<()> {
    let duration = project.duration_frames();
    let run = |options: EngineOptions| -> anyhow::Result<(framelock::OfflineReport, u64)> {
        let mut r = framelock::OfflineRenderer::open(project, options)?;
        let mut hash = 0u64;
        let report = r.render(0..duration, |f| {
            hash = hash.rotate_left(5) ^ u64::from(f.picture.planes[0][0]) ^ f.timeline_frame;
        })?;
        Ok((report, hash))
    };
    let (parallel, _) = run(options.clone())?;
    // One core: the threads the single-thread run starts (its decode and render workers and
    // the rayon pool, built below for that reason) inherit this thread's affinity, so none
    // can overlap another on the second core.
    let pinned = core_affinity::get_core_ids()
        .and_then(|ids| ids.first().copied())
        .is_some_and(core_affinity::set_for_current);
    let single_options = EngineOptions {
        workers: 1,
        render_workers: 1,
        cpu_renderer: Arc::new(framelock::PooledCpu(
            rayon::ThreadPoolBuilder::new().num_threads(1).build()?,
        )),
        ..options.clone()
    };
    let (single, _) = run(single_options)?;
    let ratio = parallel.fps / single.fps.max(1e-9);
    if json {
        let v = serde_json::json!({
            "scene": name,
            "frames": duration,
            "offline_fps": parallel.fps,
            "offline_seconds": parallel.seconds,
            "single_thread_fps": single.fps,
            "single_thread_seconds": single.seconds,
            "ratio": ratio,
            "single_pinned_to_one_core": pinned,
        });
        println!("{v}");
    } else {
        println!(
            "{name}: offline render of {duration} frames: {:.2} fps ({:.1} s); one thread{}: {:.2} fps ({:.1} s); ratio {ratio:.2}x",
            parallel.fps,
            parallel.seconds,
            if pinned {
                " on one core"
            } else {
                " (not pinned)"
            },
            single.fps,
            single.seconds
        );
    }
    Ok(())
}

/// The `--effects` stack for a clip on track `track`.
fn effect_stack(name: &str, track: usize) -> anyhow::Result<framelock::EffectStack> {
    use framelock::{BlendMode, Effect, EffectStack};
    let grade = Effect::Grade {
        brightness: 0.02,
        contrast: 1.1,
        saturation: 1.2,
        gamma: 1.05,
        lift: 0.01,
        gain: 0.98,
    };
    let effects = match name {
        "grade" => vec![grade],
        "blur" => vec![Effect::Blur { radius: 8 }],
        "full" => vec![
            grade,
            Effect::Blur { radius: 4 },
            Effect::Sharpen { amount: 0.5 },
            Effect::Transform {
                scale: 1.05,
                x: 3.0,
                y: -2.0,
                rotation: 1.5,
            },
        ],
        other => bail!("unknown effect stack {other:?}: grade, blur, full"),
    };
    Ok(EffectStack {
        effects,
        blend: if name == "full" && track > 0 {
            BlendMode::Screen
        } else {
            BlendMode::Over
        },
        dissolve_in: 0,
    })
}

/// Samples every tick of the measured phase for `--report`.
struct Recorder {
    on: bool,
    samples: Vec<crate::report::Sample>,
    start: Instant,
    last: Instant,
    base: (u64, u64),
    /// The quality rung over time: (seconds into the measured phase, rung, playback height)
    /// at the start and at each change.
    levels: Vec<(f64, usize, Option<u32>)>,
    /// The engine's events, read every tick (a bounded channel: unread, new ones would be
    /// lost), and the media errors among them: (file, the decoder's text).
    events: Option<crossbeam_channel::Receiver<framelock::EngineEvent>>,
    errors: Vec<(PathBuf, String)>,
    /// What the pools held at the tick they held the most (every tick, report or not).
    peak: PeakBreakdown,
}

/// The accounted bytes at their peak tick, by holder (bytes).
#[derive(Clone, Copy, Debug, Default)]
struct PeakBreakdown {
    accounted: usize,
    /// Decoded frames the RAM tier holds (ready), and the rendered tier.
    cached_decoded: usize,
    cached_rendered: usize,
    /// Frame buffers in use outside the caches: on screen, in flight in workers and render.
    frames_elsewhere: usize,
    /// Idle buffers on the pool's shelves.
    idle: usize,
    decoders: usize,
    audio: usize,
    effect_scratch: usize,
}

impl PeakBreakdown {
    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "accounted": self.accounted,
            "cached_decoded": self.cached_decoded,
            "cached_rendered": self.cached_rendered,
            "frames_elsewhere": self.frames_elsewhere,
            "idle": self.idle,
            "decoders": self.decoders,
            "audio": self.audio,
            "effect_scratch": self.effect_scratch,
        })
    }
}

impl Recorder {
    fn new(on: bool) -> Self {
        Self {
            on,
            samples: Vec::new(),
            start: Instant::now(),
            last: Instant::now(),
            base: (0, 0),
            levels: Vec::new(),
            events: None,
            errors: Vec::new(),
            peak: PeakBreakdown::default(),
        }
    }

    fn begin(&mut self, engine: &PlaybackEngine) {
        let m = engine.metrics();
        self.base = (m.cache_hits, m.cache_misses);
        self.samples.clear();
        self.start = Instant::now();
        self.last = self.start;
        let q = engine.adaptive_quality();
        self.levels = vec![(0.0, q.level, q.preview_height)];
    }

    fn tick(&mut self, engine: &mut PlaybackEngine) {
        engine.tick();
        let stats = engine.cache_stats();
        let accounted = stats.memory.accounted_bytes();
        if accounted > self.peak.accounted {
            use framelock::PoolClass;
            let class = |c| stats.memory.class(c);
            let cached = stats.ram_decoded.bytes + stats.ram_rendered.bytes;
            self.peak = PeakBreakdown {
                accounted,
                cached_decoded: stats.ram_decoded.bytes,
                cached_rendered: stats.ram_rendered.bytes,
                frames_elsewhere: class(PoolClass::Frames).in_use_bytes.saturating_sub(cached),
                idle: PoolClass::ALL.iter().map(|&c| class(c).idle_bytes).sum(),
                decoders: class(PoolClass::Decoders).in_use_bytes,
                audio: class(PoolClass::Audio).in_use_bytes,
                effect_scratch: class(PoolClass::EffectScratch).in_use_bytes,
            };
        }
        let events = self.events.get_or_insert_with(|| engine.events());
        for e in events.try_iter() {
            if let framelock::EngineEvent::Error { media, error } = e {
                self.errors.push((media, error));
            }
        }
        let q = engine.adaptive_quality();
        if self.levels.last().is_some_and(|l| l.1 != q.level) {
            let t = self.start.elapsed().as_secs_f64();
            self.levels.push((t, q.level, q.preview_height));
        }
        if !self.on {
            return;
        }
        let now = Instant::now();
        let m = engine.metrics();
        let (h, mi) = (m.cache_hits - self.base.0, m.cache_misses - self.base.1);
        self.samples.push(crate::report::Sample {
            t: (now - self.start).as_secs_f64(),
            tick_ms: m.tick_ms_last,
            frame_ms: (now - self.last).as_secs_f64() * 1e3,
            memory_bytes: engine.cache_stats().memory.accounted_bytes(),
            hit_rate: if h + mi > 0 {
                h as f64 / (h + mi) as f64
            } else {
                1.0
            },
        });
        self.last = now;
    }
}

enum MotionKind {
    Play,
    Scrub,
}

enum Motion {
    Forward,
    Reverse,
    Scrub { seeks: usize },
    SecondPass,
    PingPong,
}

/// `dir/name.mp4`, generated (a test card) when missing.
pub(crate) fn clip(
    dir: &Path,
    name: &str,
    w: u32,
    h: u32,
    seconds: f64,
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{name}.mp4"));
    if !path.exists() {
        eprintln!("generating {} ({w}x{h}, {seconds} s)…", path.display());
        let o = GenerateOptions::new(w, h, Rational::integer(30), seconds);
        let bar = crate::progress_bar(o.frames, "generating");
        generate_test_clip(&path, &o, |d, _| bar.set_position(d))?;
        bar.finish_and_clear();
    }
    Ok(path)
}

fn whole(media: &Path, start: u64, duration: u64, source_in: u64) -> ClipDef {
    ClipDef {
        media: media.to_path_buf(),
        start,
        duration,
        source_in,
        enabled: true,
        effects: Default::default(),
        audio: Default::default(),
    }
}

/// A built-in scene's project (its media generated in `dir` when missing).
pub(crate) fn built_in_project(name: &str, dir: &Path) -> anyhow::Result<Project> {
    Ok(built_in(name, dir)?.0)
}

fn built_in(name: &str, dir: &Path) -> anyhow::Result<(Project, Motion)> {
    let r30 = Rational::integer(30);
    Ok(match name {
        "1080p-1track" | "reverse" | "scrub-random" => {
            let a = clip(dir, "hd-10s", 1920, 1080, 10.0)?;
            let mut p = Project::new(r30, 1920, 1080);
            p.tracks.push(TrackDef {
                name: "v1".into(),
                opacity: 1.0,
                clips: vec![whole(&a, 0, 300, 0)],
            });
            let motion = match name {
                "reverse" => Motion::Reverse,
                "scrub-random" => Motion::Scrub { seeks: 100 },
                _ => Motion::Forward,
            };
            (p, motion)
        }
        "4k-3tracks-cuts" => {
            let a = clip(dir, "uhd-a-6s", 3840, 2160, 6.0)?;
            let b = clip(dir, "uhd-b-6s", 3840, 2160, 6.0)?;
            let mut p = Project::new(r30, 3840, 2160);
            // bottom: A all along; middle: B in one-second cuts; top: A at half opacity
            p.tracks.push(TrackDef {
                name: "base".into(),
                opacity: 1.0,
                clips: vec![whole(&a, 0, 180, 0)],
            });
            p.tracks.push(TrackDef {
                name: "cuts".into(),
                opacity: 1.0,
                clips: (0..3).map(|i| whole(&b, 60 * i + 30, 30, 30 * i)).collect(),
            });
            p.tracks.push(TrackDef {
                name: "overlay".into(),
                opacity: 0.5,
                clips: vec![whole(&a, 120, 45, 0)],
            });
            (p, Motion::Forward)
        }
        other => {
            bail!("unknown scene {other:?}: 1080p-1track, 4k-3tracks-cuts, scrub-random, reverse")
        }
    })
}

/// One GOP of the first clip's source at this run's median decode time per frame, in ms.
/// One GOP of the first clip's source decoded from its keyframe, timed here (the median of
/// three runs): the baseline a seek's exact frame is held to. (Not GOP x the run's median
/// decode job time: a job can decode several frames, so that figure depends on the mix of
/// jobs the run happened to make.)
fn gop_decode_ms(project: &Project) -> Option<f64> {
    let media = &project.tracks.first()?.clips.first()?.media;
    let registry = DecoderRegistry::new();
    let info = framelock::probe(media, &registry).ok()?;
    let k = &info.video.keyframes;
    let mut gaps: Vec<u64> = k.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort_unstable();
    let gop = gaps
        .get(gaps.len() / 2)
        .copied()
        .unwrap_or(info.video.frame_count);
    // Pictures from recycled buffers, as the engine's workers decode (a fresh zeroed
    // picture per frame would time page faults, not decoding).
    let pool = framelock::BufferPool::new(usize::MAX / 4);
    let mut runs: Vec<f64> = (0..4)
        .filter_map(|_| {
            // (Opening is not timed: a seek's decoder is open already.)
            let mut reader = VideoReader::open(media, &registry).ok()?;
            reader.set_frame_pool(pool.clone());
            let t = Instant::now();
            for _ in 0..gop {
                reader.next_frame()?.ok()?;
            }
            Some(t.elapsed().as_secs_f64() * 1e3)
        })
        .collect();
    // The first run fills the pool: the others reuse its buffers. (None decoded: no
    // baseline.)
    if runs.len() > 1 {
        runs.remove(0);
    }
    runs.sort_by(f64::total_cmp);
    runs.get(runs.len() / 2).copied()
}

fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// (anonymous, file-backed) resident bytes now: the disk tier's mapped pages are page cache
/// the kernel can reclaim, not memory the engine allocated.
fn rss_split_bytes() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
    };
    Some((
        field("RssAnon:")?,
        field("RssFile:")? + field("RssShmem:").unwrap_or(0),
    ))
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Like an editor pressing play: the first frame is on screen — decoded and, with effects,
/// rendered — before the clock starts, so the run measures playback, not the cold start
/// (which the scrub scene measures). The wait for the workers also lets the GPU path's
/// calibration finish, as it does in an editor between opening a project and play.
fn preroll(engine: &mut PlaybackEngine, shown: &Mutex<Vec<(u64, Instant, bool)>>) {
    let frame = engine.playhead().frame;
    let on_screen = || {
        shown
            .lock()
            .map(|v| v.iter().any(|&(f, _, exact)| f == frame && exact))
            .unwrap_or(true)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    for round in 0.. {
        engine.tick();
        engine.wait_idle(Duration::from_secs(10));
        if (round >= 1 && on_screen()) || Instant::now() > deadline {
            break;
        }
    }
    engine.tick();
    if let Ok(mut v) = shown.lock() {
        v.clear();
    }
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let _puffin_server = match &args.puffin {
        Some(addr) => {
            let server = puffin_http::Server::new(addr)
                .map_err(|e| anyhow::anyhow!("puffin server on {addr}: {e}"))?;
            framelock::set_profiling(true);
            eprintln!("puffin: serving on {addr}; connect with `puffin_viewer --url {addr}`");
            Some(server)
        }
        None => None,
    };
    let (project, motion, name) = match &args.scene_file {
        Some(f) => {
            let json =
                std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
            (
                Project::from_json(&json).with_context(|| format!("project {}", f.display()))?,
                Motion::Forward,
                f.display().to_string(),
            )
        }
        None => {
            let (p, m) = built_in(&args.scene, &args.media_dir)?;
            (p, m, args.scene.clone())
        }
    };
    let mut project = project;
    if let Some(stack) = &args.effects {
        for (ti, t) in project.tracks.iter_mut().enumerate() {
            for c in &mut t.clips {
                c.effects = effect_stack(stack, ti)?;
            }
        }
    }
    let mut options = EngineOptions {
        registry: DecoderRegistry::new(),
        ..EngineOptions::default()
    };
    options.quality.gpu_acceleration = !args.cpu_effects;
    options.quality.effect_lod = match args.effect_lod.as_str() {
        "full" => framelock::EffectLod::Full,
        "half" => framelock::EffectLod::Half,
        "quarter" => framelock::EffectLod::Quarter,
        other => bail!("unknown effect LOD {other:?}: full, half, quarter"),
    };
    if let Some(w) = args.workers {
        options.workers = w;
    }
    options.quality.drop_late_frames = !args.hold;
    options.quality.auto_reduce_quality = !args.no_adapt;
    options.quality.adaptive_effect_lod = !args.no_adapt;
    if let Some(mib) = args.budget {
        options.memory = framelock::MemoryBudget::new(mib << 20);
    }
    if let Some(dir) = &args.disk_cache {
        let mut d = framelock::DiskCacheOptions::new(dir, args.disk_limit << 20);
        d.compression = match args.compression.as_str() {
            "none" => framelock::Compression::None,
            "lz4" => framelock::Compression::Lz4,
            other => bail!("unknown compression {other:?}: none or lz4"),
        };
        options.disk_cache = Some(d);
    }
    let motion = match (args.pattern.as_str(), motion) {
        ("play", m) => m,
        ("second-pass", _) => Motion::SecondPass,
        ("pingpong", _) => Motion::PingPong,
        ("reverse", _) => Motion::Reverse,
        (other, _) => bail!("unknown pattern {other:?}: play, second-pass, pingpong, reverse"),
    };
    let mut proxy_seconds = None;
    if let Some(h) = args.proxy {
        let mut proxies = ProxyOptions::new(args.media_dir.join("Proxies"));
        proxies.strategy.auto_switch_thresholds = AutoSwitchThresholds {
            playback: h,
            editing: h,
            effects: h,
        };
        proxies.strategy.generation.resolutions = vec![h];
        proxies.strategy.generation.priority = ProxyPriority::High;
        let manager = proxies.manager.clone();
        let mut files: Vec<PathBuf> = project
            .tracks
            .iter()
            .flat_map(|t| t.clips.iter().map(|c| c.media.clone()))
            .collect();
        files.sort();
        files.dedup();
        let started = Instant::now();
        for f in &files {
            let info = framelock::probe(f, &options.registry)?;
            manager.submit_below(f, info.video.height, &proxies.strategy.generation);
        }
        let jobs = manager.status().len();
        let bar = crate::progress_bar(0, "proxies");
        while !manager.wait_idle(Duration::from_millis(100)) {
            let p = manager.progress();
            bar.set_length(p.frames_total);
            bar.set_position(p.frames_done);
        }
        bar.finish_and_clear();
        for s in manager.status() {
            if s.state != ProxyState::Ready {
                bail!("proxy {} did not finish: {:?}", s.path.display(), s.state);
            }
        }
        proxy_seconds = Some((jobs, started.elapsed().as_secs_f64()));
        proxies.auto_generate = false;
        options.quality.preview_height = Some(h);
        options.quality.use_proxy = UseProxy::Always;
        options.proxies = Some(proxies);
    }
    if let Some(p) = args.preview {
        options.quality.preview_height = (p > 0).then_some(p);
    }
    if args.offline {
        options.gpu = (!args.cpu_effects).then(Default::default);
        return offline_bench(&project, &options, &name, args.json);
    }
    if args.background {
        options.gpu = (!args.cpu_effects).then(Default::default);
        return crate::background_bench::run(&project, &options, &name, args.json);
    }
    if args.export {
        options.gpu = (!args.cpu_effects).then(Default::default);
        return crate::export_bench::run(&project, &options, &name, args.json);
    }
    let (view_w, view_h) = framelock::OutputFormat {
        frame_rate: project.frame_rate,
        width: project.width,
        height: project.height,
    }
    .preview_size(options.quality.preview_height);
    // (timeline frame, when, exact) of each new picture.
    let shown: Arc<Mutex<Vec<(u64, Instant, bool)>>> = Arc::default();
    let sink = shown.clone();
    // With --verify: (timeline frame, burned-in index read) of each exact picture.
    let read: Arc<Mutex<Vec<IndexRead>>> = Arc::default();
    let reads = args.verify.then(|| read.clone());
    let mut engine = PlaybackEngine::open(
        &project,
        options,
        Arc::new(WallClock::new()),
        move |f: PresentedFrame| {
            if !f.repeated
                && let Ok(mut v) = sink.lock()
            {
                v.push((f.timeline_frame, Instant::now(), f.exact));
            }
            if let Some(reads) = &reads
                && f.exact
                && !f.repeated
            {
                let p = &f.picture;
                let index = if p.format == framelock::PixelFormat::Rgba8 {
                    framelock::testcard::read_index_rgba(&p.planes[0], p.width, p.height)
                } else {
                    framelock::testcard::read_index(p)
                };
                if let Ok(mut v) = reads.lock() {
                    v.push((f.timeline_frame, index));
                }
            }
        },
    )?;
    let duration = project.duration_frames();
    let mut start = Instant::now();
    let mut seek_ms = Vec::new();
    let mut first_ms = Vec::new();
    let mut baseline = engine.metrics();
    let mut cache_base = engine.cache_stats();
    let motion_kind = match motion {
        Motion::Scrub { .. } | Motion::PingPong => MotionKind::Scrub,
        _ => MotionKind::Play,
    };
    let mut rec = Recorder::new(args.report.is_some());
    let play_through = |engine: &mut PlaybackEngine, rec: &mut Recorder| {
        engine.play();
        engine.resync();
        while engine.playhead().state == PlayState::Playing {
            rec.tick(engine);
        }
    };
    match motion {
        Motion::SecondPass => {
            preroll(&mut engine, &shown);
            play_through(&mut engine, &mut rec);
            engine.flush_disk_cache();
            engine.seek_frame(0);
            preroll(&mut engine, &shown);
            baseline = engine.metrics();
            cache_base = engine.cache_stats();
            start = Instant::now();
            rec.begin(&engine);
            play_through(&mut engine, &mut rec);
        }
        Motion::PingPong => {
            // Drag the playhead at 3 frames a tick over the first 10 s and back, three round
            // trips on the wall clock (a user scrubbing a region to find a cut).
            let region = duration.min(300);
            let sweep = |engine: &mut PlaybackEngine, rec: &mut Recorder, forward: bool| {
                let frames: Vec<u64> = if forward {
                    (0..region).step_by(3).collect()
                } else {
                    (0..region).rev().step_by(3).collect()
                };
                for f in frames {
                    engine.seek_frame(f);
                    rec.tick(engine);
                }
            };
            preroll(&mut engine, &shown);
            engine.resync();
            sweep(&mut engine, &mut rec, true);
            baseline = engine.metrics();
            cache_base = engine.cache_stats();
            start = Instant::now();
            rec.begin(&engine);
            for i in 0..5 {
                sweep(&mut engine, &mut rec, i % 2 == 1);
            }
        }
        Motion::Forward | Motion::Reverse => {
            if matches!(motion, Motion::Reverse) {
                engine.seek_frame(duration - 1);
                engine.set_rate(-1.0);
            }
            preroll(&mut engine, &shown);
            baseline = engine.metrics();
            start = Instant::now();
            rec.begin(&engine);
            engine.play();
            engine.resync();
            while engine.playhead().state == PlayState::Playing {
                rec.tick(&mut engine);
            }
        }
        Motion::Scrub { seeks } => {
            let mut state = 0x2545_f491_4f6c_dd1d_u64;
            for _ in 0..seeks {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let target = state % duration;
                let asked = Instant::now();
                engine.seek_frame(target);
                let deadline = asked + Duration::from_secs(5);
                let mut first_seen = false;
                loop {
                    rec.tick(&mut engine);
                    let hit = shown
                        .lock()
                        .ok()
                        .and_then(|v| v.last().copied())
                        .filter(|&(f, at, _)| f == target && at >= asked);
                    if let Some((_, at, exact)) = hit {
                        // The first picture (approximate or not), then the exact frame.
                        let ms = (at - asked).as_secs_f64() * 1e3;
                        if !first_seen {
                            first_ms.push(ms);
                            first_seen = true;
                        }
                        if exact {
                            seek_ms.push(ms);
                            break;
                        }
                    }
                    if Instant::now() > deadline {
                        bail!("seek to frame {target} produced no frame in 5 s");
                    }
                }
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let verified = args.verify.then(|| {
        verify(
            &project,
            &read.lock().map(|v| v.clone()).unwrap_or_default(),
        )
    });
    let mut m = engine.metrics();
    m.dropped -= baseline.dropped;
    m.held -= baseline.held;
    m.skipped_ticks -= baseline.skipped_ticks;
    let presented = shown.lock().map(|v| v.len()).unwrap_or(0);
    // Which timeline frames never reached the screen, as ranges (where the time went).
    let mut missing: Vec<(u64, u64)> = Vec::new();
    if !matches!(motion_kind, MotionKind::Scrub) {
        let seen: std::collections::HashSet<u64> = shown
            .lock()
            .map(|v| v.iter().map(|&(f, _, _)| f).collect())
            .unwrap_or_default();
        for f in 0..duration {
            if !seen.contains(&f) {
                match missing.last_mut() {
                    Some(r) if r.1 + 1 == f => r.1 = f,
                    _ => missing.push((f, f)),
                }
            }
        }
    }
    let missing_text: Vec<String> = missing
        .iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect();
    let target_fps = project.frame_rate.as_f64();
    let achieved = presented as f64 / elapsed;
    let rss = peak_rss_bytes().unwrap_or(0);
    let (rss_anon, rss_file) = rss_split_bytes().unwrap_or((0, 0));
    engine.flush_disk_cache();
    let cache = engine.cache_stats();
    let hits = cache.ram_decoded.hits - cache_base.ram_decoded.hits;
    let misses = cache.ram_decoded.misses - cache_base.ram_decoded.misses;
    let phase_hit_rate = if hits + misses > 0 {
        hits as f64 / (hits + misses) as f64
    } else {
        0.0
    };
    let budget = engine.memory_budget();
    if let Some(path) = &args.report {
        let summary = serde_json::json!({
            "scene": name,
            "pattern": args.pattern,
            "achieved_fps": presented as f64 / elapsed,
            "presented": presented,
            "dropped": m.dropped,
            "held": m.held,
            "cache_hit_rate": phase_hit_rate,
            "tick_ms_p50": m.tick_ms_p50,
            "tick_ms_p99": m.tick_ms_p99,
            "memory_budget_bytes": budget.max_memory,
            "pool_peak_bytes": cache.memory.peak_bytes,
            "peak_rss_bytes": rss,
        });
        let map = engine.performance_map();
        crate::report::write(
            path,
            &format!("framelock bench: {name}"),
            &rec.samples,
            &map,
            &summary,
            1e3 / project.frame_rate.as_f64(),
        )?;
        eprintln!("report: {}", path.display());
    }
    let seek_p50 = percentile(&mut seek_ms.clone(), 0.5);
    let seek_p95 = percentile(&mut seek_ms, 0.95);
    let first_p50 = percentile(&mut first_ms.clone(), 0.5);
    let first_p95 = percentile(&mut first_ms, 0.95);
    // The baseline of a seek: one GOP of the first clip's source decoded, timed in this run.
    let gop_ms = gop_decode_ms(&project).unwrap_or(0.0);
    // The longest run of timeline frames never shown (the picture's longest freeze).
    let longest_gap = missing.iter().map(|&(a, b)| b - a + 1).max().unwrap_or(0);
    let adaptive = engine.adaptive_quality();
    let levels_text: Vec<String> = rec
        .levels
        .iter()
        .map(|&(t, level, h)| match h {
            Some(h) => format!("{t:.1}s:{level}({h}p)"),
            None => format!("{t:.1}s:{level}"),
        })
        .collect();
    let fx = engine.render_stats();
    let effects_path = match engine.gpu_status() {
        framelock::GpuStatus::Active {
            devices,
            effects_on,
            choice,
            ..
        } => match (effects_on, choice) {
            (framelock::RenderPath::Gpu, _) => format!("GPU {}", devices.join(", ")),
            (framelock::RenderPath::Cpu, Some(c)) => format!("CPU path ({})", c.reason),
            (framelock::RenderPath::Cpu, None) => {
                format!("CPU path (GPU {} not measured yet)", devices.join(", "))
            }
        },
        framelock::GpuStatus::Unavailable { reason } => format!("CPU path ({reason})"),
        framelock::GpuStatus::Opening => "CPU path (GPU still opening)".into(),
        framelock::GpuStatus::NotStarted => "none".into(),
    };
    if args.json {
        let v = serde_json::json!({
            "scene": name,
            "proxy_height": args.proxy,
            "proxy_generation_seconds": proxy_seconds.map(|p| p.1),
            "output": format!("{}x{}", project.width, project.height),
            "viewer": format!("{view_w}x{view_h}"),
            "target_fps": target_fps,
            "achieved_fps": achieved,
            "ticks": m.ticks,
            "presented": presented,
            "dropped": m.dropped,
            "held": m.held,
            "skipped_ticks": m.skipped_ticks,
            "missed_frames": missing_text,
            "longest_gap_frames": longest_gap,
            "adaptive": !args.no_adapt,
            "quality_changes": adaptive.changes,
            "quality_levels": levels_text,
            "late_shown": m.late_shown,
            "approximate": m.approximate,
            "tick_ms_p50": m.tick_ms_p50,
            "tick_ms_p95": m.tick_ms_p95,
            "tick_ms_p99": m.tick_ms_p99,
            "seek_ms_p50": seek_p50,
            "seek_ms_p95": seek_p95,
            "first_picture_ms_p50": first_p50,
            "first_picture_ms_p95": first_p95,
            "gop_decode_ms": gop_ms,
            "pattern": args.pattern,
            "cache_hit_rate": phase_hit_rate,
            "cache_lookups": hits + misses,
            "memory_budget_bytes": budget.max_memory,
            "pool_peak_bytes": cache.memory.peak_bytes,
            "pool_allocations": cache.memory.classes[0].allocations,
            "pool_reuses": cache.memory.classes[0].reuses,
            "decoder_bytes": cache.memory.classes[3].in_use_bytes,
            "decoder_waits": m.decoder_waits,
            "peak_breakdown": rec.peak.json(),
            "pool_peak_classes": cache.memory.peak_classes,
            "evicted": cache.evicted,
            "disk_reads": cache.disk_reads - cache_base.disk_reads,
            "disk_entries": cache.disk.map(|d| d.tier.entries),
            "disk_bytes": cache.disk.map(|d| d.tier.bytes),
            "rendered_hits": cache.ram_rendered.hits - cache_base.ram_rendered.hits,
            "decoded_frames": m.decoded,
            "decode_fps": m.decoded as f64 / elapsed,
            "decode_ms_p50": m.decode_ms_p50,
            "peak_rss_bytes": rss,
            "rss_anon_bytes": rss_anon,
            "rss_file_bytes": rss_file,
            "seconds": elapsed,
            "effects": args.effects,
            "effects_path": effects_path,
            "effects_gpu_frames": fx.gpu_frames,
            "effects_cpu_frames": fx.cpu_frames,
            "effects_rendered_ahead": fx.rendered_ahead,
            "effects_lod_divisor": fx.lod.divisor(),
            "verify_checked": verified.as_ref().map(|v| v.checked),
            "verify_wrong": verified.as_ref().map(|v| v.wrong.len()),
            "verify_unreadable": verified.as_ref().map(|v| v.unreadable),
        });
        println!("{v}");
    } else {
        println!(
            "scene          {name} ({}x{} @ {}, viewer {view_w}x{view_h})",
            project.width, project.height, project.frame_rate
        );
        if let (Some(h), Some((jobs, secs))) = (args.proxy, proxy_seconds) {
            println!("proxies        {h}p, {jobs} file(s) ready after {secs:.2} s");
        }
        println!(
            "fps            {achieved:.2} achieved / {target_fps:.2} target over {elapsed:.2} s"
        );
        println!(
            "frames         {presented} presented, {} dropped, {} held, {} ticks skipped",
            m.dropped, m.held, m.skipped_ticks
        );
        if !missing_text.is_empty() {
            println!(
                "not shown      {} (longest {longest_gap} frames)",
                missing_text.join(" ")
            );
        }
        println!(
            "quality        {}: {} changes, {} late frames shown in place of missing ones; rung over time {}",
            if args.no_adapt {
                "fixed (--no-adapt)"
            } else {
                "adaptive"
            },
            adaptive.changes,
            m.late_shown,
            if levels_text.is_empty() {
                "-".to_string()
            } else {
                levels_text.join(" ")
            }
        );
        println!(
            "tick ms        p50 {:.3}  p95 {:.3}  p99 {:.3}",
            m.tick_ms_p50, m.tick_ms_p95, m.tick_ms_p99
        );
        if !seek_ms.is_empty() {
            println!(
                "seek ms        first picture p50 {first_p50:.1}  p95 {first_p95:.1}; exact frame p50 {seek_p50:.1}  p95 {seek_p95:.1} ({} seeks, {} approximate first)",
                seek_ms.len(),
                m.approximate
            );
            println!(
                "one GOP decode {gop_ms:.1} ms (decoded from its keyframe here, median of 3): exact p95 is {:.2}x it",
                seek_p95 / gop_ms.max(1e-9)
            );
        }
        println!(
            "cache hit rate {:.1}% ({} of {} frames needed on screen were ready; pattern {})",
            phase_hit_rate * 100.0,
            hits,
            hits + misses,
            args.pattern
        );
        println!(
            "memory         budget {} MiB, accounted peak {:.1} MiB (decoders {:.1} MiB at the end), {} frame buffers allocated, {} reused, {} evicted",
            budget.max_memory >> 20,
            cache.memory.peak_bytes as f64 / (1 << 20) as f64,
            cache.memory.classes[3].in_use_bytes as f64 / (1 << 20) as f64,
            cache.memory.classes[0].allocations,
            cache.memory.classes[0].reuses,
            cache.evicted
        );
        if let Some(d) = cache.disk {
            println!(
                "disk tier      {} entries, {:.1} MiB, {} frames read back, {} rendered hits",
                d.tier.entries,
                d.tier.bytes as f64 / (1 << 20) as f64,
                cache.disk_reads - cache_base.disk_reads,
                cache.ram_rendered.hits - cache_base.ram_rendered.hits
            );
        }
        if args.effects.is_some() {
            println!(
                "effects        {effects_path}: {} frames on the GPU ({} rendered ahead), {} on the CPU, LOD 1/{} now",
                fx.gpu_frames,
                fx.rendered_ahead,
                fx.cpu_frames,
                fx.lod.divisor()
            );
        }
        println!(
            "decode         {} frames, {:.1} frames/s, {:.2} ms median per frame",
            m.decoded,
            m.decoded as f64 / elapsed,
            m.decode_ms_p50
        );
        println!(
            "peak RSS       {:.1} MiB (at the end: {:.1} MiB anonymous, {:.1} MiB file-backed)",
            rss as f64 / (1 << 20) as f64,
            rss_anon as f64 / (1 << 20) as f64,
            rss_file as f64 / (1 << 20) as f64
        );
        if let Some(v) = &verified {
            println!(
                "verify         {} exact pictures checked against the timeline, {} wrong, {} unreadable (blurred index or blended top)",
                v.checked,
                v.wrong.len(),
                v.unreadable
            );
        }
    }
    // A run whose media failed to decode measured the media-offline picture, not playback:
    // it says so, with the decoders' text, and fails.
    if m.decode_errors > 0 || !rec.errors.is_empty() {
        for (media, error) in &rec.errors {
            eprintln!("error          {}: {error}", media.display());
        }
        bail!(
            "{} source frame(s) failed to decode{}: the figures above are not of playback",
            m.decode_errors,
            if rec.errors.is_empty() {
                String::new()
            } else {
                format!(" in {} file(s)", rec.errors.len())
            }
        );
    }
    if let Some(v) = verified
        && let Some(&(t, got, want)) = v.wrong.first()
    {
        bail!(
            "--verify: {} of {} pictures showed the wrong frame (first: timeline frame {t} showed source frame {got:?}, the timeline has {want})",
            v.wrong.len(),
            v.checked
        );
    }
    Ok(())
}

#[cfg(test)]
mod verify_tests {
    use super::*;

    #[test]
    fn verify_counts_right_wrong_and_unreadable_pictures() {
        let mut p = Project::new(Rational::integer(30), 64, 36);
        let clip = |start, duration, source_in| ClipDef {
            media: "not-probed.mp4".into(),
            start,
            duration,
            source_in,
            enabled: true,
            effects: Default::default(),
            audio: Default::default(),
        };
        p.tracks.push(TrackDef {
            name: String::new(),
            opacity: 1.0,
            clips: vec![clip(0, 10, 100)],
        });
        p.tracks.push(TrackDef {
            name: String::new(),
            opacity: 0.5,
            clips: vec![clip(5, 2, 0)],
        });
        let read = [
            (0, Some(100)),
            (3, Some(104)), // wrong: the timeline has 103
            (4, None),      // unreadable
            (5, Some(105)), // a blended top: not checkable
            (9, Some(109)),
        ];
        let v = verify(&p, &read);
        assert_eq!((v.checked, v.unreadable), (3, 2));
        assert_eq!(v.wrong, vec![(3, Some(104), 103)]);
    }
}
