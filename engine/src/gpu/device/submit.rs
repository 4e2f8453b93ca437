//! Submission: a frame graph recorded into one command encoder (with pass timestamps) and
//! submitted; its staging slots re-map and its readback maps when the GPU is done.

use std::sync::atomic::Ordering;

use super::GpuDevice;
use super::graph::{Kernel, Step};
use super::readback::InFlight;
use crate::effects::{RenderError, RenderJob};
use crate::gpu::kernels::{End, PARAMS_SLOT};

impl GpuDevice {
    /// Encodes and submits `job`.
    pub(in crate::gpu) fn submit(
        &mut self,
        ticket: u64,
        job: &RenderJob,
    ) -> Result<(), RenderError> {
        crate::profile_scope!("gpu submit");
        if let Some(e) = self.error.lock().ok().and_then(|mut g| g.take()) {
            return Err(RenderError::Gpu(e));
        }
        let (enc, packed) = self.encode(job)?;
        let out_bytes = u64::from(job.width) * u64::from(job.height) * 4;
        let slot = self.read_slot(out_bytes);
        // Params: grow the buffer if this frame needs more slots.
        if enc.params.len() as u64 > self.params.size() {
            self.params = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("params"),
                size: (enc.params.len() as u64).next_power_of_two(),
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            self.stats.buffers_created += 1;
        }
        self.queue.write_buffer(&self.params, 0, &enc.params);
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("frame"),
            });
        let mut timed: Vec<Kernel> = Vec::new();
        for step in &enc.steps {
            match *step {
                Step::Upload { staging, dst, size } => {
                    encoder.copy_buffer_to_buffer(
                        &self.staging[staging].buffer,
                        0,
                        &enc.bufs[dst].0,
                        0,
                        size,
                    );
                }
                Step::Copy { src, dst, size } => {
                    encoder.copy_buffer_to_buffer(&enc.bufs[src].0, 0, &enc.bufs[dst].0, 0, size);
                }
                Step::Clear { dst } => encoder.clear_buffer(&enc.bufs[dst].0, 0, None),
                Step::Dispatch {
                    kernel,
                    params,
                    src,
                    dst,
                    aux,
                    groups,
                } => {
                    let pipeline = self.pipeline(kernel);
                    let params_binding = wgpu::BufferBinding {
                        buffer: &self.params,
                        offset: 0,
                        size: wgpu::BufferSize::new(PARAMS_SLOT),
                    };
                    let frame = kernel.writes_frame();
                    let mut entries = vec![
                        wgpu::BindGroupEntry {
                            binding: 0,
                            resource: wgpu::BindingResource::Buffer(params_binding),
                        },
                        wgpu::BindGroupEntry {
                            binding: 1,
                            resource: enc.bufs[src].0.as_entire_binding(),
                        },
                        wgpu::BindGroupEntry {
                            binding: if frame { 4 } else { 2 },
                            resource: enc.bufs[dst].0.as_entire_binding(),
                        },
                    ];
                    if let Some(a) = aux {
                        entries.push(wgpu::BindGroupEntry {
                            binding: 3,
                            resource: enc.bufs[a].0.as_entire_binding(),
                        });
                    }
                    let layout = match (frame, aux) {
                        (true, _) => &self.k.layout_frame,
                        (false, Some(_)) => &self.k.layout4,
                        (false, None) => &self.k.layout3,
                    };
                    let group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                        label: None,
                        layout,
                        entries: &entries,
                    });
                    let writes = self
                        .timestamps
                        .as_ref()
                        .filter(|t| (timed.len() as u32) < t.passes)
                        .map(|t| {
                            let i = timed.len() as u32 * 2;
                            wgpu::ComputePassTimestampWrites {
                                query_set: &t.set,
                                beginning_of_pass_write_index: Some(i),
                                end_of_pass_write_index: Some(i + 1),
                            }
                        });
                    if writes.is_some() {
                        timed.push(kernel);
                    }
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: None,
                        timestamp_writes: writes,
                    });
                    pass.set_pipeline(&pipeline);
                    pass.set_bind_group(0, &group, &[params]);
                    pass.dispatch_workgroups(groups.0, groups.1, 1);
                    self.stats.dispatches += 1;
                }
            }
        }
        let texture = self.to_texture.as_ref().and_then(|t| {
            t.record(
                &self.device,
                &mut encoder,
                &enc.bufs[packed].0,
                (job.width, job.height),
            )
        });
        encoder.copy_buffer_to_buffer(
            &enc.bufs[packed].0,
            0,
            &self.readback[slot].buffer,
            0,
            out_bytes,
        );
        let stamp_bytes = timed.len() as u64 * 16;
        if let (Some(t), Some((b, _))) = (&self.timestamps, &self.readback[slot].stamps)
            && stamp_bytes > 0
        {
            encoder.resolve_query_set(&t.set, 0..timed.len() as u32 * 2, &t.resolve, 0);
            encoder.copy_buffer_to_buffer(&t.resolve, 0, b, 0, stamp_bytes);
        }
        let submission = self.queue.submit([encoder.finish()]);
        // Staging slots come back mapped for the next upload; the readback maps when done.
        for &s in &enc.staging_used {
            self.staging[s].submission = Some((ticket, submission.clone()));
            let flag = self.staging[s].mapped.clone();
            self.staging[s]
                .buffer
                .map_async(wgpu::MapMode::Write, .., move |r| {
                    flag.store(r.is_ok(), Ordering::Release)
                });
        }
        let rs = &mut self.readback[slot];
        rs.busy = true;
        rs.ready.store(false, Ordering::Release);
        let flag = rs.ready.clone();
        rs.buffer
            .map_async(wgpu::MapMode::Read, ..out_bytes, move |r| {
                flag.store(r.is_ok(), Ordering::Release)
            });
        if let Some((b, ready)) = &rs.stamps
            && stamp_bytes > 0
        {
            ready.store(false, Ordering::Release);
            let flag = ready.clone();
            b.map_async(wgpu::MapMode::Read, ..stamp_bytes, move |r| {
                flag.store(r.is_ok(), Ordering::Release);
            });
        }
        for (b, pooled) in enc.bufs {
            if pooled {
                self.pool.entry(b.size()).or_default().push(b);
            }
        }
        self.in_flight.push_back(InFlight {
            ticket,
            slot,
            submission,
            width: job.width,
            height: job.height,
            lod: job.lod,
            tag: job.tag,
            timed,
            texture,
        });
        Ok(())
    }

    /// `k`'s pipeline (a frame's first and last passes are built on first use).
    fn pipeline(&mut self, k: Kernel) -> wgpu::ComputePipeline {
        match k {
            Kernel::Yuv(e) => self.k.end(&self.device, End::Yuv, e),
            Kernel::YuvFrame(e) => self.k.end(&self.device, End::YuvFrame, e),
            Kernel::Pack(e) => self.k.end(&self.device, End::Pack, e),
            Kernel::ScaleH => self.k.scale_h.clone(),
            Kernel::ScaleV => self.k.scale_v.clone(),
            Kernel::Dissolve => self.k.dissolve.clone(),
            Kernel::Composite => self.k.composite.clone(),
            Kernel::Effect { def, pass, tiled } => {
                let (plain, tiled_passes) = &self.k.effects[def];
                if tiled {
                    tiled_passes[pass].clone()
                } else {
                    plain[pass].clone()
                }
            }
        }
    }
}
