//! The GPU path: headless wgpu devices running the WGSL compute shaders in `shaders/`.
//!
//! - [`Gpu::new`] enumerates every adapter and prefers discrete, then integrated, then virtual
//!   GPUs, then a software one (Mesa's lavapipe); with none, [`GpuError::NoAdapter`] and the
//!   engine plays on the CPU path ([`crate::effects::cpu`]).
//! - Several devices (one per adapter, or for tests several on one adapter): each frame goes
//!   to the device with the fewest frames in flight; results come back in submission order.
//! - Texture streaming: a frame's planes go up as-is through a ring of mapped staging buffers
//!   (re-mapped asynchronously after each use, so steady state creates no buffer) and are
//!   converted on the GPU; the finished frame comes back through a ring of readback buffers
//!   mapped asynchronously. Uploaded planes stay in VRAM, the L1 cache tier, under their
//!   decoded-frame key, within a byte budget, least recently used out first.
//! - Pipelining: up to `frames_in_flight` frames per device are submitted before the oldest
//!   is read back, so frame n+2 uploads while n+1 runs its effects and n is read back.
//! - Fusion: per-pixel work runs inside the pass next to it. The grades right after a layer's
//!   conversion run in the conversion, consecutive grades run as one chain, and the last
//!   layer's trailing grades and composite run in the final RGBA8 pack; a one-layer frame of
//!   grades is one pass. Blur and sharpen write a run of pixels per invocation, reading each
//!   source pixel once per run (what a software adapter pays for).
//! - Readback lands in host buffers the caller hands back with [`Gpu::recycle`] (a fresh 4K
//!   frame's 33 MB would cost its page faults every frame), copied on rayon's threads.
//!
//! Images on the GPU are storage buffers of packed pixels, RGBA as four 16-bit unorm values
//! (`shaders/include/pixel.wgsl`; rows tightly packed), so shaders need no texture formats or
//! row alignment, arithmetic stays f32, and a stored value is within 1/65535 of it: the
//! results match the CPU path well inside its 1/255. Half the bytes of `vec4<f32>` pixels,
//! and on lavapipe half the per-lane loads and stores, which are most of its cost.

mod device;
mod host;
mod kernels;
mod output;

use std::collections::{HashMap, VecDeque};

pub use device::{BlurKernel, DeviceStats, GpuDevice};
pub use host::{HostDevice, HostTextures};
pub use output::{OutputCounts, TextureOutput, TextureOutputError};

/// The shader files the pipelines are built from (`shaders/<name>.wgsl`), derived from the
/// fixed kernels and the effect table.
pub fn shader_names() -> Vec<&'static str> {
    kernels::shaders().into_iter().map(|(n, _)| n).collect()
}

/// The WGSL a shader file is compiled from (the file with the shared bindings appended).
pub fn shader_source(name: &str) -> Option<&'static str> {
    kernels::shaders()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| s)
}

pub use kernels::PARAMS_SLOT;

use crate::effects::{RenderError, RenderJob, RenderedRgba};

/// How to open the GPU.
#[derive(Clone, Debug)]
pub struct GpuOptions {
    /// Devices to open: one per adapter, best first; when there are fewer adapters than
    /// this, further devices are opened on the best adapter (useful for tests and for GPUs
    /// whose driver runs queues independently).
    pub devices: usize,
    /// Frames submitted per device before the oldest must be read back.
    pub frames_in_flight: usize,
    /// Bytes of uploaded planes kept in VRAM (the L1 tier), per device.
    pub vram_budget: usize,
    /// Accept a software adapter (lavapipe) when there is no hardware one.
    pub allow_software: bool,
    /// Tests: every buffer a frame writes is filled with `0xFF` bytes (NaN) before use, so a
    /// pixel a shader fails to write shows in the result.
    pub poison: bool,
    /// The host's own device (see [`HostDevice`]): effects render on it, one device only,
    /// and each finished frame is also left in a texture on it for the host to draw.
    pub host: Option<HostDevice>,
}

impl Default for GpuOptions {
    fn default() -> Self {
        Self {
            devices: 1,
            frames_in_flight: 3,
            vram_budget: 512 << 20,
            allow_software: true,
            poison: false,
            host: None,
        }
    }
}

/// Why the GPU path is not available.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// No adapter (or only a software one when those are refused).
    #[error("no GPU adapter found")]
    NoAdapter,
    /// The adapter refused a device.
    #[error("GPU device request failed: {0}")]
    Device(String),
}

/// An adapter wgpu can see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterSummary {
    /// Device name as the driver reports it.
    pub name: String,
    /// Discrete, integrated, virtual, CPU or other.
    pub device_type: String,
    /// Vulkan, Metal, DX12...
    pub backend: String,
    /// A software rasteriser (lavapipe, WARP).
    pub software: bool,
}

fn instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = wgpu::Backends::PRIMARY;
    wgpu::Instance::new(desc)
}

fn rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

fn sorted_adapters(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    let mut adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY));
    adapters.sort_by_key(|a| rank(a.get_info().device_type));
    adapters
}

/// Every adapter wgpu finds, best first.
pub fn adapters() -> Vec<AdapterSummary> {
    sorted_adapters(&instance())
        .iter()
        .map(|a| {
            let info = a.get_info();
            AdapterSummary {
                name: info.name,
                device_type: format!("{:?}", info.device_type),
                backend: format!("{:?}", info.backend),
                software: info.device_type == wgpu::DeviceType::Cpu,
            }
        })
        .collect()
}

/// The GPU devices and the in-order scheduler over them.
pub struct Gpu {
    devices: Vec<GpuDevice>,
    /// Submitted tickets, oldest first, with their device.
    order: VecDeque<(u64, usize)>,
    next_ticket: u64,
    /// Results read back ahead of their turn.
    early: HashMap<u64, Result<RenderedRgba, RenderError>>,
    round_robin: usize,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("devices", &self.device_names())
            .field("in_flight", &self.order.len())
            .finish()
    }
}

impl Gpu {
    /// Counts each device's host memory (mapped staging and readback buffers, spare frame
    /// buffers) in `pool`'s effect-scratch class from now on.
    pub fn count_host_memory_in(&mut self, pool: &crate::memory::BufferPool) {
        for d in &mut self.devices {
            d.count_host_memory_in(pool);
        }
    }

    /// Host memory the devices hold (see [`Gpu::count_host_memory_in`]).
    pub fn host_bytes(&self) -> usize {
        self.devices.iter().map(GpuDevice::host_bytes).sum()
    }

    /// Opens the devices `options` asks for.
    pub fn new(options: &GpuOptions) -> Result<Self, GpuError> {
        if let Some(host) = &options.host {
            return Ok(Self::with_devices(vec![GpuDevice::on_host(host, options)]));
        }
        let instance = instance();
        let adapters: Vec<wgpu::Adapter> = sorted_adapters(&instance)
            .into_iter()
            .filter(|a| options.allow_software || a.get_info().device_type != wgpu::DeviceType::Cpu)
            .collect();
        let Some(best) = adapters.first() else {
            return Err(GpuError::NoAdapter);
        };
        let want = options.devices.max(1);
        let mut devices = Vec::with_capacity(want);
        for i in 0..want {
            let adapter = adapters.get(i).unwrap_or(best);
            devices.push(GpuDevice::new(adapter, options)?);
        }
        Ok(Self::with_devices(devices))
    }

    fn with_devices(devices: Vec<GpuDevice>) -> Self {
        Self {
            devices,
            order: VecDeque::new(),
            next_ticket: 0,
            early: HashMap::new(),
            round_robin: 0,
        }
    }

    /// The devices' names (as the drivers report them).
    pub fn device_names(&self) -> Vec<String> {
        self.devices.iter().map(|d| d.name().to_owned()).collect()
    }

    /// Whether every device is a software rasteriser.
    pub fn is_software(&self) -> bool {
        self.devices.iter().all(GpuDevice::is_software)
    }

    /// Whether every device times its passes (timestamp queries).
    pub fn has_timestamps(&self) -> bool {
        self.devices.iter().all(GpuDevice::has_timestamps)
    }

    /// Per-device counters.
    pub fn stats(&self) -> Vec<DeviceStats> {
        self.devices.iter().map(GpuDevice::stats).collect()
    }

    /// Frames submitted and not yet received.
    pub fn in_flight(&self) -> usize {
        self.order.len()
    }

    /// Whether another frame can be submitted without waiting for one to finish.
    pub fn has_capacity(&self) -> bool {
        self.devices.iter().any(GpuDevice::has_capacity)
    }

    /// Submits a frame to the least loaded device (fewest frames in flight; ties in turn).
    /// When every device is full, waits for the oldest frame first (kept for
    /// [`Gpu::receive`]). Returns the frame's ticket.
    pub fn submit(&mut self, job: &RenderJob) -> Result<u64, RenderError> {
        job.validate()?;
        if !self.has_capacity()
            && let Some((ticket, result)) = self.receive_oldest()
        {
            self.early.insert(ticket, result);
        }
        let n = self.devices.len();
        let min = self
            .devices
            .iter()
            .map(GpuDevice::in_flight)
            .min()
            .unwrap_or(0);
        let pick = (0..n)
            .map(|k| (self.round_robin + k) % n)
            .find(|&i| self.devices[i].in_flight() == min)
            .unwrap_or(0);
        self.round_robin = (pick + 1) % n;
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.devices[pick].submit(ticket, job)?;
        self.order.push_back((ticket, pick));
        Ok(ticket)
    }

    fn receive_oldest(&mut self) -> Option<(u64, Result<RenderedRgba, RenderError>)> {
        let &(ticket, dev) = self
            .order
            .iter()
            .find(|(t, _)| !self.early.contains_key(t))?;
        let result = self.devices[dev].wait(ticket);
        Some((ticket, result))
    }

    /// The next frame in submission order, waiting for it.
    pub fn receive(&mut self) -> Option<(u64, Result<RenderedRgba, RenderError>)> {
        let (ticket, dev) = self.order.pop_front()?;
        if let Some(r) = self.early.remove(&ticket) {
            return Some((ticket, r));
        }
        Some((ticket, self.devices[dev].wait(ticket)))
    }

    /// The next frame in submission order if it is finished, without waiting.
    pub fn try_receive(&mut self) -> Option<(u64, Result<RenderedRgba, RenderError>)> {
        let &(ticket, dev) = self.order.front()?;
        if !self.early.contains_key(&ticket) && !self.devices[dev].is_done(ticket) {
            return None;
        }
        self.receive()
    }

    /// Renders one frame and waits for it. Frames submitted before stay in flight, in
    /// order, for [`Gpu::receive`].
    pub fn render(&mut self, job: &RenderJob) -> Result<RenderedRgba, RenderError> {
        let ticket = self.submit(job)?;
        let Some(pos) = self.order.iter().position(|&(t, _)| t == ticket) else {
            return Err(RenderError::Gpu("submitted frame lost".into()));
        };
        let Some((_, dev)) = self.order.remove(pos) else {
            return Err(RenderError::Gpu("submitted frame lost".into()));
        };
        self.devices[dev].wait(ticket)
    }

    /// Takes back a received frame's bytes ([`RenderedRgba::rgba`]) for a later frame to be
    /// read into (no fresh allocation, so no page faults, per frame).
    pub fn recycle(&mut self, bytes: Vec<u8>) {
        if let Some(d) = self.devices.iter_mut().min_by_key(|d| d.spare_count()) {
            d.recycle(bytes);
        }
    }

    /// Chooses the blur kernel on every device.
    pub fn set_blur_kernel(&mut self, kernel: BlurKernel) {
        for d in &mut self.devices {
            d.set_blur_kernel(kernel);
        }
    }

    /// Streaming speed of the first device: see [`GpuDevice::transfer`].
    pub fn transfer(
        &mut self,
        data: &[u8],
    ) -> Result<(std::time::Duration, std::time::Duration), RenderError> {
        match self.devices.first_mut() {
            Some(d) => d.transfer(data),
            None => Err(RenderError::Gpu("no device".into())),
        }
    }

    /// Drops uploaded planes from VRAM (all devices). Returns the bytes freed.
    pub fn clear_vram(&mut self) -> usize {
        self.devices.iter_mut().map(GpuDevice::clear_vram).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapter_ranking_prefers_hardware() {
        assert!(rank(wgpu::DeviceType::DiscreteGpu) < rank(wgpu::DeviceType::IntegratedGpu));
        assert!(rank(wgpu::DeviceType::IntegratedGpu) < rank(wgpu::DeviceType::Cpu));
    }
}
