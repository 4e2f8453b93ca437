//! Typed buffer pools: byte buffers recycled by shape instead of freed and allocated again.
//!
//! A [`BufferPool`] hands out [`PooledBuf`]s keyed by a [`PoolKey`] — frame planes by
//! (format, width, height, plane), audio and effect-scratch buffers by length. A buffer goes
//! back to its pool's idle shelf when it is dropped, wherever that happens (eviction, a
//! decoder's skipped frame, the host's sink letting go), so the pool's counts are exact:
//! **accounted bytes** = bytes handed out and not yet returned + bytes idle on the shelves.
//!
//! The pool never holds more than its limit: a buffer returned while the pool is over it is
//! freed instead of shelved, and a new allocation first frees idle buffers of other shapes.
//! (It cannot refuse a buffer: staying under the limit with live buffers is the job of the
//! budget's users — prefetch admits requests only under the warning level, eviction frees.)
//!
//! Invariants: a buffer's length never changes while pooled; a shelved buffer is reused only
//! for its exact key; counters are atomics, the shelves one mutex (held for a push or pop).

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub use super::class::{ClassStats, PoolClass, PoolKey, PoolStats};

#[derive(Default)]
struct Counters {
    in_use: AtomicUsize,
    idle: AtomicUsize,
    allocations: AtomicU64,
    reuses: AtomicU64,
    frees: AtomicU64,
}

struct Shared {
    shelves: Mutex<HashMap<PoolKey, Vec<Vec<u8>>>>,
    /// Idle sample buffers of the CPU effects' 16-bit images ([`BufferPool::take_samples`]),
    /// counted as idle effect scratch by their capacity.
    samples: Mutex<Vec<Vec<u16>>>,
    classes: [Counters; 4],
    peak: AtomicUsize,
    /// Per class (in use, idle) at the peak.
    peak_classes: Mutex<[(usize, usize); 4]>,
    limit: AtomicUsize,
}

impl Shared {
    fn accounted(&self) -> usize {
        self.classes
            .iter()
            .map(|c| c.in_use.load(Ordering::Relaxed) + c.idle.load(Ordering::Relaxed))
            .sum()
    }

    fn note_peak(&self) {
        let now = self.accounted();
        if now > self.peak.fetch_max(now, Ordering::Relaxed)
            && let Ok(mut at) = self.peak_classes.lock()
        {
            *at = std::array::from_fn(|i| {
                let c = &self.classes[i];
                (
                    c.in_use.load(Ordering::Relaxed),
                    c.idle.load(Ordering::Relaxed),
                )
            });
        }
    }

    fn give_back(&self, key: PoolKey, buf: Vec<u8>) {
        let c = &self.classes[key.class().slot()];
        c.in_use.fetch_sub(buf.len(), Ordering::Relaxed);
        if self.accounted() + buf.len() > self.limit.load(Ordering::Relaxed) {
            c.frees.fetch_add(1, Ordering::Relaxed);
            return; // over the limit: free it
        }
        c.idle.fetch_add(buf.len(), Ordering::Relaxed);
        if let Ok(mut shelves) = self.shelves.lock() {
            shelves.entry(key).or_default().push(buf);
        } else {
            c.idle.fetch_sub(buf.len(), Ordering::Relaxed);
        }
    }

    /// Frees idle buffers (the effect images' sample buffers first, each a whole working
    /// image; then the largest shelves') until accounted ≤ `target`.
    fn trim_to(&self, target: usize) {
        let Ok(mut shelves) = self.shelves.lock() else {
            return;
        };
        if self.accounted() <= target {
            return;
        }
        if let Ok(mut samples) = self.samples.lock() {
            let c = &self.classes[PoolClass::EffectScratch.slot()];
            while self.accounted() > target {
                let Some(buf) = samples.pop() else { break };
                c.idle.fetch_sub(sample_bytes(&buf), Ordering::Relaxed);
                c.frees.fetch_add(1, Ordering::Relaxed);
            }
        }
        let mut keys: Vec<(usize, PoolKey)> = shelves
            .iter()
            .map(|(k, v)| (v.iter().map(Vec::len).sum(), *k))
            .collect();
        keys.sort_unstable_by_key(|(bytes, _)| std::cmp::Reverse(*bytes));
        for (_, key) in keys {
            let Some(shelf) = shelves.get_mut(&key) else {
                continue;
            };
            let c = &self.classes[key.class().slot()];
            while self.accounted() > target {
                let Some(buf) = shelf.pop() else { break };
                c.idle.fetch_sub(buf.len(), Ordering::Relaxed);
                c.frees.fetch_add(1, Ordering::Relaxed);
            }
            if self.accounted() <= target {
                break;
            }
        }
        shelves.retain(|_, v| !v.is_empty());
    }
}

/// The most idle sample buffers a pool keeps ([`BufferPool::give_samples`]): a frame's
/// render uses three or four working images at once (a fresh 16 MB buffer costs ~4000 page
/// faults, a few milliseconds at 1080p; a reused one none).
pub const SAMPLE_BUFFERS_KEPT: usize = 8;

/// What a sample buffer holds: its capacity (a reused buffer may be larger than its image).
#[allow(clippy::ptr_arg, reason = "the capacity, which a slice does not have")]
fn sample_bytes(buf: &Vec<u16>) -> usize {
    buf.capacity() * size_of::<u16>()
}

/// A handle to the engine's buffer pools (cheap to clone; all clones share the shelves).
#[derive(Clone)]
pub struct BufferPool(Arc<Shared>);

impl std::fmt::Debug for BufferPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.stats();
        f.debug_struct("BufferPool")
            .field("accounted_bytes", &s.accounted_bytes())
            .field("limit_bytes", &s.limit_bytes)
            .finish()
    }
}

impl BufferPool {
    /// Pools that keep at most `limit_bytes` accounted (idle buffers are freed to stay
    /// under it).
    pub fn new(limit_bytes: usize) -> Self {
        Self(Arc::new(Shared {
            shelves: Mutex::new(HashMap::new()),
            samples: Mutex::new(Vec::new()),
            classes: Default::default(),
            peak: AtomicUsize::new(0),
            peak_classes: Mutex::new([(0, 0); 4]),
            limit: AtomicUsize::new(limit_bytes),
        }))
    }

    /// A buffer of `len` bytes for `key`: a recycled one (stale contents: the caller
    /// overwrites every byte) or a new zeroed one.
    pub fn take(&self, key: PoolKey, len: usize) -> PooledBuf {
        let c = &self.0.classes[key.class().slot()];
        let reused = self
            .0
            .shelves
            .lock()
            .ok()
            .and_then(|mut s| s.get_mut(&key).and_then(Vec::pop));
        let data = match reused {
            Some(buf) if buf.len() == len => {
                c.idle.fetch_sub(len, Ordering::Relaxed);
                c.reuses.fetch_add(1, Ordering::Relaxed);
                buf
            }
            other => {
                if let Some(buf) = other {
                    // A caller asked with a key that does not match its length: free it.
                    c.idle.fetch_sub(buf.len(), Ordering::Relaxed);
                    c.frees.fetch_add(1, Ordering::Relaxed);
                }
                let limit = self.0.limit.load(Ordering::Relaxed);
                if self.0.accounted() + len > limit {
                    self.0.trim_to(limit.saturating_sub(len));
                }
                c.allocations.fetch_add(1, Ordering::Relaxed);
                vec![0; len]
            }
        };
        c.in_use.fetch_add(len, Ordering::Relaxed);
        self.0.note_peak();
        PooledBuf {
            data,
            home: Some((self.0.clone(), key)),
        }
    }

    /// A sample buffer of `len` samples for a CPU effect image (stale contents: the caller
    /// overwrites every sample), from the idle ones if one is large enough. While it is out,
    /// the pool does not count it: the render that takes it counts its working images
    /// ([`crate::effects::fast::scratch_bytes`]) as in use.
    pub fn take_samples(&self, len: usize) -> Vec<u16> {
        let c = &self.0.classes[PoolClass::EffectScratch.slot()];
        let reused = self.0.samples.lock().ok().and_then(|mut s| {
            let i = s.iter().position(|v| v.capacity() >= len)?;
            Some(s.swap_remove(i))
        });
        let mut buf = match reused {
            Some(buf) => {
                c.idle.fetch_sub(sample_bytes(&buf), Ordering::Relaxed);
                c.reuses.fetch_add(1, Ordering::Relaxed);
                buf
            }
            None => {
                c.allocations.fetch_add(1, Ordering::Relaxed);
                Vec::new()
            }
        };
        buf.resize(len, 0);
        buf
    }

    /// Shelves a sample buffer from [`Self::take_samples`] as idle effect scratch, or frees
    /// it when that would take the pool over its limit or past [`SAMPLE_BUFFERS_KEPT`].
    pub fn give_samples(&self, buf: Vec<u16>) {
        let bytes = sample_bytes(&buf);
        if bytes == 0 {
            return;
        }
        let c = &self.0.classes[PoolClass::EffectScratch.slot()];
        let Ok(mut samples) = self.0.samples.lock() else {
            return;
        };
        if samples.len() >= SAMPLE_BUFFERS_KEPT
            || self.0.accounted() + bytes > self.0.limit.load(Ordering::Relaxed)
        {
            c.frees.fetch_add(1, Ordering::Relaxed);
            return;
        }
        c.idle.fetch_add(bytes, Ordering::Relaxed);
        samples.push(buf);
        drop(samples);
        self.0.note_peak();
    }

    /// Counts memory of `class` held outside the shelves (zero bytes until
    /// [`Accounted::set`]).
    pub fn account(&self, class: PoolClass) -> Accounted {
        Accounted {
            shared: self.0.clone(),
            class,
            bytes: 0,
        }
    }

    /// Frees idle buffers until accounted bytes ≤ `target` (memory pressure).
    pub fn trim_to(&self, target: usize) {
        self.0.trim_to(target);
    }

    /// Frees every idle buffer.
    pub fn purge_idle(&self) {
        self.0.trim_to(0);
    }

    /// Changes the limit (and trims idle buffers to it).
    pub fn set_limit(&self, limit_bytes: usize) {
        self.0.limit.store(limit_bytes, Ordering::Relaxed);
        self.0.trim_to(limit_bytes);
    }

    /// Bytes handed out + idle, all classes.
    pub fn accounted_bytes(&self) -> usize {
        self.0.accounted()
    }

    /// Bytes handed out and not returned (live buffers), all classes.
    pub fn in_use_bytes(&self) -> usize {
        self.0
            .classes
            .iter()
            .map(|c| c.in_use.load(Ordering::Relaxed))
            .sum()
    }

    /// Forgets the peak (a benchmark's or test's phase starts).
    pub fn reset_peak(&self) {
        self.0.peak.store(self.0.accounted(), Ordering::Relaxed);
    }

    /// Counters.
    pub fn stats(&self) -> PoolStats {
        let mut classes = [ClassStats::default(); 4];
        for (out, c) in classes.iter_mut().zip(&self.0.classes) {
            *out = ClassStats {
                in_use_bytes: c.in_use.load(Ordering::Relaxed),
                idle_bytes: c.idle.load(Ordering::Relaxed),
                allocations: c.allocations.load(Ordering::Relaxed),
                reuses: c.reuses.load(Ordering::Relaxed),
                frees: c.frees.load(Ordering::Relaxed),
            };
        }
        PoolStats {
            classes,
            peak_bytes: self.0.peak.load(Ordering::Relaxed),
            peak_classes: self.0.peak_classes.lock().map(|p| *p).unwrap_or_default(),
            limit_bytes: self.0.limit.load(Ordering::Relaxed),
        }
    }
}

/// Memory a class holds in buffers of its own type (decoded audio blocks as `f32`, the audio
/// ring), counted by the pool as in use — so it is in the budget's accounted bytes — for
/// as long as this lives. [`Accounted::set`] follows the holder's size.
pub struct Accounted {
    shared: Arc<Shared>,
    class: PoolClass,
    bytes: usize,
}

impl Accounted {
    /// The holder now holds `bytes`.
    pub fn set(&mut self, bytes: usize) {
        let c = &self.shared.classes[self.class.slot()];
        if bytes >= self.bytes {
            c.in_use.fetch_add(bytes - self.bytes, Ordering::Relaxed);
            self.shared.note_peak();
        } else {
            c.in_use.fetch_sub(self.bytes - bytes, Ordering::Relaxed);
        }
        self.bytes = bytes;
    }

    /// The bytes counted.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Accounted {
    fn drop(&mut self) {
        self.set(0);
    }
}

impl std::fmt::Debug for Accounted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Accounted({:?}, {} bytes)", self.class, self.bytes)
    }
}

/// A byte buffer that returns to its [`BufferPool`] when dropped (or a plain one, made
/// `From<Vec<u8>>`, that is simply freed). Derefs to `[u8]`.
pub struct PooledBuf {
    data: Vec<u8>,
    home: Option<(Arc<Shared>, PoolKey)>,
}

impl PooledBuf {
    /// The buffer's pool key, if it has a pool.
    pub fn key(&self) -> Option<PoolKey> {
        self.home.as_ref().map(|(_, k)| *k)
    }

    /// The same bytes, counted in `pool` from now on and shelved there when dropped (moved
    /// out of their pool's accounting, without a copy): for a buffer made by one engine and
    /// kept by another. A plain buffer stays plain.
    pub fn rehome(mut self, pool: &BufferPool) -> Self {
        if let Some((old, key)) = self.home.take() {
            let len = self.data.len();
            old.classes[key.class().slot()]
                .in_use
                .fetch_sub(len, Ordering::Relaxed);
            pool.0.classes[key.class().slot()]
                .in_use
                .fetch_add(len, Ordering::Relaxed);
            pool.0.note_peak();
            self.home = Some((pool.0.clone(), key));
        }
        self
    }

    /// Takes the bytes out; a pooled buffer is counted as released (not returned).
    pub fn into_vec(mut self) -> Vec<u8> {
        if let Some((shared, key)) = self.home.take() {
            shared.classes[key.class().slot()]
                .in_use
                .fetch_sub(self.data.len(), Ordering::Relaxed);
        }
        std::mem::take(&mut self.data)
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        if let Some((shared, key)) = self.home.take() {
            shared.give_back(key, std::mem::take(&mut self.data));
        }
    }
}

impl Deref for PooledBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.data
    }
}

impl DerefMut for PooledBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }
}

impl<'a> IntoIterator for &'a PooledBuf {
    type Item = &'a u8;
    type IntoIter = std::slice::Iter<'a, u8>;
    fn into_iter(self) -> Self::IntoIter {
        self.data.iter()
    }
}

impl<'a> IntoIterator for &'a mut PooledBuf {
    type Item = &'a mut u8;
    type IntoIter = std::slice::IterMut<'a, u8>;
    fn into_iter(self) -> Self::IntoIter {
        self.data.iter_mut()
    }
}

impl From<Vec<u8>> for PooledBuf {
    fn from(data: Vec<u8>) -> Self {
        Self { data, home: None }
    }
}

impl Default for PooledBuf {
    fn default() -> Self {
        Vec::new().into()
    }
}

impl Clone for PooledBuf {
    /// A copy from the same pool (or a plain copy).
    fn clone(&self) -> Self {
        match &self.home {
            Some((shared, key)) => {
                let mut b = BufferPool(shared.clone()).take(*key, self.data.len());
                b.copy_from_slice(&self.data);
                b
            }
            None => self.data.clone().into(),
        }
    }
}

impl PartialEq for PooledBuf {
    fn eq(&self, other: &Self) -> bool {
        self.data == other.data
    }
}

impl std::fmt::Debug for PooledBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PooledBuf({} bytes", self.data.len())?;
        if let Some(k) = self.key() {
            write!(f, ", {k:?}")?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_recycled_by_key_and_counted() {
        let pool = BufferPool::new(1 << 20);
        let key = PoolKey::Scratch(1000);
        let a = pool.take(key, 1000);
        assert_eq!(
            pool.stats().class(PoolClass::EffectScratch).in_use_bytes,
            1000
        );
        drop(a);
        let s = pool.stats().class(PoolClass::EffectScratch);
        assert_eq!((s.in_use_bytes, s.idle_bytes, s.allocations), (0, 1000, 1));
        let _b = pool.take(key, 1000);
        let s = pool.stats().class(PoolClass::EffectScratch);
        assert_eq!((s.allocations, s.reuses, s.idle_bytes), (1, 1, 0));
        // Another shape allocates.
        let _c = pool.take(PoolKey::Audio(10), 10);
        assert_eq!(pool.stats().class(PoolClass::Audio).allocations, 1);
        assert_eq!(pool.accounted_bytes(), 1010);
    }

    #[test]
    fn the_limit_frees_idle_buffers() {
        let pool = BufferPool::new(2500);
        let a = pool.take(PoolKey::Scratch(1000), 1000);
        let b = pool.take(PoolKey::Scratch(1000), 1000);
        drop(a);
        drop(b);
        assert_eq!(pool.accounted_bytes(), 2000);
        // A new shape needing 1000 more: idle buffers are freed to make room.
        let c = pool.take(PoolKey::Audio(1000), 1000);
        assert!(pool.accounted_bytes() <= 2500, "{:?}", pool.stats());
        assert!(pool.stats().peak_bytes <= 2500);
        drop(c);
        pool.purge_idle();
        assert_eq!(pool.accounted_bytes(), 0);
    }

    #[test]
    fn clones_and_plain_buffers() {
        let pool = BufferPool::new(1 << 20);
        let mut a = pool.take(PoolKey::Scratch(4), 4);
        a.copy_from_slice(&[1, 2, 3, 4]);
        let b = a.clone();
        assert_eq!(a, b);
        assert_eq!(pool.stats().class(PoolClass::EffectScratch).in_use_bytes, 8);
        let v = b.into_vec();
        assert_eq!(v, vec![1, 2, 3, 4]);
        assert_eq!(pool.stats().class(PoolClass::EffectScratch).in_use_bytes, 4);
        let plain = PooledBuf::from(vec![9u8; 3]);
        assert_eq!(plain.key(), None);
        assert_eq!(&*plain.clone(), &[9, 9, 9]);
    }

    #[test]
    fn accounted_memory_counts_as_in_use_until_dropped() {
        let pool = BufferPool::new(1 << 20);
        let mut a = pool.account(PoolClass::Audio);
        a.set(4096);
        assert_eq!(pool.stats().class(PoolClass::Audio).in_use_bytes, 4096);
        a.set(1000);
        assert_eq!(pool.accounted_bytes(), 1000);
        assert_eq!(pool.stats().peak_bytes, 4096);
        drop(a);
        assert_eq!(pool.accounted_bytes(), 0);
    }
}
