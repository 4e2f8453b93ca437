//! `lod_select` — reads [`Clip`]; writes [`Lod`].
//!
//! Chooses the level of detail each clip decodes at. Today there is one level, the original
//! media; proxies (a later issue) add reduced levels chosen from `QualitySettings` and the
//! measured decode load, and this system is where that choice lands.

use bevy_ecs::prelude::*;
use framelock_components::{Clip, Lod};

/// The system.
pub fn lod_select(mut clips: Query<&mut Lod, With<Clip>>) {
    puffin::profile_function!();
    for mut lod in &mut clips {
        if *lod != Lod::Original {
            *lod = Lod::Original;
        }
    }
}
