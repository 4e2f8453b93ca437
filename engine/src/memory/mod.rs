//! Memory management: the budget and its pressure levels (data in
//! [`framelock_components::MemoryBudget`]), and the typed buffer pools every frame, audio and
//! effect buffer comes from, so that the budget is enforced on bytes that track real
//! allocations.
//!
//! | piece | where |
//! |---|---|
//! | budget, thresholds, [`Pressure`] | `framelock_components::cache` (a resource the systems read) |
//! | frame / audio / effect-scratch pools, exact byte counts (the CPU effects' 16-bit working images too: [`BufferPool::take_samples`]) | [`pool`] |
//! | per-tick scratch | buffers each system keeps in its `Local` state and clears every tick (`render`, `prefetch`): no allocation per frame in steady state |
//!
//! Who enforces what: `prefetch` admits new frame requests only while accounted bytes plus
//! the requests in flight stay under the warning level (only the current frame under
//! critical); `evict` frees cold frames above warning and goes down to warning above
//! critical; the pool frees idle buffers rather than keep them over its limit.

mod class;
pub mod pool;

/// Allocations this large or larger are mapped on their own and unmapped when freed.
pub const MMAP_THRESHOLD: usize = 512 << 10;

/// Makes freed frame-sized buffers go back to the OS at once (glibc: a fixed
/// `M_MMAP_THRESHOLD` of [`MMAP_THRESHOLD`]). glibc raises its mmap threshold each time a
/// mapped block is freed (up to 32 MiB), after which frame buffers come from the heap
/// arenas and stay in the process when freed: measured on the mixed-format project at a
/// 256 MiB budget, RSS 408–433 MiB with the pool's accounted peak at 245–257 MiB, and
/// 294 MiB with the threshold fixed. Process-wide and idempotent; a no-op off glibc.
/// [`EngineOptions::return_freed_memory`](../../framelock/struct.EngineOptions.html) calls
/// it at open (the default).
pub fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: mallopt takes two integers and changes allocator parameters only.
            let ok = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as i32) };
            if ok == 0 {
                log::debug!("mallopt(M_MMAP_THRESHOLD) was refused");
            }
        });
    }
}

pub use framelock_components::{MemoryBudget, Pressure};
pub use pool::{Accounted, BufferPool, ClassStats, PoolClass, PoolKey, PoolStats, PooledBuf};
