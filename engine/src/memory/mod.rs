//! Memory management: the budget and its pressure levels (data in
//! [`framelock_components::MemoryBudget`]), and the typed buffer pools every frame, audio and
//! effect buffer comes from, so that the budget is enforced on bytes that track real
//! allocations.
//!
//! | piece | where |
//! |---|---|
//! | budget, thresholds, [`Pressure`] | `framelock_components::cache` (a resource the systems read) |
//! | frame / audio / effect-scratch pools, exact byte counts | [`pool`] |
//! | per-tick scratch | buffers each system keeps in its `Local` state and clears every tick (`render`, `prefetch`): no allocation per frame in steady state |
//!
//! Who enforces what: `prefetch` admits new frame requests only while accounted bytes plus
//! the requests in flight stay under the warning level (only the current frame under
//! critical); `evict` frees cold frames above warning and goes down to warning above
//! critical; the pool frees idle buffers rather than keep them over its limit.

pub mod pool;

pub use framelock_components::{MemoryBudget, Pressure};
pub use pool::{Accounted, BufferPool, ClassStats, PoolClass, PoolKey, PoolStats, PooledBuf};
