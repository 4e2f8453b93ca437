//! Frame output a slow host cannot slow down: [`FrameSlot`], the newest presented frame for a
//! host that pulls at its own vsync (libmpv's render API works this way), and
//! [`FrameDelivery`], which pushes from that slot to the host's sink on a thread of its own.
//!
//! The engine only ever replaces the frame in the slot, which never waits on the host; a frame
//! replaced before the delivery thread took it is counted as `sink_late` (the host was busy
//! with an older one), and the clock keeps time.
//!
//! ```
//! use framelock::{FrameSlot, PresentedFrame};
//! let slot = FrameSlot::new();
//! let to_slot = slot.clone();
//! // The engine's sink: `PlaybackEngine::open(&project, options, clock, move |f| to_slot.put(f))`.
//! let sink = move |f: PresentedFrame| to_slot.put(f);
//! # drop(sink);
//! // The host's vsync: the newest frame, or `None` before the first.
//! assert!(slot.latest().is_none());
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

use framelock_systems::PresentedFrame;

#[derive(Debug, Default)]
struct Slot {
    frame: Option<PresentedFrame>,
    /// Frames put so far (the newest one's number).
    seq: u64,
    /// Whether the delivery thread took the newest frame.
    taken: bool,
    closed: bool,
}

#[derive(Debug, Default)]
struct Inner {
    slot: Mutex<Slot>,
    ready: Condvar,
    late: AtomicU64,
}

/// The newest presented frame, shared between the engine (which replaces it) and the host
/// (which reads it when it draws). Cloning shares the slot.
#[derive(Clone, Debug, Default)]
pub struct FrameSlot(Arc<Inner>);

impl FrameSlot {
    /// An empty slot.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slot> {
        self.0.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces the frame (the engine's side; never waits for the host). A frame the delivery
    /// thread had not taken yet is counted late.
    pub fn put(&self, frame: PresentedFrame) {
        let mut s = self.lock();
        if s.frame.is_some() && !s.taken {
            self.0.late.fetch_add(1, Ordering::Relaxed);
        }
        s.frame = Some(frame);
        s.seq += 1;
        s.taken = false;
        drop(s);
        self.0.ready.notify_all();
    }

    /// The newest frame (the host's vsync read; a frame may be read more than once).
    pub fn latest(&self) -> Option<PresentedFrame> {
        self.lock().frame.clone()
    }

    /// The newest frame and its number (1 for the first frame put): a host that pulls sees
    /// from the numbers how many it did not draw.
    pub fn latest_numbered(&self) -> Option<(u64, PresentedFrame)> {
        let s = self.lock();
        s.frame.clone().map(|f| (s.seq, f))
    }

    /// Frames replaced before the delivery thread took them.
    pub fn late(&self) -> u64 {
        self.0.late.load(Ordering::Relaxed)
    }

    /// Waits for a frame not taken yet and takes it; `None` once the slot is closed.
    fn take_next(&self) -> Option<PresentedFrame> {
        let mut s = self.lock();
        loop {
            if s.closed {
                return None;
            }
            if !s.taken
                && let Some(f) = s.frame.clone()
            {
                s.taken = true;
                return Some(f);
            }
            s = self.0.ready.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn close(&self) {
        self.lock().closed = true;
        self.0.ready.notify_all();
    }
}

/// The host's sink.
pub type BoxedSink = Box<dyn FnMut(PresentedFrame) + Send>;

/// Pushes each new frame of a [`FrameSlot`] to the host's sink on a thread of its own
/// (`framelock-frames`), newest first: while the sink is busy the slot keeps only the newest
/// frame. Stops (and joins the thread) when dropped.
pub struct FrameDelivery {
    slot: FrameSlot,
    /// A sink to use from the next frame on (the thread swaps it in; never waits for the
    /// one busy now).
    next: Arc<Mutex<Option<BoxedSink>>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for FrameDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameDelivery")
            .field("slot", &self.slot)
            .finish_non_exhaustive()
    }
}

impl FrameDelivery {
    /// Starts delivering `slot`'s frames to `sink`.
    pub fn spawn(slot: FrameSlot, mut sink: BoxedSink) -> std::io::Result<Self> {
        let next: Arc<Mutex<Option<BoxedSink>>> = Arc::default();
        let (s, n) = (slot.clone(), next.clone());
        let thread = std::thread::Builder::new()
            .name("framelock-frames".into())
            .spawn(move || {
                while let Some(f) = s.take_next() {
                    if let Some(new) = n.lock().unwrap_or_else(PoisonError::into_inner).take() {
                        sink = new;
                    }
                    sink(f);
                }
            })?;
        Ok(Self {
            slot,
            next,
            thread: Some(thread),
        })
    }

    /// Replaces the sink from the next frame on (returns at once, even while the sink is
    /// busy).
    pub fn set_sink(&self, sink: BoxedSink) {
        *self.next.lock().unwrap_or_else(PoisonError::into_inner) = Some(sink);
    }

    /// The slot it delivers from.
    pub fn slot(&self) -> &FrameSlot {
        &self.slot
    }
}

impl Drop for FrameDelivery {
    fn drop(&mut self) {
        // The thread stops after the frame it is delivering (a sink that never returns
        // keeps it: it is not joined then, to never hang the host's drop).
        self.slot.close();
        if let Some(t) = self.thread.take() {
            let until = std::time::Instant::now() + std::time::Duration::from_secs(1);
            while !t.is_finished() && std::time::Instant::now() < until {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}
