//! The host's own device, shared with the engine: effects frames render on it, and each
//! finished frame is also written into an RGBA8 texture on it in the frame's own submission
//! (`shaders/packed_to_texture.wgsl`). A GPU host then draws the engine's result as it is —
//! no readback to the CPU and upload again on the display path.
//!
//! The bytes are still read back, beside the texture, for what lives on the CPU side (the
//! RAM and disk cache tiers, the frame sink, export). The textures of the newest few frames
//! are kept in [`HostTextures`], keyed by the picture each became, so the
//! [`TextureOutput`](super::TextureOutput) that made the [`HostDevice`] hands out the texture
//! when the player presents that picture, and uploads only pictures that have none (plain
//! Y'CbCr frames, frames rendered on the CPU path, frames older than the kept few).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};

use crate::media::Picture;

/// Textures kept by default: the frames the engine renders ahead of the playhead are the
/// ones presented next (8 1080p frames are 66 MB of VRAM).
pub const DEFAULT_KEPT: usize = 8;

/// The textures of the newest frames the engine finished on the host's device, by the
/// picture each became.
#[derive(Clone)]
pub struct HostTextures {
    inner: Arc<Mutex<Kept>>,
}

struct Kept {
    /// Oldest first.
    entries: VecDeque<(Weak<Picture>, wgpu::Texture)>,
    capacity: usize,
}

impl std::fmt::Debug for HostTextures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostTextures")
            .field("kept", &self.len())
            .finish()
    }
}

impl HostTextures {
    fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Kept {
                entries: VecDeque::new(),
                capacity: capacity.max(1),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps `texture` as `picture`'s; the oldest goes when the kept are full, and so does
    /// any whose picture is gone.
    pub(crate) fn insert(&self, picture: &Arc<Picture>, texture: wgpu::Texture) {
        let mut kept = self.lock();
        kept.entries.retain(|(p, _)| p.strong_count() > 0);
        while kept.entries.len() >= kept.capacity {
            kept.entries.pop_front();
        }
        kept.entries.push_back((Arc::downgrade(picture), texture));
    }

    /// The texture the engine made of `picture` (this very picture, not an equal one), if it
    /// is still kept.
    pub fn find(&self, picture: &Arc<Picture>) -> Option<wgpu::Texture> {
        let kept = self.lock();
        kept.entries
            .iter()
            .rev()
            .find(|(p, _)| std::ptr::eq(p.as_ptr(), Arc::as_ptr(picture)) && p.strong_count() > 0)
            .map(|(_, t)| t.clone())
    }

    /// Textures kept now.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The host's wgpu device and queue, for the engine to render effects on (in
/// [`GpuOptions::host`](super::GpuOptions::host)). Made by
/// [`TextureOutput::share`](super::TextureOutput::share), which then hands out the engine's
/// textures; [`HostDevice::new`] makes one for a host that reads [`HostDevice::textures`]
/// itself.
#[derive(Clone)]
pub struct HostDevice {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) textures: HostTextures,
}

impl std::fmt::Debug for HostDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostDevice")
            .field("adapter", &self.device.adapter_info().name)
            .field("textures", &self.textures)
            .finish()
    }
}

impl HostDevice {
    /// The host's `device` and `queue`; the textures of the newest [`DEFAULT_KEPT`] frames
    /// are kept.
    pub fn new(device: wgpu::Device, queue: wgpu::Queue) -> Self {
        Self::keeping(device, queue, DEFAULT_KEPT)
    }

    /// [`HostDevice::new`] keeping the newest `kept` frames' textures.
    pub fn keeping(device: wgpu::Device, queue: wgpu::Queue, kept: usize) -> Self {
        Self {
            device,
            queue,
            textures: HostTextures::new(kept),
        }
    }

    /// The device.
    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    /// The textures of the frames the engine finished on it.
    pub fn textures(&self) -> &HostTextures {
        &self.textures
    }
}

/// The pass that writes a frame's packed pixels into a texture, on a shared device.
pub(crate) struct ToTexture {
    pipeline: wgpu::ComputePipeline,
}

/// The usages of the textures handed to the host: drawn, written by the pass, copied.
pub(crate) const USAGE: wgpu::TextureUsages = wgpu::TextureUsages::TEXTURE_BINDING
    .union(wgpu::TextureUsages::STORAGE_BINDING)
    .union(wgpu::TextureUsages::COPY_DST)
    .union(wgpu::TextureUsages::COPY_SRC);

impl ToTexture {
    pub(crate) fn new(device: &wgpu::Device) -> Self {
        let source = super::shader_source("packed_to_texture").unwrap_or_default();
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("packed_to_texture"),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("packed_to_texture"),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        Self { pipeline }
    }

    /// Records the pass from `packed` (one u32 a pixel) into a new `width`x`height`
    /// texture, returned; `None` when the device's textures cannot be that large.
    pub(crate) fn record(
        &self,
        device: &wgpu::Device,
        encoder: &mut wgpu::CommandEncoder,
        packed: &wgpu::Buffer,
        (width, height): (u32, u32),
    ) -> Option<wgpu::Texture> {
        let max = device.limits().max_texture_dimension_2d;
        if width == 0 || height == 0 || width > max || height > max {
            return None;
        }
        let texture = device.create_texture(&wgpu::TextureDescriptor {
            label: Some("framelock frame"),
            size: wgpu::Extent3d {
                width,
                height,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba8Unorm,
            usage: USAGE,
            view_formats: &[],
        });
        let view = texture.create_view(&Default::default());
        let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &self.pipeline.get_bind_group_layout(0),
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: packed.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: wgpu::BindingResource::TextureView(&view),
                },
            ],
        });
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("framelock frame to texture"),
            timestamp_writes: None,
        });
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &group, &[]);
        pass.dispatch_workgroups(width.div_ceil(8), height.div_ceil(8), 1);
        drop(pass);
        Some(texture)
    }
}
