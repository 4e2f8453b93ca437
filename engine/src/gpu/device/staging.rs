//! The staging ring: mapped buffers planes are written into, copied to the device, then
//! re-mapped asynchronously for the next upload; and the streaming measurement.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{GpuDevice, copy_bytes, write_mapped};
use crate::effects::RenderError;

pub(super) struct StagingSlot {
    pub(super) buffer: wgpu::Buffer,
    pub(super) size: u64,
    pub(super) mapped: Arc<AtomicBool>,
    /// The frame (ticket) and submission whose copy last read it: its re-mapping follows
    /// that submission.
    pub(super) submission: Option<(u64, wgpu::SubmissionIndex)>,
}

impl GpuDevice {
    /// A mapped staging slot of at least `size` bytes.
    pub(super) fn staging_slot(&mut self, size: u64, exclude: &[usize]) -> usize {
        // Collect slots whose re-mapping finished.
        let _ = self.device.poll(wgpu::PollType::Poll);
        loop {
            if let Some(i) = self.staging.iter().enumerate().position(|(i, s)| {
                !exclude.contains(&i) && s.size >= size && s.mapped.load(Ordering::Acquire)
            }) {
                return i;
            }
            // Double-buffered per layer of the frame: while one slot's copy runs on the GPU
            // the next is filled; a third request waits for the oldest to map again. A fixed
            // ring: steady state creates nothing. (A slot per frame in flight was tried: the
            // ring then grew to its third slot whenever the GPU happened to lag, at any time,
            // so steady state was not steady.)
            let limit = 2 * (exclude.len() + 1);
            let pending = self
                .staging
                .iter()
                .enumerate()
                .any(|(i, s)| !exclude.contains(&i) && !s.mapped.load(Ordering::Acquire));
            if self.staging.len() < limit || !pending {
                // Replace a mapped slot that is too small, or grow the ring.
                let small = self.staging.iter().enumerate().position(|(i, s)| {
                    !exclude.contains(&i) && s.size < size && s.mapped.load(Ordering::Acquire)
                });
                let size = size.next_multiple_of(1 << 16);
                let slot = StagingSlot {
                    buffer: self.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("staging"),
                        size,
                        usage: wgpu::BufferUsages::MAP_WRITE | wgpu::BufferUsages::COPY_SRC,
                        mapped_at_creation: true,
                    }),
                    size,
                    mapped: Arc::new(AtomicBool::new(true)),
                    submission: None,
                };
                self.stats.buffers_created += 1;
                let i = match small {
                    Some(i) if self.staging.len() >= limit => {
                        self.staging[i] = slot;
                        i
                    }
                    _ => {
                        self.staging.push(slot);
                        self.staging.len() - 1
                    }
                };
                self.recount_host();
                return i;
            }
            // Every slot is on its way back from the GPU: wait for the submission of the
            // oldest (not for the whole queue: the frames after it stay in flight).
            let oldest = self
                .staging
                .iter()
                .enumerate()
                .filter(|(i, s)| !exclude.contains(i) && !s.mapped.load(Ordering::Acquire))
                .filter_map(|(_, s)| s.submission.clone())
                .min_by_key(|(ticket, _)| *ticket)
                .map(|(_, index)| index);
            let _ = self.device.poll(wgpu::PollType::Wait {
                submission_index: oldest,
                timeout: Some(Duration::from_secs(30)),
            });
        }
    }

    /// Measures streaming: `data` up through a staging slot into a device buffer, then back
    /// through a readback slot (each waited for). Returns (upload, readback) wall times; the
    /// bytes read back are checked against `data`.
    pub fn transfer(&mut self, data: &[u8]) -> Result<(Duration, Duration), RenderError> {
        let size = (data.len() as u64).next_multiple_of(4);
        let dst = self.take(size)?;
        // The host buffer the bytes come back into exists before the clock starts (as a
        // pooled frame would), and the check runs after it stops.
        let mut out = vec![0u8; data.len()];
        let start = Instant::now();
        let slot = self.staging_slot(size, &[]);
        // As a frame's planes are written (in pieces, side by side).
        write_mapped(&self.staging[slot].buffer, size as usize, &[(0, data)])?;
        self.staging[slot].buffer.unmap();
        self.staging[slot].mapped.store(false, Ordering::Release);
        let mut encoder = self.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(&self.staging[slot].buffer, 0, &dst, 0, size);
        let sub = self.queue.submit([encoder.finish()]);
        let flag = self.staging[slot].mapped.clone();
        self.staging[slot]
            .buffer
            .map_async(wgpu::MapMode::Write, .., move |r| {
                flag.store(r.is_ok(), Ordering::Release)
            });
        let _ = self.device.poll(wgpu::PollType::Wait {
            submission_index: Some(sub),
            timeout: Some(Duration::from_secs(30)),
        });
        let up = start.elapsed();
        let start = Instant::now();
        let rs = self.read_slot(size);
        let mut encoder = self.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(&dst, 0, &self.readback[rs].buffer, 0, size);
        let sub = self.queue.submit([encoder.finish()]);
        let ready = self.readback[rs].ready.clone();
        self.readback[rs]
            .buffer
            .map_async(wgpu::MapMode::Read, ..size, move |r| {
                ready.store(r.is_ok(), Ordering::Release)
            });
        while !self.readback[rs].ready.load(Ordering::Acquire) {
            let _ = self.device.poll(wgpu::PollType::Wait {
                submission_index: Some(sub.clone()),
                timeout: Some(Duration::from_secs(30)),
            });
        }
        {
            let view = self.readback[rs]
                .buffer
                .slice(..size)
                .get_mapped_range()
                .map_err(|e| RenderError::Gpu(format!("readback map: {e}")))?;
            copy_bytes(&mut out, &view[..data.len()]);
        }
        self.readback[rs].buffer.unmap();
        self.readback[rs].ready.store(false, Ordering::Release);
        let down = start.elapsed();
        let same = out == data;
        self.pool.entry(dst.size()).or_default().push(dst);
        if !same {
            return Err(RenderError::Gpu(
                "bytes read back differ from those uploaded".into(),
            ));
        }
        Ok((up, down))
    }
}
