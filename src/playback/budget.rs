//! What a project needs of the memory budget at the least: the decoders and pictures of its
//! busiest instant. `open` refuses a budget below it (a typed error saying the minimum)
//! instead of playing nothing, and sizes the decode pool's decoders to what fits.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use framelock_components::{Project, VideoStreamInfo};

use super::{EngineOptions, PlayerError};

/// The project's busiest instant, in memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Need {
    /// Decoders (one per clip shown at once, as their backends estimate them), the pictures
    /// they hand out (one per clip), the next picture being decoded into while those are
    /// held (the largest clip's) and one composited output frame: the least a budget must
    /// hold to show that instant. (Without the picture in decode, an offline render at
    /// exactly this budget stalled: the 4K three-track scene at 348 MiB.)
    pub minimum: usize,
    /// Of which decoders.
    pub decoders: usize,
    /// The timeline frame where it is needed.
    pub frame: u64,
}

/// One clip's cost while it is shown.
#[derive(Clone, Copy)]
struct Cost {
    decoder: usize,
    picture: usize,
}

/// The busiest instant of `project`. `media` has each clip's stream; `decoded_height` says
/// the height a source of a given height is decoded at (its smallest proxy when proxies
/// stand in, else itself): decoder and picture costs scale with the area.
pub(crate) fn need(
    project: &Project,
    media: &HashMap<PathBuf, VideoStreamInfo>,
    decoded_height: impl Fn(u32) -> u32,
) -> Need {
    let cost = |path: &Path| {
        media.get(path).map_or(
            Cost {
                decoder: 0,
                picture: 0,
            },
            |v| {
                let h = decoded_height(v.height).clamp(1, v.height.max(1));
                let scale = |bytes: usize| {
                    (bytes as f64 * (f64::from(h) / f64::from(v.height.max(1))).powi(2)) as usize
                };
                Cost {
                    decoder: scale(v.decoder_bytes as usize),
                    picture: scale(v.picture_bytes()),
                }
            },
        )
    };
    // Clip starts and ends; at equal times ends come first (a cut is not an overlap).
    let mut events: Vec<(u64, bool, Cost)> = Vec::new();
    for clip in project.tracks.iter().flat_map(|t| &t.clips) {
        if clip.enabled && clip.duration > 0 {
            let c = cost(&clip.media);
            events.push((clip.start, true, c));
            events.push((clip.end(), false, c));
        }
    }
    events.sort_by_key(|&(t, starts, _)| (t, starts));
    let in_decode = events.iter().map(|e| e.2.picture).max().unwrap_or(0);
    let output = project.width as usize * project.height as usize * 4;
    let (mut decoders, mut pictures) = (0usize, 0usize);
    let mut best = Need::default();
    let mut i = 0;
    while i < events.len() {
        let t = events[i].0;
        while i < events.len() && events[i].0 == t {
            let (_, starts, c) = events[i];
            if starts {
                decoders += c.decoder;
                pictures += c.picture;
            } else {
                decoders = decoders.saturating_sub(c.decoder);
                pictures = pictures.saturating_sub(c.picture);
            }
            i += 1;
        }
        let minimum = decoders + pictures + in_decode + output;
        if pictures > 0 && minimum > best.minimum {
            best = Need {
                minimum,
                decoders,
                frame: t,
            };
        }
    }
    best
}

/// The busiest instant of `project` played from its originals, its media probed as `open`
/// probes them; a budget below it is refused with [`PlayerError::BudgetTooSmall`]. For
/// callers that open several engines on one budget (export's segment workers): how many fit.
pub(crate) fn originals_need(
    project: &Project,
    options: &EngineOptions,
) -> Result<Need, PlayerError> {
    let mut media = HashMap::new();
    for clip in project.tracks.iter().flat_map(|t| &t.clips) {
        if !media.contains_key(&clip.media) {
            let asset = super::edit::probe_asset(
                &clip.media,
                &options.registry,
                options.probe_cache.as_ref(),
            )?;
            media.insert(clip.media.clone(), asset.info.video);
        }
    }
    let need = need(project, &media, |h| h);
    need.check(options.memory.max_memory)?;
    Ok(need)
}

impl Need {
    /// Refuses a `budget` below the minimum.
    pub(crate) fn check(&self, budget: usize) -> Result<(), PlayerError> {
        if self.minimum > budget {
            return Err(PlayerError::BudgetTooSmall {
                budget,
                minimum: self.minimum,
                frame: self.frame,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use framelock_components::{ClipDef, Rational, TrackDef};

    fn info(width: u32, height: u32, decoder_bytes: u64) -> VideoStreamInfo {
        let mut v: VideoStreamInfo = serde_json::from_value(serde_json::json!({
            "track_id": 1, "codec": "H264", "codec_string": null, "profile": null,
            "level": null, "width": width, "height": height, "rotation": 0,
            "mirrored": false, "decoder_bytes": decoder_bytes, "bit_depth": 8,
            "chroma": null, "interlaced": false, "has_reordering": false,
            "frame_rate": {"num": 30, "den": 1}, "frame_count": 300, "duration_secs": 10.0,
            "keyframes": [0], "backend": "openh264", "unsupported": null
        }))
        .expect("a stream description");
        v.decoder_bytes = decoder_bytes;
        v
    }

    fn clip(media: &str, start: u64, duration: u64) -> ClipDef {
        serde_json::from_value(serde_json::json!({
            "media": media, "start": start, "duration": duration
        }))
        .expect("a clip")
    }

    #[test]
    fn the_busiest_instant_counts_each_clip_shown_and_cuts_do_not_overlap() {
        let mut p = Project::new(Rational::integer(30), 100, 10);
        p.tracks.push(TrackDef {
            name: "a".into(),
            opacity: 1.0,
            clips: vec![clip("a.mp4", 0, 30), clip("b.mp4", 30, 30)],
        });
        p.tracks.push(TrackDef {
            name: "b".into(),
            opacity: 1.0,
            clips: vec![clip("a.mp4", 40, 10)],
        });
        let media = HashMap::from([
            (PathBuf::from("a.mp4"), info(100, 10, 1000)),
            (PathBuf::from("b.mp4"), info(100, 10, 3000)),
        ]);
        let n = need(&p, &media, |h| h);
        // At 40: b (3000 + 1500) and a (1000 + 1500) together, the picture in decode (1500)
        // and the 4000-byte output.
        assert_eq!(
            n,
            Need {
                minimum: 3000 + 1000 + 1500 * 3 + 4000,
                decoders: 4000,
                frame: 40
            }
        );
        // Decoded at half height, decoders and pictures cost a quarter.
        let half = need(&p, &media, |h| h / 2);
        assert_eq!(half.decoders, 1000);
        assert_eq!(half.minimum, 1000 + 375 * 3 + 4000);
    }
}
