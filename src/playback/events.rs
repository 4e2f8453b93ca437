//! The engine's events for the host: a bounded channel filled after each tick from what the
//! systems reported ([`Events`]) and from changes of the play state.

use framelock_components::{PlayState, Playhead};
use framelock_systems::{EngineEvent, Events};

use super::PlaybackEngine;

impl PlaybackEngine {
    /// The host's end of the engine's events ([`EngineEvent`]): state changes, seeks done,
    /// the end of the timeline, media errors, and (with [`PlaybackEngine::set_frame_events`])
    /// every picture. Bounded: events the host leaves unread past 1024 are dropped (and
    /// counted: [`PlaybackEngine::events_dropped`]); the tick never waits on the host. One
    /// reader: clones share the one queue.
    pub fn events(&self) -> crossbeam_channel::Receiver<EngineEvent> {
        self.events.1.clone()
    }

    /// The sending end of the events, for the host-side helpers that report on their own
    /// threads (`Player::generate_proxies_later`).
    pub(crate) fn event_sender(&self) -> crossbeam_channel::Sender<EngineEvent> {
        self.events.0.clone()
    }

    /// Events dropped because the host did not read them.
    pub fn events_dropped(&self) -> u64 {
        self.events_dropped
    }

    /// Also send [`EngineEvent::FramePresented`] for every picture (off by default).
    pub fn set_frame_events(&mut self, on: bool) {
        self.world.resource_mut::<Events>().frames = on;
    }

    /// Sends `event` to the host as the engine's own (hosts driving the engine on their
    /// thread, like [`crate::Player`], report their commands' outcomes this way).
    pub fn emit(&mut self, event: EngineEvent) {
        if self.events.0.try_send(event).is_err() {
            self.events_dropped += 1;
        }
    }

    /// Sends what the tick's systems reported, then any change of the play state (a pause
    /// inside a tick is the end of the timeline).
    pub(super) fn emit_tick_events(&mut self) {
        let pending = std::mem::take(&mut self.world.resource_mut::<Events>().pending);
        for e in pending {
            self.emit(e);
        }
        let p = *self.world.resource::<Playhead>();
        if self.reported_state == PlayState::Playing && p.state == PlayState::Paused {
            self.emit(EngineEvent::EndOfTimeline { frame: p.frame });
        }
        self.emit_state();
    }

    /// Reports the play state if it changed since last reported.
    pub(super) fn emit_state(&mut self) {
        let now = self.world.resource::<Playhead>().state;
        if now != self.reported_state {
            let from = std::mem::replace(&mut self.reported_state, now);
            self.emit(EngineEvent::StateChanged { from, to: now });
        }
    }
}
