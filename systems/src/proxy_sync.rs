//! `proxy_sync` — reads [`ProxyService`] (the job manager's status); writes [`Proxy`],
//! [`ProxyAssets`], [`AssetIds`], [`Events`] (`ProxyReady`, `ProxyFailed`); spawns [`Proxy`] and
//! [`MediaAsset`] entities.
//!
//! Mirrors the proxy jobs into the world: a job for one of the project's originals gets a
//! `Proxy` entity (queued → generating(progress) → ready / failed / cancelled); a proxy that
//! becomes ready is spawned as a `MediaAsset` of its own (its probe comes with the job, so no
//! disk access happens here) and listed in its original's `ProxyAssets`, where `lod_select`
//! finds it — mid-playback, without a restart. Costs one atomic load per tick when no job
//! changed.

use std::collections::HashMap;

use bevy_ecs::prelude::*;
use framelock_components::{MediaAsset, Proxy, ProxyAssets, ProxyState};

use framelock_engine::proxy::ProxyJobStatus;

use crate::{AssetIds, EngineEvent, Events, ProxyService};

/// The system.
pub fn proxy_sync(
    mut commands: Commands,
    service: Option<Res<ProxyService>>,
    mut ids: ResMut<AssetIds>,
    mut proxies: Query<&mut Proxy>,
    mut lists: Query<&mut ProxyAssets>,
    mut events: ResMut<Events>,
    mut seen_version: Local<Option<u64>>,
    mut by_job: Local<HashMap<u64, Entity>>,
) {
    framelock_engine::profile_function!();
    let Some(service) = service else {
        return;
    };
    let version = service.manager.version();
    if *seen_version == Some(version) {
        return;
    }
    *seen_version = Some(version);
    for status in service.manager.status() {
        let Some(&source) = service.sources.get(&status.source) else {
            continue; // not one of this project's media
        };
        let entity = match by_job.get(&status.id) {
            Some(&e) => e,
            None => {
                report(&mut events, &status);
                let asset = if status.state == ProxyState::Ready {
                    register_ready(&mut commands, &mut ids, &mut lists, source, &status)
                } else {
                    None
                };
                let e = commands
                    .spawn(Proxy {
                        source,
                        asset,
                        job: status.id,
                        height: status.height,
                        codec: status.codec,
                        path: status.path.clone(),
                        state: status.state.clone(),
                    })
                    .id();
                by_job.insert(status.id, e);
                continue;
            }
        };
        let Ok(mut proxy) = proxies.get_mut(entity) else {
            continue;
        };
        if proxy.state != status.state {
            report(&mut events, &status);
            proxy.state = status.state.clone();
            if status.state == ProxyState::Ready && proxy.asset.is_none() {
                proxy.asset = register_ready(&mut commands, &mut ids, &mut lists, source, &status);
            }
        }
    }
}

/// A proxy that is now ready, or failed, is an event.
fn report(events: &mut Events, status: &ProxyJobStatus) {
    match &status.state {
        ProxyState::Ready => events.push(EngineEvent::ProxyReady {
            media: status.source.clone(),
            proxy: status.path.clone(),
            height: status.height,
        }),
        ProxyState::Failed(error) => events.push(EngineEvent::ProxyFailed {
            media: status.source.clone(),
            proxy: status.path.clone(),
            error: error.clone(),
        }),
        _ => {}
    }
}

/// Spawns the ready proxy's asset and lists it on its original. Returns the asset entity.
fn register_ready(
    commands: &mut Commands,
    ids: &mut AssetIds,
    lists: &mut Query<&mut ProxyAssets>,
    source: Entity,
    status: &ProxyJobStatus,
) -> Option<Entity> {
    let info = status.info.clone()?;
    let fingerprint = status.fingerprint?;
    let asset = commands
        .spawn(MediaAsset {
            id: ids.allocate(),
            path: status.path.clone(),
            fingerprint,
            info,
        })
        .id();
    if let Ok(mut list) = lists.get_mut(source) {
        list.0
            .retain(|&(h, c, _)| (h, c) != (status.height, status.codec));
        list.0.push((status.height, status.codec, asset));
        list.0.sort_unstable_by_key(|&(h, _, _)| h);
    }
    Some(asset)
}
