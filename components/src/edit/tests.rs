//! The edit model's tests: every kind applies and its inverse undoes it, each does what it
//! says, and refused edits change nothing.

use super::*;
use crate::Rational;

fn clip(media: &str, start: u64, duration: u64, source_in: u64) -> ClipDef {
    ClipDef {
        media: media.into(),
        start,
        duration,
        source_in,
        enabled: true,
        effects: EffectStack::default(),
        audio: Default::default(),
    }
}

fn project() -> Project {
    let mut p = Project::new(Rational::integer(30), 64, 36);
    p.tracks.push(TrackDef {
        name: "v1".into(),
        opacity: 1.0,
        clips: vec![clip("a.mp4", 0, 30, 0), clip("b.mp4", 30, 30, 10)],
    });
    p.tracks.push(TrackDef {
        name: "v2".into(),
        opacity: 0.5,
        clips: vec![clip("c.mp4", 10, 10, 0)],
    });
    p
}

/// Same rate everywhere: the source frame advances with the timeline.
fn same_rate(c: &ClipDef, t: u64) -> u64 {
    c.source_in + (t - c.start)
}

fn clip_at(p: &Project, track: usize, start: u64) -> &ClipDef {
    p.tracks[track]
        .clips
        .iter()
        .find(|c| c.start == start)
        .expect("clip")
}

/// Sorted clips, so that two projects compare equal whatever order edits left them in.
fn normal(mut p: Project) -> Project {
    for t in &mut p.tracks {
        t.clips.sort_by_key(|c| c.start);
    }
    p
}

#[test]
fn every_edit_kind_applies_and_its_inverse_undoes_it() {
    let r = ClipRef::new;
    let effects = EffectStack {
        dissolve_in: 5,
        ..EffectStack::default()
    };
    let edits = vec![
        Edit::InsertClip {
            track: 1,
            clip: clip("d.mp4", 40, 5, 3),
        },
        Edit::RemoveClip { clip: r(0, 30) },
        Edit::MoveClip {
            clip: r(1, 10),
            track: 0,
            start: 70,
        },
        Edit::TrimClip {
            clip: r(0, 30),
            start: 35,
            duration: 20,
            source_in: 15,
        },
        Edit::SplitClip {
            clip: r(0, 0),
            at: 12,
        },
        Edit::SetMedia {
            clip: r(0, 30),
            media: "e.mp4".into(),
            source_in: 4,
        },
        Edit::SetEffects {
            clip: r(1, 10),
            effects,
        },
        Edit::SetEnabled {
            clip: r(0, 0),
            enabled: false,
        },
        Edit::SetTrackOpacity {
            track: 1,
            opacity: 0.25,
        },
        Edit::AddTrack {
            index: 1,
            track: TrackDef {
                name: "new".into(),
                opacity: 1.0,
                clips: vec![clip("f.mp4", 0, 8, 0)],
            },
        },
        Edit::RemoveTrack { index: 0 },
        Edit::Batch {
            edits: vec![
                Edit::SplitClip {
                    clip: r(0, 30),
                    at: 40,
                },
                Edit::RemoveClip { clip: r(0, 40) },
            ],
        },
    ];
    for edit in edits {
        let before = project();
        let mut p = before.clone();
        let inverse = p.apply_edit(&edit, &same_rate).expect("applies");
        assert_ne!(
            normal(p.clone()),
            normal(before.clone()),
            "{edit:?} changed nothing"
        );
        p.apply_edit(&inverse, &same_rate).expect("inverse applies");
        assert_eq!(normal(p), normal(before), "{edit:?} undone by {inverse:?}");
    }
}

#[test]
fn edits_do_what_they_say() {
    let mut p = project();
    p.apply_edit(
        &Edit::SplitClip {
            clip: ClipRef::new(0, 30),
            at: 41,
        },
        &same_rate,
    )
    .expect("split");
    assert_eq!(clip_at(&p, 0, 30).duration, 11);
    let right = clip_at(&p, 0, 41);
    assert_eq!((right.duration, right.source_in), (19, 21));
    p.apply_edit(
        &Edit::MoveClip {
            clip: ClipRef::new(1, 10),
            track: 1,
            start: 100,
        },
        &same_rate,
    )
    .expect("move");
    assert_eq!(clip_at(&p, 1, 100).source_in, 0);
    assert_eq!(p.duration_frames(), 110);
    p.apply_edit(&Edit::RemoveTrack { index: 0 }, &same_rate)
        .expect("remove track");
    assert_eq!(p.tracks.len(), 1);
    assert_eq!(p.tracks[0].name, "v2");
    // Edits round-trip through JSON, as a host's undo log would keep them.
    let e = Edit::Batch {
        edits: vec![Edit::SetEnabled {
            clip: ClipRef::new(0, 100),
            enabled: false,
        }],
    };
    let back: Edit =
        serde_json::from_str(&serde_json::to_string(&e).expect("json")).expect("parse");
    assert_eq!(back, e);
}

#[test]
fn invalid_edits_change_nothing() {
    let before = project();
    let refused = [
        (
            Edit::MoveClip {
                clip: ClipRef::new(0, 0),
                track: 0,
                start: 40,
            },
            "overlap",
        ),
        (
            Edit::InsertClip {
                track: 1,
                clip: clip("x.mp4", 15, 10, 0),
            },
            "overlap",
        ),
        (
            Edit::RemoveClip {
                clip: ClipRef::new(0, 5),
            },
            "no clip",
        ),
        (
            Edit::SplitClip {
                clip: ClipRef::new(0, 0),
                at: 0,
            },
            "not inside",
        ),
        (
            Edit::TrimClip {
                clip: ClipRef::new(0, 0),
                start: 0,
                duration: 0,
                source_in: 0,
            },
            "zero duration",
        ),
        (
            Edit::SetTrackOpacity {
                track: 0,
                opacity: 2.0,
            },
            "opacity",
        ),
        (Edit::RemoveTrack { index: 5 }, "no track"),
        (
            Edit::Batch {
                edits: vec![
                    Edit::RemoveClip {
                        clip: ClipRef::new(1, 10),
                    },
                    Edit::RemoveClip {
                        clip: ClipRef::new(9, 0),
                    },
                ],
            },
            "no clip",
        ),
        (
            Edit::Batch {
                edits: vec![
                    Edit::RemoveTrack { index: 1 },
                    Edit::RemoveTrack { index: 0 },
                ],
            },
            "empty",
        ),
    ];
    for (edit, why) in refused {
        let mut p = before.clone();
        let err = p.apply_edit(&edit, &same_rate).expect_err("refused");
        assert!(err.to_string().contains(why), "{edit:?}: {err}");
        assert_eq!(p, before, "{edit:?} changed the project");
    }
}
