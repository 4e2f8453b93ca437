//! The readback ring (finished frames come back through buffers mapped asynchronously), the
//! frames in flight, and the timestamp queries that time each pass.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::graph::{Kernel, kernel_name};
use super::{GpuDevice, copy_bytes};
use crate::effects::{RenderError, RenderedRgba};

pub(super) struct ReadSlot {
    pub(super) buffer: wgpu::Buffer,
    pub(super) size: u64,
    pub(super) ready: Arc<AtomicBool>,
    pub(super) busy: bool,
    /// Timestamps of the frame's passes (with timestamp queries).
    pub(super) stamps: Option<(wgpu::Buffer, Arc<AtomicBool>)>,
}

/// Timestamp queries: begin and end of every pass of a frame.
pub(super) struct Timestamps {
    pub(super) set: wgpu::QuerySet,
    pub(super) resolve: wgpu::Buffer,
    /// Passes a frame can time.
    pub(super) passes: u32,
    pub(super) period_ns: f64,
}

pub(super) struct InFlight {
    pub(super) ticket: u64,
    pub(super) slot: usize,
    pub(super) submission: wgpu::SubmissionIndex,
    pub(super) width: u32,
    pub(super) height: u32,
    pub(super) lod: framelock_components::EffectLod,
    pub(super) tag: u64,
    /// The timed passes' kernels, in order.
    pub(super) timed: Vec<Kernel>,
    /// The frame in a texture on the host's device (a shared device only).
    pub(super) texture: Option<wgpu::Texture>,
}

impl GpuDevice {
    /// A free readback slot of at least `size` bytes (a busy ring grows by one).
    pub(super) fn read_slot(&mut self, size: u64) -> usize {
        if let Some(i) = self.readback.iter().position(|s| !s.busy && s.size >= size) {
            return i;
        }
        let slot = ReadSlot {
            buffer: self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("readback"),
                size,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            size,
            ready: Arc::new(AtomicBool::new(false)),
            busy: false,
            stamps: self.timestamps.as_ref().map(|t| {
                let b = self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("pass times readback"),
                    size: u64::from(t.passes) * 16,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                (b, Arc::new(AtomicBool::new(false)))
            }),
        };
        self.stats.buffers_created += 1;
        let i = if let Some(i) = self.readback.iter().position(|s| !s.busy) {
            self.readback[i] = slot;
            i
        } else {
            self.readback.push(slot);
            self.readback.len() - 1
        };
        self.recount_host();
        i
    }

    /// Takes back a frame's bytes ([`RenderedRgba::rgba`]) once the caller is done with them,
    /// to read a later frame into. Keeps as many as frames can be in flight, plus one.
    pub fn recycle(&mut self, bytes: Vec<u8>) {
        if self.spare.len() <= self.frames_in_flight && !bytes.is_empty() {
            self.spare.push(bytes);
            self.recount_host();
        }
    }

    /// Whether frame `ticket` has finished (checks the device without blocking).
    pub(in crate::gpu) fn is_done(&self, ticket: u64) -> bool {
        let _ = self.device.poll(wgpu::PollType::Poll);
        self.in_flight
            .iter()
            .find(|f| f.ticket == ticket)
            .is_some_and(|f| self.readback[f.slot].ready.load(Ordering::Acquire))
    }

    /// Waits for frame `ticket` and reads it back.
    pub(in crate::gpu) fn wait(&mut self, ticket: u64) -> Result<RenderedRgba, RenderError> {
        crate::profile_scope!("gpu readback");
        let Some(pos) = self.in_flight.iter().position(|f| f.ticket == ticket) else {
            return Err(RenderError::Gpu(format!("frame {ticket} is not in flight")));
        };
        let Some(fl) = self.in_flight.remove(pos) else {
            return Err(RenderError::Gpu(format!("frame {ticket} is not in flight")));
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.readback[fl.slot].ready.load(Ordering::Acquire) {
            if let Some(e) = self.error.lock().ok().and_then(|mut g| g.take()) {
                self.readback[fl.slot].busy = false;
                return Err(RenderError::Gpu(e));
            }
            if Instant::now() > deadline {
                return Err(RenderError::Gpu("GPU frame timed out".into()));
            }
            let _ = self.device.poll(wgpu::PollType::Wait {
                submission_index: Some(fl.submission.clone()),
                timeout: Some(Duration::from_secs(5)),
            });
        }
        let bytes = u64::from(fl.width) * u64::from(fl.height) * 4;
        let slot = &mut self.readback[fl.slot];
        // Into a host buffer handed back by `recycle` when there is one: a fresh 33 MB
        // vector a 4K frame costs its page faults on every frame.
        // (Counted until the next recount: the caller hands it back through `recycle`.)
        let mut rgba = self.spare.pop().unwrap_or_default();
        {
            let view = slot
                .buffer
                .slice(..bytes)
                .get_mapped_range()
                .map_err(|e| RenderError::Gpu(format!("readback map: {e}")))?;
            if rgba.len() != view.len() {
                rgba.clear();
                rgba.resize(view.len(), 0);
            }
            copy_bytes(&mut rgba, &view);
        }
        slot.buffer.unmap();
        slot.busy = false;
        slot.ready.store(false, Ordering::Release);
        let stamps = slot.stamps.clone();
        let period_ns = self.timestamps.as_ref().map(|t| t.period_ns);
        if let (Some(period_ns), Some((b, ready))) = (period_ns, &stamps)
            && !fl.timed.is_empty()
        {
            while !ready.load(Ordering::Acquire) {
                let _ = self.device.poll(wgpu::PollType::Wait {
                    submission_index: Some(fl.submission.clone()),
                    timeout: Some(Duration::from_secs(5)),
                });
                if Instant::now() > deadline {
                    break;
                }
            }
            if ready.load(Ordering::Acquire) {
                let bytes = fl.timed.len() as u64 * 16;
                let mut per: Vec<(String, f64)> = Vec::new();
                if let Ok(view) = b.slice(..bytes).get_mapped_range() {
                    let ticks: Vec<u64> = view
                        .chunks_exact(8)
                        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                        .collect();
                    for (k, pair) in fl.timed.iter().zip(ticks.chunks_exact(2)) {
                        let ms = pair[1].saturating_sub(pair[0]) as f64 * period_ns / 1e6;
                        let name = kernel_name(*k);
                        match per.iter_mut().find(|(n, _)| *n == name) {
                            Some(e) => e.1 += ms,
                            None => per.push((name, ms)),
                        }
                    }
                }
                b.unmap();
                ready.store(false, Ordering::Release);
                self.stats.pass_ms = Some(per);
            }
        }
        self.stats.frames += 1;
        self.stats.readback_bytes += bytes;
        if let Some(e) = self.error.lock().ok().and_then(|mut g| g.take()) {
            return Err(RenderError::Gpu(e));
        }
        Ok(RenderedRgba {
            width: fl.width,
            height: fl.height,
            rgba,
            lod: fl.lod,
            tag: fl.tag,
            texture: fl.texture,
        })
    }
}
