//! One wgpu device, one concept a file: the device and its counters (here), the buffer pool
//! ([`buffers`]), the staging ring that uploads planes ([`staging`]), the readback ring and
//! pass timing ([`readback`]), the VRAM tier of uploaded planes ([`vram`]), the frame graph a
//! job is encoded into ([`graph`]) and its submission ([`submit`]).

mod buffers;
mod graph;
mod readback;
mod staging;
mod submit;
mod vram;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use super::host::ToTexture;
use super::kernels::{Kernels, PARAMS_SLOT};
use super::{GpuError, GpuOptions};
use crate::effects::ops::ResizeFilter;
use readback::{InFlight, ReadSlot, Timestamps};
use staging::StagingSlot;
use vram::VramEntry;

/// Which blur kernel runs (the benchmarks compare them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BlurKernel {
    /// Tiled for radius ≤ 8 on hardware, separable above and on software adapters.
    #[default]
    Auto,
    /// Always two separable passes.
    Separable,
    /// The shared-memory tile (radius ≤ 8; larger radii fall back to separable).
    Tiled,
}

/// Counters of one device.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeviceStats {
    /// Adapter name.
    pub name: String,
    /// Frames rendered.
    pub frames: u64,
    /// Layers whose planes were uploaded.
    pub uploads: u64,
    /// Bytes uploaded.
    pub upload_bytes: u64,
    /// Layers whose planes were already in VRAM.
    pub vram_hits: u64,
    /// Bytes of planes held in VRAM now.
    pub vram_bytes: usize,
    /// Entries held in VRAM now.
    pub vram_entries: usize,
    /// VRAM entries evicted for the budget.
    pub vram_evictions: u64,
    /// The VRAM tier's byte budget.
    pub vram_limit: usize,
    /// Buffers ever created (work, staging, readback, VRAM): flat in steady state.
    pub buffers_created: u64,
    /// Bytes read back.
    pub readback_bytes: u64,
    /// Compute dispatches recorded.
    pub dispatches: u64,
    /// GPU time of the last frame read back, per shader entry point (ms, summed over its
    /// passes), measured with timestamp queries; `None` when the adapter has no timestamp
    /// queries (never a made-up number).
    pub pass_ms: Option<Vec<(String, f64)>>,
}

/// One GPU device.
pub struct GpuDevice {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    max_binding: u64,
    k: Kernels,
    params: wgpu::Buffer,
    pool: HashMap<u64, Vec<wgpu::Buffer>>,
    /// Resize weights on the device, with their window, per (in, out, filter).
    weights: HashMap<(u32, u32, ResizeFilter), (wgpu::Buffer, u32)>,
    staging: Vec<StagingSlot>,
    readback: Vec<ReadSlot>,
    /// Host buffers of frames read back, returned by the caller for reuse.
    spare: Vec<Vec<u8>>,
    vram: HashMap<u64, VramEntry>,
    vram_budget: u64,
    uses: u64,
    in_flight: VecDeque<InFlight>,
    frames_in_flight: usize,
    error: Arc<Mutex<Option<String>>>,
    stats: DeviceStats,
    blur: BlurKernel,
    poison: bool,
    timestamps: Option<Timestamps>,
    /// On the host's device: each frame is also written into a texture for the host.
    to_texture: Option<ToTexture>,
    /// The host memory this device holds (mapped staging and readback buffers, spare frame
    /// buffers), counted in the engine's budget when it gives a pool.
    host_counted: Option<crate::memory::Accounted>,
}

/// Copies of a frame's worth (megabytes) to and from mapped GPU memory run in 1 MiB pieces on
/// rayon's threads: one core's memcpy is what bounds streaming a 4K frame.
const PIECE: usize = 1 << 20;

/// Copies `src` into `dst` (same length), in pieces on rayon's threads when it is large.
pub(super) fn copy_bytes(dst: &mut [u8], src: &[u8]) {
    use rayon::prelude::*;
    if src.len() < 4 * PIECE {
        dst.copy_from_slice(src);
    } else {
        dst.par_chunks_mut(PIECE)
            .zip(src.par_chunks(PIECE))
            .for_each(|(d, s)| d.copy_from_slice(s));
    }
}

/// Writes `parts` (each at its byte offset) into the first `total` bytes of the write-mapped
/// `buffer`. A frame's worth is written in [`PIECE`]s, each its own mapped view, on rayon's
/// threads (wgpu's mapped views of disjoint ranges can be written side by side).
pub(super) fn write_mapped(
    buffer: &wgpu::Buffer,
    total: usize,
    parts: &[(usize, &[u8])],
) -> Result<(), crate::effects::RenderError> {
    use rayon::prelude::*;
    let piece = if total < 4 * PIECE { total } else { PIECE };
    // Pieces start at multiples of `piece` (a multiple of the map alignment) and end at the
    // next one or at `total` (a multiple of 4).
    let views = (0..total)
        .step_by(piece.max(1))
        .map(|at| {
            let end = (at + piece).min(total);
            buffer
                .slice(at as u64..end as u64)
                .get_mapped_range_mut()
                .map(|view| (at, view))
                .map_err(|e| crate::effects::RenderError::Gpu(format!("staging map: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    views.into_par_iter().for_each(|(at, mut view)| {
        let end = at + view.len();
        for &(offset, bytes) in parts {
            // The part of `bytes` that falls in this piece.
            let (from, to) = (offset.max(at), (offset + bytes.len()).min(end));
            if from < to {
                view.slice(from - at..to - at)
                    .copy_from_slice(&bytes[from - offset..to - offset]);
            }
        }
    });
    Ok(())
}

const WORK_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_DST)
    .union(wgpu::BufferUsages::COPY_SRC);

impl GpuDevice {
    /// Counts the host memory this device holds in `pool`'s effect-scratch class from now
    /// on: its mapped staging and readback buffers and the spare frame buffers it keeps.
    pub fn count_host_memory_in(&mut self, pool: &crate::memory::BufferPool) {
        self.host_counted = Some(pool.account(crate::memory::PoolClass::EffectScratch));
        self.recount_host();
    }

    /// Bytes of host memory the device holds (see [`GpuDevice::count_host_memory_in`]).
    pub fn host_bytes(&self) -> usize {
        let staging: u64 = self.staging.iter().map(|s| s.size).sum();
        let readback: u64 = self.readback.iter().map(|s| s.size).sum();
        let spare: usize = self.spare.iter().map(Vec::capacity).sum();
        (staging + readback) as usize + spare
    }

    pub(super) fn recount_host(&mut self) {
        let bytes = self.host_bytes();
        if let Some(c) = &mut self.host_counted {
            c.set(bytes);
        }
    }

    /// Opens a device on `adapter`.
    pub(super) fn new(adapter: &wgpu::Adapter, options: &GpuOptions) -> Result<Self, GpuError> {
        let limits = adapter.limits();
        let timestamps = adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY);
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("framelock"),
            required_features: if timestamps {
                wgpu::Features::TIMESTAMP_QUERY
            } else {
                wgpu::Features::empty()
            },
            required_limits: limits,
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| GpuError::Device(e.to_string()))?;
        let error: Arc<Mutex<Option<String>>> = Arc::default();
        let sink = error.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut slot) = sink.lock() {
                slot.get_or_insert_with(|| e.to_string());
            }
        }));
        let lost = error.clone();
        device.set_device_lost_callback(move |reason, msg| {
            if let Ok(mut slot) = lost.lock() {
                slot.get_or_insert_with(|| format!("device lost ({reason:?}): {msg}"));
            }
        });
        Ok(Self::with_device(device, queue, error, options, false))
    }

    /// The host's device (see [`crate::gpu::HostDevice`]). Its error and device-lost
    /// handlers stay the host's: the engine installs none on a device it does not own.
    pub(super) fn on_host(host: &crate::gpu::HostDevice, options: &GpuOptions) -> Self {
        let (device, queue) = (host.device.clone(), host.queue.clone());
        Self::with_device(device, queue, Arc::default(), options, true)
    }

    fn with_device(
        device: wgpu::Device,
        queue: wgpu::Queue,
        error: Arc<Mutex<Option<String>>>,
        options: &GpuOptions,
        shared: bool,
    ) -> Self {
        let info = device.adapter_info();
        let limits = device.limits();
        let timestamps = device.features().contains(wgpu::Features::TIMESTAMP_QUERY);
        let k = Kernels::new(&device);
        let params = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("params"),
            size: PARAMS_SLOT * 64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let stats = DeviceStats {
            name: info.name.clone(),
            buffers_created: 1,
            ..DeviceStats::default()
        };
        let timestamps = timestamps.then(|| {
            let passes = 256;
            Timestamps {
                set: device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("pass times"),
                    ty: wgpu::QueryType::Timestamp,
                    count: passes * 2,
                }),
                resolve: device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("pass times resolve"),
                    size: u64::from(passes) * 16,
                    usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                }),
                passes,
                period_ns: f64::from(queue.get_timestamp_period()),
            }
        });
        Self {
            to_texture: shared.then(|| ToTexture::new(&device)),
            host_counted: None,
            max_binding: limits
                .max_storage_buffer_binding_size
                .min(limits.max_buffer_size),
            device,
            queue,
            info,
            k,
            params,
            pool: HashMap::new(),
            weights: HashMap::new(),
            staging: Vec::new(),
            readback: Vec::new(),
            spare: Vec::new(),
            vram: HashMap::new(),
            vram_budget: options.vram_budget as u64,
            uses: 0,
            in_flight: VecDeque::new(),
            frames_in_flight: options.frames_in_flight.max(1),
            error,
            stats,
            blur: BlurKernel::Auto,
            poison: options.poison,
            timestamps,
        }
    }

    /// The adapter's name.
    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// Whether it is a software rasteriser.
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// Counters.
    pub fn stats(&self) -> DeviceStats {
        let mut s = self.stats.clone();
        s.vram_entries = self.vram.len();
        s.vram_limit = self.vram_budget as usize;
        s.vram_bytes = self.vram.values().map(|e| e.bytes as usize).sum();
        s
    }

    /// Whether the adapter times passes with timestamp queries.
    pub fn has_timestamps(&self) -> bool {
        self.timestamps.is_some()
    }

    /// Frames submitted and not yet read back.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether a frame can be submitted without waiting.
    pub fn has_capacity(&self) -> bool {
        self.in_flight.len() < self.frames_in_flight
    }

    /// Host buffers waiting to be read into.
    pub(super) fn spare_count(&self) -> usize {
        self.spare.len()
    }

    /// Chooses the blur kernel.
    pub fn set_blur_kernel(&mut self, kernel: BlurKernel) {
        self.blur = kernel;
    }
}
