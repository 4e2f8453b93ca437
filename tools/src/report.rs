//! `framelock bench --report report.html`: a self-contained HTML report of one scene run —
//! frame time over time, a frame-time histogram, memory over time, the cache hit rate over
//! time and the timeline performance map, each an inline SVG drawn by `plotters` — and the
//! run's JSON beside it (`report.json`) and inside it.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use framelock::{SegmentCost, SegmentStatus};
use plotters::prelude::*;

/// One tick of the run.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Seconds since the measured phase started.
    pub t: f64,
    /// The tick's schedule time, ms.
    pub tick_ms: f64,
    /// Wall time since the previous tick, ms (the frame time the viewer saw).
    pub frame_ms: f64,
    /// Pool bytes accounted.
    pub memory_bytes: usize,
    /// Cumulative hit rate of the phase (0..=1).
    pub hit_rate: f64,
}

type Plot = Result<String, Box<dyn std::error::Error>>;

fn line_chart(
    title: &str,
    y_desc: &str,
    points: &[(f64, f64)],
    y_max: f64,
    line: Option<f64>,
) -> Plot {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 280)).into_drawing_area();
        root.fill(&WHITE)?;
        let x_max = points.last().map_or(1.0, |p| p.0).max(1e-3);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max.max(1e-9))?;
        chart
            .configure_mesh()
            .x_desc("seconds")
            .y_desc(y_desc)
            .draw()?;
        chart.draw_series(LineSeries::new(points.iter().copied(), &BLUE))?;
        if let Some(y) = line {
            chart.draw_series(LineSeries::new([(0.0, y), (x_max, y)], &RED))?;
        }
        root.present()?;
    }
    Ok(svg)
}

fn histogram(title: &str, values: &[f64], budget_ms: f64) -> Plot {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 280)).into_drawing_area();
        root.fill(&WHITE)?;
        let bins = 40u32;
        let max = values.iter().copied().fold(budget_ms * 2.0, f64::max);
        let width = max / f64::from(bins);
        let mut counts = vec![0u32; bins as usize];
        for v in values {
            let b = ((v / width) as usize).min(bins as usize - 1);
            counts[b] += 1;
        }
        let top = counts.iter().copied().max().unwrap_or(1).max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d((0u32..bins).into_segmented(), 0u32..top + top / 10 + 1)?;
        chart
            .configure_mesh()
            .x_desc(format!(
                "frame time, bins of {width:.2} ms (frame budget {budget_ms:.1} ms)"
            ))
            .y_desc("ticks")
            .x_label_formatter(&|x| match x {
                SegmentValue::CenterOf(b) | SegmentValue::Exact(b) => {
                    format!("{:.0}", f64::from(*b) * width)
                }
                SegmentValue::Last => String::new(),
            })
            .draw()?;
        chart.draw_series(
            Histogram::vertical(&chart)
                .style(BLUE.filled())
                .data(counts.iter().enumerate().map(|(i, &c)| (i as u32, c))),
        )?;
        root.present()?;
    }
    Ok(svg)
}

fn timeline_map(map: &[SegmentCost]) -> Plot {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 280)).into_drawing_area();
        root.fill(&WHITE)?;
        let end = map.last().map_or(1, |s| s.end).max(1) as f64;
        let budget = map.first().map_or(33.3, |s| s.budget_ms);
        let top = map.iter().map(|s| s.cost_ms).fold(budget * 1.5, f64::max);
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "timeline performance map (cost per frame vs budget)",
                ("sans-serif", 16),
            )
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..end, 0f64..top)?;
        chart
            .configure_mesh()
            .x_desc("timeline frame")
            .y_desc("ms per frame")
            .draw()?;
        chart.draw_series(map.iter().map(|s| {
            let colour = match s.status {
                SegmentStatus::Smooth => GREEN.mix(0.7).filled(),
                SegmentStatus::NeedsOptimization => RED.mix(0.7).filled(),
            };
            Rectangle::new([(s.start as f64, 0.0), (s.end as f64, s.cost_ms)], colour)
        }))?;
        chart.draw_series(LineSeries::new([(0.0, budget), (end, budget)], &BLACK))?;
        root.present()?;
    }
    Ok(svg)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Writes `path` (HTML) and `path` with a `.json` extension.
pub fn write(
    path: &Path,
    title: &str,
    samples: &[Sample],
    map: &[SegmentCost],
    summary: &serde_json::Value,
    budget_ms: f64,
) -> anyhow::Result<()> {
    let frame: Vec<(f64, f64)> = samples.iter().map(|s| (s.t, s.frame_ms)).collect();
    let ticks: Vec<f64> = samples.iter().map(|s| s.frame_ms).collect();
    let memory: Vec<(f64, f64)> = samples
        .iter()
        .map(|s| (s.t, s.memory_bytes as f64 / (1 << 20) as f64))
        .collect();
    let hits: Vec<(f64, f64)> = samples.iter().map(|s| (s.t, s.hit_rate * 100.0)).collect();
    let max_frame = ticks.iter().copied().fold(budget_ms * 1.5, f64::max);
    let max_mem = memory.iter().map(|m| m.1).fold(1.0, f64::max) * 1.1;
    let plots = [
        line_chart(
            "frame time (blue) against the frame budget (red)",
            "ms",
            &frame,
            max_frame,
            Some(budget_ms),
        ),
        histogram("frame time histogram", &ticks, budget_ms),
        line_chart(
            "memory (pool bytes accounted)",
            "MiB",
            &memory,
            max_mem,
            None,
        ),
        line_chart("cache hit rate (cumulative)", "%", &hits, 100.0, None),
        timeline_map(map),
    ];
    let mut svgs = Vec::new();
    for p in plots {
        svgs.push(p.map_err(|e| anyhow::anyhow!("plotting: {e}"))?);
    }
    let data = serde_json::json!({
        "summary": summary,
        "timeline": map.iter().map(|s| serde_json::json!({
            "start": s.start, "end": s.end, "layers": s.layers, "cost_ms": s.cost_ms,
            "budget_ms": s.budget_ms, "estimated": s.estimated,
            "status": match s.status { SegmentStatus::Smooth => "smooth", SegmentStatus::NeedsOptimization => "needs optimization" },
        })).collect::<Vec<_>>(),
        "samples": samples.iter().map(|s| [s.t, s.tick_ms, s.frame_ms, s.memory_bytes as f64, s.hit_rate]).collect::<Vec<_>>(),
        "sample_columns": ["t_s", "tick_ms", "frame_ms", "memory_bytes", "hit_rate"],
    });
    let json = serde_json::to_string_pretty(&data)?;
    let mut html = String::new();
    writeln!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>body{{font-family:sans-serif;max-width:800px;margin:2em auto}}pre{{background:#f4f4f4;padding:1em;overflow:auto}}</style></head><body>",
        escape(title)
    )?;
    writeln!(html, "<h1>{}</h1>", escape(title))?;
    writeln!(
        html,
        "<pre>{}</pre>",
        escape(&serde_json::to_string_pretty(summary)?)
    )?;
    for svg in &svgs {
        writeln!(html, "<figure>{svg}</figure>")?;
    }
    writeln!(
        html,
        "<script type=\"application/json\" id=\"data\">{}</script></body></html>",
        json.replace("</", "<\\/")
    )?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut f = framelock::AtomicFile::create(path)
        .with_context(|| format!("writing {}", path.display()))?;
    std::io::Write::write_all(&mut f, html.as_bytes())?;
    f.commit()?;
    let json_path = path.with_extension("json");
    let mut f = framelock::AtomicFile::create(&json_path)?;
    std::io::Write::write_all(&mut f, json.as_bytes())?;
    f.commit()?;
    Ok(())
}
