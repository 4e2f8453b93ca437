//! Live timeline edits on the virtual clock: every edit kind applied while playing shows the
//! new timeline on the next ticks (burned-in index), undo restores it, a moved clip keeps its
//! rendered frames while an effect change re-renders only its own clip, refused edits change
//! nothing, the edited project saves and reopens the same, and the sound follows an edit to
//! the sample.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests and benches fail loudly"
)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use framelock::{
    AudioClipDef, AudioTrackDef, ClipDef, ClipRef, Edit, EditError, Effect, EffectStack,
    EngineEvent, EngineOptions, PlaybackEngine, PlayerError, PresentedFrame, Project, Rational,
    TrackDef, VirtualClock, testcard,
};

const RATE: Rational = Rational { num: 30, den: 1 };

fn media(name: &str) -> PathBuf {
    common::clip(name, 160, 90, RATE, 300, 10)
}

fn track(clips: Vec<ClipDef>) -> TrackDef {
    TrackDef {
        name: String::new(),
        opacity: 1.0,
        clips,
    }
}

fn clip(media: &Path, start: u64, duration: u64, source_in: u64) -> ClipDef {
    common::clip_def(media, start, duration, source_in, EffectStack::default())
}

/// The source frame the timeline shows at `t` (every track opaque or hidden, every media at
/// the project's rate): the topmost enabled clip there, on a track that is not hidden.
fn expected(p: &Project, t: u64) -> Option<u64> {
    let mut shown = None;
    for track in p.tracks.iter().filter(|t| t.opacity > 0.0) {
        if let Some(c) = track.clips.iter().find(|c| c.enabled && c.covers(t)) {
            shown = Some(c.source_frame(t, p.frame_rate, p.frame_rate));
        }
    }
    shown
}

/// Clips sorted by start, so that projects compare equal whatever order edits left them in.
fn normal(mut p: Project) -> Project {
    for t in &mut p.tracks {
        t.clips.sort_by_key(|c| c.start);
    }
    p
}

type Shown = Arc<Mutex<Vec<(u64, Option<u64>, bool)>>>;

/// An edit made from where the engine stands.
type Step = Box<dyn Fn(&PlaybackEngine) -> Edit>;

/// The engine on the virtual clock (no GPU), recording each picture's timeline frame,
/// burned-in index and exactness.
fn open(project: &Project, options: EngineOptions) -> (PlaybackEngine, Shown) {
    let shown: Shown = Arc::default();
    let into = shown.clone();
    let sink = move |f: PresentedFrame| {
        let index = if f.picture.format == framelock::PixelFormat::Rgba8 {
            testcard::read_index_rgba(&f.picture.planes[0], f.picture.width, f.picture.height)
        } else {
            testcard::read_index(&f.picture)
        };
        into.lock()
            .unwrap()
            .push((f.timeline_frame, index, f.exact));
    };
    let options = EngineOptions {
        gpu: None,
        ..options
    };
    let engine =
        PlaybackEngine::open(project, options, Arc::new(VirtualClock::new()), sink).expect("opens");
    (engine, shown)
}

fn tick(engine: &mut PlaybackEngine) {
    engine.tick();
    assert!(engine.wait_idle(Duration::from_secs(60)), "workers stuck");
}

/// Applies `edit` while playing, plays 8 ticks, and checks that every picture since shows
/// what the edited timeline has at its frame. Returns the inverse.
fn edit_and_check(engine: &mut PlaybackEngine, shown: &Shown, edit: Edit) -> Edit {
    let from = shown.lock().unwrap().len();
    let inverse = engine
        .edit(&edit)
        .unwrap_or_else(|e| panic!("{edit:?}: {e}"));
    for _ in 0..8 {
        tick(engine);
    }
    let project = engine.project().clone();
    let after = shown.lock().unwrap()[from..].to_vec();
    assert!(after.len() >= 4, "{edit:?}: only {} pictures", after.len());
    for (t, index, exact) in after {
        assert!(exact, "{edit:?}: frame {t} was not exact");
        assert_eq!(
            index,
            expected(&project, t),
            "{edit:?}: frame {t} shows the wrong source frame"
        );
    }
    inverse
}

#[test]
fn every_edit_kind_while_playing_shows_the_new_timeline_and_undo_restores_it() {
    let m = media("edit-m.mp4");
    let n = media("edit-n.mp4");
    let mut project = Project::new(RATE, 160, 90);
    project.tracks.push(track(vec![clip(&m, 0, 240, 0)]));
    project.tracks.push(track(vec![clip(&m, 200, 40, 100)]));
    let (mut engine, shown) = open(&project, EngineOptions::default());
    let events = engine.events();
    engine.play();
    for _ in 0..6 {
        tick(&mut engine);
    }
    let mut undo = Vec::new();
    let p = |e: &PlaybackEngine| e.playhead().frame;

    let s1 = p(&engine) + 1;
    let steps: Vec<Step> = vec![
        Box::new(move |_| Edit::InsertClip {
            track: 1,
            clip: clip(&media("edit-m.mp4"), s1, 30, 150),
        }),
        Box::new(move |_| Edit::TrimClip {
            clip: ClipRef::new(1, s1),
            start: s1,
            duration: 60,
            source_in: 160,
        }),
        Box::new(move |e| Edit::SplitClip {
            clip: ClipRef::new(1, s1),
            at: p(e) + 2,
        }),
        // The right part of the split starts at the second clip of track 1 after s1.
        Box::new(move |e| Edit::RemoveClip {
            clip: ClipRef::new(
                1,
                e.project().tracks[1]
                    .clips
                    .iter()
                    .map(|c| c.start)
                    .filter(|&s| s > s1 && s < 200)
                    .min()
                    .expect("the right part"),
            ),
        }),
        {
            let n = n.clone();
            Box::new(move |_| Edit::SetMedia {
                clip: ClipRef::new(0, 0),
                media: n.clone(),
                source_in: 5,
            })
        },
        Box::new(move |e| Edit::AddTrack {
            index: 2,
            track: track(vec![clip(&media("edit-m.mp4"), p(e) + 1, 40, 200)]),
        }),
        Box::new(|_| Edit::SetTrackOpacity {
            track: 2,
            opacity: 0.0,
        }),
        {
            let n = n.clone();
            Box::new(move |_| Edit::AddTrack {
                index: 0,
                track: track(vec![clip(&n, 0, 240, 30)]),
            })
        },
        Box::new(|_| Edit::SetEnabled {
            clip: ClipRef::new(1, 0),
            enabled: false,
        }),
        Box::new(move |e| Edit::MoveClip {
            clip: ClipRef::new(2, 200),
            track: 2,
            start: p(e) + 1,
        }),
        Box::new(|_| Edit::RemoveTrack { index: 3 }),
    ];
    for step in steps {
        let edit = step(&engine);
        undo.push(edit_and_check(&mut engine, &shown, edit));
    }
    let edited = engine.project().clone();
    assert_ne!(normal(edited.clone()), normal(project.clone()));
    assert_eq!(engine.playhead().edits, 11);
    let got: Vec<_> = events
        .try_iter()
        .filter_map(|e| match e {
            EngineEvent::TimelineEdited { edits, .. } => Some(edits),
            _ => None,
        })
        .collect();
    assert_eq!(got, (1..=11).collect::<Vec<_>>());

    // Undo, newest first: the timeline comes back as it was, and shows so.
    engine.seek_frame(10);
    for inverse in undo.into_iter().rev() {
        edit_and_check(&mut engine, &shown, inverse);
    }
    assert_eq!(normal(engine.project().clone()), normal(project));
    assert_eq!(engine.metrics().decode_errors, 0);
}

#[test]
fn a_moved_clip_keeps_its_rendered_frames_and_an_effect_change_renders_only_its_clip() {
    let m = media("edit-m.mp4");
    let grade = |b: f32| EffectStack {
        effects: vec![Effect::Grade {
            brightness: b,
            contrast: 1.0,
            saturation: 1.0,
            gamma: 1.0,
            lift: 0.0,
            gain: 1.0,
        }],
        ..EffectStack::default()
    };
    let mut project = Project::new(RATE, 160, 90);
    project.tracks.push(track(vec![
        common::clip_def(&m, 0, 20, 0, grade(0.02)),
        common::clip_def(&m, 20, 20, 100, grade(0.04)),
    ]));
    // No pre-roll: the renders counted are those of the frames shown, not of whichever
    // frames after them a paused engine made meanwhile.
    let mut options = EngineOptions::default();
    options.quality.preroll_frames = 0;
    let (mut engine, shown) = open(&project, options);
    let renders = |e: &PlaybackEngine| {
        let s = e.render_stats();
        s.cpu_frames + s.gpu_frames
    };
    let show_all = |e: &mut PlaybackEngine, frames: std::ops::Range<u64>| {
        for t in frames {
            common::show(e, t);
        }
    };
    show_all(&mut engine, 0..5);
    show_all(&mut engine, 20..25);
    let rendered = renders(&engine);
    assert!(rendered >= 10, "{rendered} effects frames");

    // Moved: the same content at other timeline frames, from the rendered tier.
    engine
        .edit(&Edit::MoveClip {
            clip: ClipRef::new(0, 0),
            track: 0,
            start: 100,
        })
        .expect("move");
    let sync = engine.last_edit_sync();
    assert_eq!(
        (sync.kept, sync.changed, sync.added, sync.removed),
        (1, 1, 0, 0)
    );
    assert_eq!(engine.playhead().duration, 120);
    let hits = engine.metrics().cache_hits;
    show_all(&mut engine, 100..105);
    assert_eq!(
        renders(&engine),
        rendered,
        "the moved clip was rendered again"
    );
    assert!(engine.metrics().cache_hits >= hits + 5);
    for &(t, index, _) in shown.lock().unwrap().iter().rev().take(5) {
        assert_eq!(index, Some(t - 100), "frame {t}");
    }

    // One clip's effect changes: its frames render again, the other clip's do not.
    engine
        .edit(&Edit::SetEffects {
            clip: ClipRef::new(0, 20),
            effects: grade(0.06),
        })
        .expect("effects");
    show_all(&mut engine, 20..25);
    let after = renders(&engine);
    assert!(after >= rendered + 5, "{after} vs {rendered}");
    show_all(&mut engine, 100..105);
    assert_eq!(
        renders(&engine),
        after,
        "the untouched clip was rendered again"
    );
    for &(t, index, _) in shown.lock().unwrap().iter().rev().take(5) {
        assert_eq!(index, Some(t - 100), "frame {t}");
    }
}

#[test]
fn refused_edits_change_nothing_and_a_paused_edit_shows_at_once() {
    let m = media("edit-m.mp4");
    let mut project = Project::new(RATE, 160, 90);
    project
        .tracks
        .push(track(vec![clip(&m, 0, 30, 0), clip(&m, 30, 30, 50)]));
    let (mut engine, shown) = open(&project, EngineOptions::default());
    common::show(&mut engine, 40);
    let before = engine.project().clone();
    let edits = engine.playhead().edits;
    let missing = common::media_dir().join("no-such-file.mp4");
    let refused = [
        Edit::MoveClip {
            clip: ClipRef::new(0, 0),
            track: 0,
            start: 10,
        },
        Edit::RemoveClip {
            clip: ClipRef::new(0, 5),
        },
        Edit::InsertClip {
            track: 0,
            clip: clip(&missing, 60, 10, 0),
        },
        // 295 + 30 frames of a 300-frame file.
        Edit::InsertClip {
            track: 0,
            clip: clip(&m, 60, 30, 295),
        },
        Edit::Batch {
            edits: vec![
                Edit::RemoveClip {
                    clip: ClipRef::new(0, 0),
                },
                Edit::RemoveClip {
                    clip: ClipRef::new(0, 30),
                },
            ],
        },
    ];
    let errors: Vec<PlayerError> = refused
        .iter()
        .map(|e| engine.edit(e).expect_err("refused"))
        .collect();
    assert!(
        matches!(&errors[0], PlayerError::Edit(EditError::Invalid(m)) if m.contains("overlap")),
        "{}",
        errors[0]
    );
    assert!(
        matches!(&errors[1], PlayerError::Edit(EditError::NoSuchClip(_))),
        "{}",
        errors[1]
    );
    assert!(
        matches!(&errors[2], PlayerError::Media { path, .. } if *path == missing),
        "{}",
        errors[2]
    );
    assert!(
        matches!(
            &errors[3],
            PlayerError::ClipBeyondMedia {
                needs: 325,
                has: 300,
                ..
            }
        ),
        "{}",
        errors[3]
    );
    assert!(
        matches!(&errors[4], PlayerError::Edit(EditError::EmptyTimeline)),
        "{}",
        errors[4]
    );
    assert_eq!(engine.project(), &before);
    assert_eq!(engine.playhead().edits, edits);
    let pictures = shown.lock().unwrap().len();
    for _ in 0..3 {
        tick(&mut engine);
    }
    assert_eq!(
        shown.lock().unwrap().len(),
        pictures,
        "nothing to show again"
    );
    assert_eq!(shown.lock().unwrap().last().unwrap().1, Some(60));

    // A valid edit while paused: the frame on screen is made again from the new timeline.
    engine
        .edit(&Edit::SetMedia {
            clip: ClipRef::new(0, 30),
            media: m.clone(),
            source_in: 100,
        })
        .expect("edit");
    for _ in 0..4 {
        tick(&mut engine);
    }
    let after = shown.lock().unwrap()[pictures..].to_vec();
    assert_eq!(
        after.last().map(|f| (f.0, f.1)),
        Some((40, Some(110))),
        "{after:?}"
    );
    // Same sources, another look (an effect): presented again all the same.
    let pictures = shown.lock().unwrap().len();
    let mut sharpen = EffectStack::default();
    sharpen.effects.push(Effect::Sharpen { amount: 0.1 });
    assert!(engine.set_clip_effects(0, 30, sharpen));
    for _ in 0..4 {
        tick(&mut engine);
    }
    let after = shown.lock().unwrap()[pictures..].to_vec();
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!((after[0].0, after[0].1), (40, Some(110)));
}

#[test]
fn the_edited_project_saves_and_reopens_the_same() {
    let m = media("edit-m.mp4");
    let n = media("edit-n.mp4");
    let mut project = Project::new(RATE, 160, 90);
    project.tracks.push(track(vec![clip(&m, 0, 60, 0)]));
    let (mut engine, _) = open(&project, EngineOptions::default());
    let edits = [
        Edit::SplitClip {
            clip: ClipRef::new(0, 0),
            at: 20,
        },
        Edit::SetMedia {
            clip: ClipRef::new(0, 20),
            media: n.clone(),
            source_in: 70,
        },
        Edit::AddTrack {
            index: 1,
            track: track(vec![clip(&m, 50, 20, 200)]),
        },
    ];
    for e in &edits {
        engine.edit(e).expect("edit");
    }
    let path = common::media_dir().join("edited.json");
    std::fs::write(&path, engine.project().to_json()).expect("save");
    let back = Project::from_json(&std::fs::read_to_string(&path).expect("read")).expect("load");
    assert_eq!(&back, engine.project());
    assert_eq!(back.duration_frames(), 70);
    let (mut reopened, shown) = open(&back, EngineOptions::default());
    for t in [10, 30, 55, 65] {
        common::show(&mut reopened, t);
        let last = *shown.lock().unwrap().last().unwrap();
        assert_eq!((last.0, last.1), (t, expected(&back, t)), "frame {t}");
    }
    assert_eq!(expected(&back, 30), Some(80));
}

/// A 48 kHz mono click on the first sample of every second.
fn clicks() -> PathBuf {
    common::cached("edit-clicks.wav", |path| {
        let ok = common::ffmpeg()
            .args(["-f", "lavfi", "-i"])
            .arg("aevalsrc='if(eq(mod(n\\,48000)\\,0)\\,0.9\\,0)':s=48000:d=6")
            .args(["-c:a", "pcm_s16le"])
            .arg(path)
            .status()
            .expect("ffmpeg");
        assert!(ok.success());
    })
}

#[test]
fn the_sound_follows_an_edit_to_the_sample() {
    let m = media("edit-m.mp4");
    let mut project = Project::new(RATE, 160, 90);
    project.tracks.push(track(vec![clip(&m, 0, 180, 0)]));
    project
        .audio_tracks
        .push(AudioTrackDef::new(vec![AudioClipDef::new(
            clicks(),
            0,
            180,
        )]));
    let (mut engine, _) = open(&project, EngineOptions::default());
    engine.play();
    tick(&mut engine);
    let out = engine.audio_output().expect("audio");
    let ch = usize::from(out.format().channels);
    let pull = engine.audio_pull().expect("pull");
    // Pulls `frames` frames; returns the frames (from the first pulled) that carry a click.
    let listen = |engine: &PlaybackEngine, frames: usize| -> Vec<usize> {
        let out = engine.audio_output().expect("audio");
        let mut got = Vec::with_capacity(frames);
        let mut buf = vec![0.0f32; 1024 * ch];
        while got.len() < frames {
            let n = (frames - got.len()).min(1024);
            assert!(
                out.wait_buffered(n, Duration::from_secs(30)),
                "mixer behind"
            );
            assert_eq!(pull.pull(&mut buf[..n * ch]), n, "underrun");
            got.extend(buf[..n * ch].chunks(ch).map(|f| f[0]));
        }
        got.iter()
            .enumerate()
            .filter(|(_, s)| s.abs() > 0.5)
            .map(|(i, _)| i)
            .collect()
    };
    assert_eq!(listen(&engine, 24_000), vec![0]);
    engine
        .edit(&Edit::SetAudioTrackMute {
            track: 0,
            mute: true,
        })
        .expect("mute");
    // 24000..72000: the click at 48000 is muted.
    assert_eq!(listen(&engine, 48_000), Vec::<usize>::new());
    engine
        .edit(&Edit::SetAudioTrackMute {
            track: 0,
            mute: false,
        })
        .expect("unmute");
    // 72000..120000: the click at 96000, on its sample.
    assert_eq!(listen(&engine, 48_000), vec![24_000]);
    assert_eq!(engine.audio_output().expect("audio").position(), 120_000);
}
