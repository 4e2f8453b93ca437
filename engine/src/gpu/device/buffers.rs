//! The pool of work buffers (reused by size, so steady state creates none) and the resize
//! weights kept on the device.

use super::graph::{Buf, Encoding};
use super::{GpuDevice, WORK_USAGE};
use crate::effects::RenderError;
use crate::effects::ops::{AxisWeights, ResizeFilter};

/// Bytes of one work-image pixel: RGBA as four 16-bit unorm values
/// (`shaders/include/pixel.wgsl`).
pub(super) const PIXEL_BYTES: u64 = 8;

impl GpuDevice {
    pub(super) fn take(&mut self, size: u64) -> Result<wgpu::Buffer, RenderError> {
        let size = size.max(16).next_multiple_of(16);
        if size > self.max_binding {
            return Err(RenderError::Gpu(format!(
                "a {size}-byte image exceeds the device's {}-byte binding limit",
                self.max_binding
            )));
        }
        let b = match self.pool.get_mut(&size).and_then(Vec::pop) {
            Some(b) => b,
            None => {
                self.stats.buffers_created += 1;
                self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("work"),
                    size,
                    usage: WORK_USAGE,
                    mapped_at_creation: false,
                })
            }
        };
        if self.poison {
            self.queue.write_buffer(&b, 0, &vec![0xFF; size as usize]);
        }
        Ok(b)
    }

    pub(super) fn weights_buffer(
        &mut self,
        in_size: u32,
        out_size: u32,
        filter: ResizeFilter,
    ) -> (wgpu::Buffer, u32) {
        if let Some((b, window)) = self.weights.get(&(in_size, out_size, filter)) {
            return (b.clone(), *window);
        }
        if self.weights.len() > 64 {
            self.weights.clear();
        }
        let w = AxisWeights::new(in_size, out_size, filter);
        let window = w.window as u32;
        let words = w.to_words();
        let b = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("resize weights"),
            size: (words.len() as u64 * 4).max(16),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.stats.buffers_created += 1;
        self.queue.write_buffer(&b, 0, bytemuck::cast_slice(&words));
        self.weights
            .insert((in_size, out_size, filter), (b.clone(), window));
        (b, window)
    }

    /// A work image of `w`×`h` ([`PIXEL_BYTES`] a pixel, rounded up to whole quads of four
    /// pixels, which the first and last passes read and write) from the pool.
    pub(super) fn work(&mut self, enc: &mut Encoding, w: u32, h: u32) -> Result<Buf, RenderError> {
        let pixels = (u64::from(w) * u64::from(h)).next_multiple_of(4);
        let b = self.take(pixels * PIXEL_BYTES)?;
        Ok(enc.buf(b, true))
    }
}
