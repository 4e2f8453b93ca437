//! Live timeline edits ([`PlaybackEngine::edit`]): applied between ticks, all or nothing,
//! each answering with its inverse (undo), the world changed only where the edit reached.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bevy_ecs::prelude::*;
use framelock_components::{
    Clip, ClipDef, Edit, EffectStack, MediaAsset, Project, ProxyAssets, Rational,
};
use framelock_engine::audio::{AudioOutput, Mixer, Waveforms};
use framelock_engine::media::{DecoderRegistry, MediaError, ProbeCache, probe};
use framelock_engine::memory::BufferPool;
use framelock_systems::{AssetIds, AudioClock, EngineEvent, ProxyService, TimelineSync};

use super::{PlaybackEngine, PlayerError, audio::AudioSync};

/// What opening new media during an edit needs from the options the engine opened with.
#[derive(Clone)]
pub(super) struct MediaContext {
    pub(super) registry: DecoderRegistry,
    pub(super) probe_cache: Option<ProbeCache>,
    /// Queue proxies for media an edit brings in (as at open).
    pub(super) auto_proxies: bool,
    /// The audio options: mixing on, the ring's frames, the scrub snippet.
    pub(super) audio: bool,
    pub(super) audio_ring_frames: usize,
    pub(super) scrub_audio: Option<std::time::Duration>,
    pub(super) pool: BufferPool,
    /// Media found to have no sound while the timeline had none: an edit starts the audio
    /// output only when the timeline has something else to play (trying means opening every
    /// file).
    pub(super) silent: std::collections::HashSet<PathBuf>,
}

/// Probes `path` and checks that it can be decoded: the asset to spawn (its id is set when
/// spawned).
pub(super) fn probe_asset(
    path: &Path,
    registry: &DecoderRegistry,
    probe_cache: Option<&ProbeCache>,
) -> Result<MediaAsset, PlayerError> {
    let media_error = |source| PlayerError::Media {
        path: path.to_path_buf(),
        source,
    };
    let info = match probe_cache {
        Some(cache) => cache.probe(path, registry),
        None => probe(path, registry),
    }
    .map_err(media_error)?;
    if let Some(why) = &info.video.unsupported {
        return Err(media_error(MediaError::Unsupported {
            codec: info.video.codec.to_string(),
            reason: why.clone(),
        }));
    }
    let fingerprint = framelock_engine::cache::fingerprint(path).map_err(media_error)?;
    Ok(MediaAsset {
        id: 0,
        path: path.to_path_buf(),
        fingerprint,
        info,
    })
}

/// Clip `ci` of track `ti` placed on `asset` (entity `entity`); an error when it asks for
/// source frames the media does not have.
pub(super) fn place(
    entity: Entity,
    asset: &MediaAsset,
    (ti, ci): (usize, usize),
    def: &ClipDef,
    rate: Rational,
) -> Result<Clip, PlayerError> {
    let video = &asset.info.video;
    let placed = Clip::placed(entity, video, ti, def);
    let last = placed.source_frame_unclamped(def.end().saturating_sub(1), rate);
    if last >= video.frame_count {
        return Err(PlayerError::ClipBeyondMedia {
            track: ti,
            clip: ci,
            path: def.media.clone(),
            needs: last + 1,
            has: video.frame_count,
        });
    }
    Ok(placed)
}

/// Starts the audio output for `project` when it has sound to play: the mixer (its decoded
/// audio and ring counted in `pool`), waveforms requested, the audio clock in `world`.
pub(super) fn start_audio(
    project: &Project,
    media: &mut MediaContext,
    waveforms: &Waveforms,
    world: &mut World,
) -> Result<Option<AudioSync>, PlayerError> {
    if !media.audio {
        return Ok(None);
    }
    let mut mixer = Mixer::new(project)?;
    media
        .silent
        .extend(mixer.skipped().iter().map(|(p, _)| p.clone()));
    mixer.count_in(&media.pool);
    for source in mixer.sources() {
        let path = source.source().path();
        if let Ok(fp) = framelock_engine::cache::fingerprint(path) {
            waveforms.request(path, fp);
        }
    }
    if mixer.clips().is_empty() {
        return Ok(None);
    }
    let output = Arc::new(AudioOutput::start(mixer, media.audio_ring_frames));
    output.count_in(&media.pool);
    world.insert_resource(AudioClock::new(output.clone()));
    let snippet = media.scrub_audio.map_or(0, |d| {
        (d.as_secs_f64() * f64::from(project.audio.sample_rate)) as usize
    });
    Ok(Some(AudioSync {
        output,
        generation: None,
        playing: false,
        scrubbed: None,
        snippet,
    }))
}

impl PlaybackEngine {
    /// Applies a live edit between two ticks and returns the edit that undoes it (apply that
    /// to undo; apply `edit` again to redo). All or nothing: an edit that would overlap two
    /// clips, name a clip or track that is not there, leave the timeline empty, or bring in
    /// media that cannot be decoded (or is too short for its clip) changes nothing and says
    /// why ([`PlayerError::Edit`], [`PlayerError::Media`], [`PlayerError::ClipBeyondMedia`]).
    ///
    /// New media files are probed here, on the calling thread; the mixer's thread opens
    /// their sound. The next tick shows the frame under the playhead from the new timeline
    /// (also while paused), and [`EngineEvent::TimelineEdited`] is sent. Cached frames stay:
    /// every cache key is a content key, so a moved clip's rendered frames are still hits,
    /// and only frames whose content changed are made again. [`PlaybackEngine::project`]
    /// is the timeline as edited (save it to keep the edits).
    pub fn edit(&mut self, edit: &Edit) -> Result<Edit, PlayerError> {
        let mut assets = self.asset_entities();
        // New media, probed before anything changes.
        let mut fresh: HashMap<PathBuf, MediaAsset> = HashMap::new();
        for path in edit.media() {
            if !assets.contains_key(&path) && !fresh.contains_key(&path) {
                let asset =
                    probe_asset(&path, &self.media.registry, self.media.probe_cache.as_ref())?;
                fresh.insert(path, asset);
            }
        }
        let rate = self.project.frame_rate;
        let mut next = self.project.clone();
        let inverse = {
            let world = &self.world;
            let info = |path: &Path| -> Option<&MediaAsset> {
                fresh
                    .get(path)
                    .or_else(|| world.get::<MediaAsset>(*assets.get(path)?))
            };
            // The source frame a clip shows at `t`, by its media's rate (or frame times).
            let source_frame = |def: &ClipDef, t: u64| -> u64 {
                info(&def.media)
                    .and_then(|a| place(Entity::PLACEHOLDER, a, (0, 0), def, rate).ok())
                    .map_or(def.source_in + (t - def.start), |c| {
                        c.source_frame_unclamped(t, rate)
                    })
            };
            let inverse = next.apply_edit(edit, &source_frame)?;
            for (ti, track) in next.tracks.iter().enumerate() {
                for (ci, def) in track.clips.iter().enumerate() {
                    let asset = info(&def.media).ok_or_else(|| PlayerError::Media {
                        path: def.media.clone(),
                        source: MediaError::Decode {
                            backend: "edit",
                            reason: "not probed".into(),
                        },
                    })?;
                    place(Entity::PLACEHOLDER, asset, (ti, ci), def, rate)?;
                }
            }
            inverse
        };

        // Committed from here on: nothing below can fail.
        for (path, mut asset) in fresh {
            asset.id = self.world.resource_mut::<AssetIds>().allocate();
            let height = asset.info.video.height;
            let e = self.world.spawn((asset, ProxyAssets::default())).id();
            assets.insert(path.clone(), e);
            if let Some(mut proxies) = self.world.get_resource_mut::<ProxyService>() {
                let absolute = framelock_engine::proxy::files::absolute(&path);
                if self.media.auto_proxies {
                    proxies
                        .manager
                        .submit_for(&absolute, height, &proxies.strategy);
                }
                proxies.sources.insert(absolute, e);
            }
        }
        let sync = framelock_systems::sync_timeline(&mut self.world, &next, &assets);
        debug_assert!(sync.is_some(), "every clip's asset was spawned");
        self.last_sync = sync.unwrap_or_default();
        // The timeline's index now, not at the next tick: what is asked of the timeline
        // between ticks (the render bar, the background queue) sees the edit at once. (The
        // schedule's own run rebuilds it again on the next tick, from the same data.)
        {
            use bevy_ecs::system::RunSystemOnce;
            let _ = self
                .world
                .run_system_once(framelock_systems::index_timeline);
        }
        self.project = next;
        self.resync_audio();
        let now = self.clock_now();
        self.background.edited(&mut self.world, now);
        let p = self.playhead();
        self.emit(EngineEvent::TimelineEdited {
            edits: p.edits,
            duration: p.duration,
        });
        Ok(inverse)
    }

    /// The timeline as it is now, with every live edit applied: what to save
    /// ([`Project::to_json`]) to keep them.
    pub fn project(&self) -> &Project {
        &self.project
    }

    /// What the last edit did to the world's clips (entities kept, changed in place, added,
    /// removed): an edit touches only the clips it names.
    pub fn last_edit_sync(&self) -> TimelineSync {
        self.last_sync
    }

    /// Replaces the effects of the clip on `track` that starts at timeline frame `start`
    /// (an empty stack removes them): [`PlaybackEngine::edit`] with [`Edit::SetEffects`].
    /// Its effect-stack hash changes with it, so exactly that clip's rendered frames miss
    /// from now on. Returns `false` when there is no such clip.
    pub fn set_clip_effects(&mut self, track: usize, start: u64, effects: EffectStack) -> bool {
        self.edit(&Edit::SetEffects {
            clip: framelock_components::ClipRef::new(track, start),
            effects,
        })
        .is_ok()
    }

    /// The original (not proxy) asset entities, by path.
    fn asset_entities(&mut self) -> HashMap<PathBuf, Entity> {
        let mut q = self
            .world
            .query_filtered::<(Entity, &MediaAsset), With<ProxyAssets>>();
        q.iter(&self.world)
            .map(|(e, a)| (a.path.clone(), e))
            .collect()
    }

    /// The mix follows the timeline: the running output is laid out again (from the frame
    /// being heard), or started when the timeline now has sound and had none.
    fn resync_audio(&mut self) {
        match &self.audio {
            Some(a) => a.output.relayout(&self.project),
            None => {
                let p = &self.project;
                let sounding = p
                    .audio_tracks
                    .iter()
                    .any(|t| !t.mute && !t.clips.is_empty())
                    || p.tracks.iter().flat_map(|t| &t.clips).any(|c| {
                        c.enabled && !c.audio.muted && !self.media.silent.contains(&c.media)
                    });
                if !sounding {
                    return;
                }
                if let Ok(Some(started)) = start_audio(
                    &self.project,
                    &mut self.media,
                    &self.waveforms,
                    &mut self.world,
                ) {
                    self.audio = Some(started);
                }
            }
        }
    }
}
