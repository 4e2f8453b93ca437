//! `bench --export`: the scene exported to H.264 three ways, in one run: framelock's
//! segment-parallel export; the same work done naively (decode → composite → encode, frame by
//! frame, one thread of each kind, all pinned to one core); and Debian's ffmpeg doing the same
//! kind of work (the same composite through `-filter_complex`, the effects as its filters,
//! `libx264 -preset veryfast` at the same QP). Frames/s of each and the ratios.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use framelock::{
    EncodeSettings, EncodeSpeed, EngineOptions, Export, ExportAudio, ExportRequest, H264Encoder,
    H264Mp4Muxer, OutputPixels, Project, RateControl,
};

/// Runs the three exports and prints the figures.
pub fn run(
    project: &Project,
    options: &EngineOptions,
    name: &str,
    json: bool,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let frames = project.duration_frames();
    let mut request = ExportRequest::new(dir.path().join("framelock.mp4"));
    request.audio = ExportAudio::None;
    request.engine = options.clone();
    let qp = request.qp();
    let report = Export::start(project, request)?.wait()?;

    let ffmpeg = ffmpeg_same_work(project, qp, &dir.path().join("ffmpeg.mp4"))?;
    let naive = naive(project, options, qp, &dir.path().join("naive.mp4"))?;
    let (background_seconds, reused) = after_background(project, options, &dir)?;
    let fps = |s: f64| frames as f64 / s.max(1e-9);
    let ratio_reused = naive / reused.seconds.max(1e-9);
    let ratio_naive = naive / report.seconds.max(1e-9);
    let ratio_ffmpeg = ffmpeg / report.seconds.max(1e-9);
    if json {
        let v = serde_json::json!({
            "scene": name,
            "frames": frames,
            "export_fps": report.fps,
            "export_seconds": report.seconds,
            "export_bytes": report.bytes,
            "export_decode_seconds": report.decode_seconds,
            "export_reused_frames": report.reused_frames,
            "export_render_seconds": report.render_seconds,
            "export_encode_seconds": report.encode_seconds,
            "workers": report.workers,
            "naive_fps": fps(naive),
            "naive_seconds": naive,
            "ffmpeg_fps": fps(ffmpeg),
            "ffmpeg_seconds": ffmpeg,
            "ratio_vs_naive": ratio_naive,
            "ratio_vs_ffmpeg": ratio_ffmpeg,
            "background_render_seconds": background_seconds,
            "reused_export_fps": reused.fps,
            "reused_export_seconds": reused.seconds,
            "reused_frames": reused.reused_frames,
            "reused_ratio_vs_naive": ratio_reused,
        });
        println!("{v}");
    } else {
        println!(
            "{name}: export of {frames} frames: {:.2} fps ({:.1} s, {} workers; decode {:.1} s, render {:.1} s, encode {:.1} s summed); naive one-core pipeline {:.2} fps ({naive:.1} s): {ratio_naive:.2}x; ffmpeg (same composite, libx264 veryfast) {:.2} fps ({ffmpeg:.1} s): {ratio_ffmpeg:.2}x",
            report.fps,
            report.seconds,
            report.workers,
            report.decode_seconds,
            report.render_seconds,
            report.encode_seconds,
            fps(naive),
            fps(ffmpeg),
        );
        println!(
            "{name}: after background render ({background_seconds:.1} s, into a disk tier), the export from the engine: {:.2} fps ({:.1} s, {} of {frames} frames encoded from the disk tier): {ratio_reused:.2}x the naive pipeline",
            reused.fps, reused.seconds, reused.reused_frames
        );
    }
    Ok(())
}

/// The scene rendered by the background queue into a disk tier (the time it took), then
/// exported from the engine, whose export encodes those frames instead of rendering them.
fn after_background(
    project: &Project,
    options: &EngineOptions,
    dir: &tempfile::TempDir,
) -> anyhow::Result<(f64, framelock::ExportReport)> {
    let frames = project.duration_frames();
    let mut engine = framelock::PlaybackEngine::open(
        project,
        EngineOptions {
            audio: false,
            disk_cache: Some(framelock::DiskCacheOptions::new(
                dir.path().join("disk-tier"),
                8 << 30,
            )),
            ..options.clone()
        },
        Arc::new(framelock::VirtualClock::new()),
        |_| {},
    )?;
    let start = Instant::now();
    engine.set_background_render(framelock::BackgroundRender::Manual);
    engine.prioritize_render(0..frames);
    loop {
        engine.tick();
        let p = engine.render_progress();
        if p.queued == 0 && p.rendering == 0 {
            if p.cancelled > 0 {
                eprintln!(
                    "background render: {} of {} chunks given up ({:?})",
                    p.cancelled,
                    p.cancelled + p.finished,
                    engine.background_stats().last_error
                );
            }
            break;
        }
        anyhow::ensure!(start.elapsed().as_secs() < 600, "background render: {p:?}");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    engine.flush_disk_cache();
    let background = start.elapsed().as_secs_f64();
    let mut request = ExportRequest::new(dir.path().join("reused.mp4"));
    request.audio = ExportAudio::None;
    request.engine = options.clone();
    let task = engine.export(request)?;
    loop {
        engine.tick();
        if let Some(report) = engine.take_export_report(task) {
            return Ok((background, report?));
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// Decode → composite → encode, frame by frame, every thread pinned to one core: the
/// offline renderer with one decode and one render thread and a one-thread rayon pool, the
/// encoder in its frame callback. Returns the seconds it took.
fn naive(project: &Project, options: &EngineOptions, qp: u8, out: &Path) -> anyhow::Result<f64> {
    let settings = EncodeSettings {
        width: project.width,
        height: project.height,
        frame_rate: project.frame_rate,
        rate: RateControl::ConstantQp(qp),
        gop: u32::try_from(2 * project.frame_rate.num / project.frame_rate.den.max(1))
            .unwrap_or(60),
        speed: EncodeSpeed::Balanced,
    };
    let (project, out, options) = (project.clone(), out.to_path_buf(), options.clone());
    // A thread of its own, so pinning it (and the threads it starts) leaves the caller free.
    let handle = std::thread::spawn(move || -> anyhow::Result<f64> {
        if let Some(core) = core_affinity::get_core_ids().and_then(|ids| ids.first().copied()) {
            core_affinity::set_for_current(core);
        }
        // Built after pinning: a thread inherits its creator's affinity, and rayon starts
        // its threads when the pool is built.
        let single = EngineOptions {
            workers: 1,
            render_workers: 1,
            output_pixels: OutputPixels::Yuv420p,
            audio: false,
            cpu_renderer: Arc::new(framelock::PooledCpu(
                rayon::ThreadPoolBuilder::new().num_threads(1).build()?,
            )),
            ..options
        };
        let start = Instant::now();
        let mut renderer = framelock::OfflineRenderer::open(&project, single)?;
        let mut encoder = H264Encoder::new(settings)?;
        let mut muxer = H264Mp4Muxer::create(&out, settings)?;
        let mut error = None;
        renderer.render(0..project.duration_frames(), |f| {
            if error.is_some() {
                return;
            }
            match encoder.encode(&f.picture) {
                Ok(p) => {
                    if let Err(e) = muxer.write_picture(&p) {
                        error = Some(e);
                    }
                }
                Err(e) => error = Some(e),
            }
        })?;
        if let Some(e) = error {
            return Err(e.into());
        }
        muxer.finish()?;
        Ok(start.elapsed().as_secs_f64())
    });
    handle
        .join()
        .map_err(|_| anyhow::anyhow!("the naive export thread panicked"))?
}

/// ffmpeg doing the same work: each clip's frames (seeked with `-ss`, cut with `trim`) through
/// the same kind of filters, at the output size, shifted to the clip's timeline start and
/// stacked bottom track first with `overlay` at its track's opacity, over black (a one-clip
/// scene that fills the timeline: the clip alone, `-vf`); libx264 veryfast at the same QP.
/// Returns the seconds it took.
fn ffmpeg_same_work(project: &Project, qp: u8, out: &Path) -> anyhow::Result<f64> {
    let (w, h) = (project.width, project.height);
    let (num, den) = (project.frame_rate.num, project.frame_rate.den.max(1));
    let frames = project.duration_frames();
    let clips: Vec<(&framelock::TrackDef, &framelock::ClipDef)> = project
        .tracks
        .iter()
        .flat_map(|t| {
            t.clips
                .iter()
                .filter(|c| c.enabled && c.duration > 0)
                .map(move |c| (t, c))
        })
        .collect();
    let mut c = std::process::Command::new("ffmpeg");
    c.args(["-v", "error", "-y"]);
    for (_, clip) in &clips {
        c.arg("-ss")
            .arg(format!(
                "{}",
                clip.source_in as f64 * den as f64 / num as f64
            ))
            .arg("-i")
            .arg(&clip.media);
    }
    match clips.as_slice() {
        [(track, clip)] if clip.start == 0 && clip.duration == frames && track.opacity >= 1.0 => {
            let filters = effect_filters(clip, w, h);
            if !filters.is_empty() {
                c.arg("-vf").arg(filters.join(","));
            }
        }
        _ => {
            let mut graph = format!(
                "color=c=black:s={w}x{h}:r={num}/{den}:d={},format=yuv420p[s0]",
                frames as f64 * den as f64 / num as f64
            );
            for (i, (track, clip)) in clips.iter().enumerate() {
                let mut f = vec![
                    format!("trim=end_frame={}", clip.duration),
                    format!("setpts=(N+{})*{den}/({num}*TB)", clip.start),
                    format!("scale={w}:{h}"),
                ];
                f.extend(effect_filters(clip, w, h));
                if track.opacity < 1.0 {
                    f.push("format=yuva420p".into());
                    f.push(format!("lut=a=val*{}", track.opacity));
                }
                graph.push_str(&format!(
                    ";[{i}:v]{}[c{i}];[s{i}][c{i}]overlay=eof_action=pass:repeatlast=0[s{}]",
                    f.join(","),
                    i + 1
                ));
            }
            c.arg("-filter_complex")
                .arg(graph)
                .arg("-map")
                .arg(format!("[s{}]", clips.len()));
        }
    }
    c.args(["-frames:v", &frames.to_string(), "-an"]);
    c.args([
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-qp",
        &qp.to_string(),
    ])
    .arg(out);
    let start = Instant::now();
    let status = c.status().context("running ffmpeg")?;
    anyhow::ensure!(status.success(), "ffmpeg failed ({status})");
    Ok(start.elapsed().as_secs_f64())
}

/// ffmpeg's filters for the clip's effects (the same kind of work).
fn effect_filters(clip: &framelock::ClipDef, w: u32, h: u32) -> Vec<String> {
    use framelock::Effect;
    clip.effects
        .effects
        .iter()
        .map(|e| match *e {
            Effect::Grade {
                brightness,
                contrast,
                saturation,
                gamma,
                ..
            } => format!(
                "eq=brightness={brightness}:contrast={contrast}:saturation={saturation}:gamma={gamma}"
            ),
            Effect::Blur { radius } => format!("boxblur={radius}:1"),
            Effect::Sharpen { amount } => format!("unsharp=5:5:{amount}"),
            Effect::Transform {
                scale, rotation, ..
            } => format!("rotate={rotation}*PI/180,scale=iw*{scale}:-2,crop={w}:{h}"),
        })
        .collect()
}
