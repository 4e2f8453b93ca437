//! The texture output: presented pictures as an RGBA8 [`wgpu::Texture`] on the host's own
//! device, for hosts that composite and display on the GPU.
//!
//! The host hands in its `wgpu::Device` and `wgpu::Queue` (the same ones it draws with) and
//! calls [`TextureOutput::upload`] from its render thread with the picture it wants to draw
//! (the player's newest, pulled at the host's vsync, as libmpv's render API is called on the
//! host's GL thread). 8-bit Y'CbCr planes go up as they are (1.5 bytes a pixel for 4:2:0, not
//! the 4 of RGBA) and are converted by a compute pass on the host's device
//! (`shaders/output_texture.wgsl`); RGBA8 pictures (effects frames) are copied in; 10-bit
//! pictures are converted on the CPU first. Nothing is read back and nothing waits: the
//! work is submitted on the host's queue, so the host's later submissions see it done.
//! Textures come from a ring of three, so the one the host is drawing is never written.

use crate::media::{MatrixCoefficients, Picture, PixelFormat, YuvRange};

/// Textures in the ring: the one drawn, the one queued, the one being written.
const RING: usize = 3;

/// The host's device and the conversion pipeline on it.
pub struct TextureOutput {
    device: wgpu::Device,
    queue: wgpu::Queue,
    layout: wgpu::BindGroupLayout,
    pipeline: wgpu::ComputePipeline,
    params: wgpu::Buffer,
    /// The Y, Cb, Cr plane textures, sized for the last picture.
    planes: Option<([wgpu::Texture; 3], (u32, u32, PixelFormat))>,
    ring: Vec<wgpu::Texture>,
    next: usize,
    /// The number of the last frame uploaded by [`TextureOutput::upload_numbered`], and its
    /// texture.
    last: Option<(u64, wgpu::Texture)>,
    /// The engine's textures, when [`TextureOutput::share`] gave it this device.
    shared: Option<super::HostTextures>,
    counts: OutputCounts,
}

/// How the pictures [`TextureOutput::show`] returned got into their textures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutputCounts {
    /// Uploaded from the CPU (Y'CbCr planes converted on the device, or RGBA8 copied in).
    pub uploaded: u64,
    /// The engine's own texture of the frame, rendered on this device: nothing uploaded,
    /// nothing read back on the way.
    pub shared: u64,
}

impl std::fmt::Debug for TextureOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextureOutput")
            .field("textures", &self.ring.len())
            .finish_non_exhaustive()
    }
}

/// Why a picture could not be put in a texture.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TextureOutputError {
    /// Larger than the host's device allows for a 2D texture.
    #[error("a {width}x{height} picture is larger than the device's {max}-pixel texture limit")]
    TooLarge {
        /// Picture width.
        width: u32,
        /// Picture height.
        height: u32,
        /// The device's `max_texture_dimension_2d`.
        max: u32,
    },
    /// Its planes are shorter than its size says.
    #[error("the picture's planes are shorter than {width}x{height} {format:?}")]
    Malformed {
        /// Picture width.
        width: u32,
        /// Picture height.
        height: u32,
        /// Its format.
        format: PixelFormat,
    },
}

/// The conversion's uniform (`Params` in the shader).
fn params(picture: &Picture) -> [u8; 48] {
    let (kr, kb) = match picture.color.matrix {
        MatrixCoefficients::Bt601 => (0.299f32, 0.114f32),
        MatrixCoefficients::Bt709 => (0.2126, 0.0722),
    };
    let kg = 1.0 - kr - kb;
    let (y_off, y_scale, c_scale) = match picture.color.range {
        YuvRange::Limited => (16.0f32, 1.0 / 219.0f32, 1.0 / 224.0f32),
        YuvRange::Full => (0.0, 1.0 / 255.0, 1.0 / 255.0),
    };
    let shift = match picture.format {
        PixelFormat::Yuv420p | PixelFormat::Yuv420p10 => (1u32, 1u32),
        PixelFormat::Yuv422p | PixelFormat::Yuv422p10 => (1, 0),
        _ => (0, 0),
    };
    let mut out = [0u8; 48];
    let words: [[u8; 4]; 12] = [
        picture.width.to_le_bytes(),
        picture.height.to_le_bytes(),
        shift.0.to_le_bytes(),
        shift.1.to_le_bytes(),
        y_off.to_le_bytes(),
        128.0f32.to_le_bytes(),
        y_scale.to_le_bytes(),
        c_scale.to_le_bytes(),
        (2.0 * (1.0 - kr)).to_le_bytes(),
        (2.0 * kb * (1.0 - kb) / kg).to_le_bytes(),
        (2.0 * kr * (1.0 - kr) / kg).to_le_bytes(),
        (2.0 * (1.0 - kb)).to_le_bytes(),
    ];
    for (chunk, w) in out.chunks_exact_mut(4).zip(words) {
        chunk.copy_from_slice(&w);
    }
    out
}

fn texture(
    device: &wgpu::Device,
    (w, h): (u32, u32),
    format: wgpu::TextureFormat,
    usage: wgpu::TextureUsages,
) -> wgpu::Texture {
    device.create_texture(&wgpu::TextureDescriptor {
        label: Some("framelock output"),
        size: wgpu::Extent3d {
            width: w,
            height: h,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage,
        view_formats: &[],
    })
}

fn write(queue: &wgpu::Queue, t: &wgpu::Texture, bytes: &[u8], bytes_per_row: u32) {
    queue.write_texture(
        wgpu::TexelCopyTextureInfo {
            texture: t,
            mip_level: 0,
            origin: wgpu::Origin3d::ZERO,
            aspect: wgpu::TextureAspect::All,
        },
        bytes,
        wgpu::TexelCopyBufferLayout {
            offset: 0,
            bytes_per_row: Some(bytes_per_row),
            rows_per_image: None,
        },
        t.size(),
    );
}

impl TextureOutput {
    /// The output on the host's `device` and `queue` (the pipeline is built here, once).
    pub fn new(device: wgpu::Device, queue: wgpu::Queue) -> Self {
        let plane = |binding| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Texture {
                sample_type: wgpu::TextureSampleType::Float { filterable: false },
                view_dimension: wgpu::TextureViewDimension::D2,
                multisampled: false,
            },
            count: None,
        };
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("framelock output"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                },
                plane(1),
                plane(2),
                plane(3),
                wgpu::BindGroupLayoutEntry {
                    binding: 4,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::StorageTexture {
                        access: wgpu::StorageTextureAccess::WriteOnly,
                        format: wgpu::TextureFormat::Rgba8Unorm,
                        view_dimension: wgpu::TextureViewDimension::D2,
                    },
                    count: None,
                },
            ],
        });
        let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: None,
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let source = super::shader_source("output_texture").unwrap_or_default();
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("output_texture"),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("output_texture"),
            layout: Some(&pl),
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        let params = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("framelock output params"),
            size: 48,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Self {
            device,
            queue,
            layout,
            pipeline,
            params,
            planes: None,
            ring: Vec::new(),
            next: 0,
            last: None,
            shared: None,
            counts: OutputCounts::default(),
        }
    }

    /// This output's device for the engine to render effects on: pass it as
    /// [`GpuOptions::host`](super::GpuOptions::host). Frames the GPU path renders are then
    /// also written into textures on this device, and [`TextureOutput::show`] hands those
    /// out instead of uploading the picture (see [`super::HostDevice`]).
    pub fn share(&mut self) -> super::HostDevice {
        let host = super::HostDevice::new(self.device.clone(), self.queue.clone());
        self.shared = Some(host.textures.clone());
        host
    }

    /// How the pictures shown so far got into their textures.
    pub fn counts(&self) -> OutputCounts {
        self.counts
    }

    /// The texture to draw numbered frame `number` with (a frame slot's numbers): the
    /// engine's own texture of `picture` when it rendered it on this device (see
    /// [`TextureOutput::share`]), else `picture` uploaded ([`TextureOutput::upload`]). A
    /// number already shown returns the same texture again.
    pub fn show(
        &mut self,
        number: u64,
        picture: &std::sync::Arc<Picture>,
    ) -> Result<wgpu::Texture, TextureOutputError> {
        if let Some((n, t)) = &self.last
            && *n == number
        {
            return Ok(t.clone());
        }
        let t = match self.shared.as_ref().and_then(|s| s.find(picture)) {
            Some(t) => {
                self.counts.shared += 1;
                t
            }
            None => self.upload(picture)?,
        };
        self.last = Some((number, t.clone()));
        Ok(t)
    }

    /// A device and queue on the best adapter (as [`super::adapters`] orders them; a
    /// software one only when `allow_software`), for a host that has none of its own yet,
    /// tests and tools. A host with its own device passes that to [`TextureOutput::new`].
    pub fn open_device(
        allow_software: bool,
    ) -> Result<(wgpu::Device, wgpu::Queue), super::GpuError> {
        let adapter = super::sorted_adapters(&super::instance())
            .into_iter()
            .find(|a| allow_software || a.get_info().device_type != wgpu::DeviceType::Cpu)
            .ok_or(super::GpuError::NoAdapter)?;
        pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("framelock host"),
            required_features: wgpu::Features::empty(),
            required_limits: adapter.limits(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| super::GpuError::Device(e.to_string()))
    }

    /// Reads `texture` (one of this output's) back as RGBA8 rows of `width * 4` bytes,
    /// waiting for the GPU: for tests and screenshots, never needed to display.
    pub fn read_rgba(&self, texture: &wgpu::Texture) -> Vec<u8> {
        let (w, h) = (texture.width(), texture.height());
        let row = (w * 4).next_multiple_of(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT);
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("framelock output readback"),
            size: u64::from(row) * u64::from(h),
            usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ,
            mapped_at_creation: false,
        });
        let mut encoder = self.device.create_command_encoder(&Default::default());
        encoder.copy_texture_to_buffer(
            texture.as_image_copy(),
            wgpu::TexelCopyBufferInfo {
                buffer: &buffer,
                layout: wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(row),
                    rows_per_image: None,
                },
            },
            texture.size(),
        );
        let sub = self.queue.submit([encoder.finish()]);
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = done.clone();
        buffer.map_async(wgpu::MapMode::Read, .., move |r| {
            flag.store(r.is_ok(), std::sync::atomic::Ordering::Release);
        });
        let _ = self.device.poll(wgpu::PollType::Wait {
            submission_index: Some(sub),
            timeout: Some(std::time::Duration::from_secs(30)),
        });
        let mut out = Vec::with_capacity(w as usize * h as usize * 4);
        if done.load(std::sync::atomic::Ordering::Acquire)
            && let Ok(view) = buffer.slice(..).get_mapped_range()
        {
            for r in view.chunks(row as usize) {
                out.extend_from_slice(&r[..w as usize * 4]);
            }
        }
        out
    }

    /// Puts `picture` in the next texture of the ring (RGBA8, the picture's size; usable as
    /// `TEXTURE_BINDING` and `COPY_SRC`) and returns it. The upload and conversion are
    /// submitted on the host's queue, not waited for.
    pub fn upload(&mut self, picture: &Picture) -> Result<wgpu::Texture, TextureOutputError> {
        self.counts.uploaded += 1;
        let (w, h) = (picture.width, picture.height);
        let max = self.device.limits().max_texture_dimension_2d;
        if w == 0 || h == 0 || w > max || h > max {
            return Err(TextureOutputError::TooLarge {
                width: w,
                height: h,
                max,
            });
        }
        let malformed = TextureOutputError::Malformed {
            width: w,
            height: h,
            format: picture.format,
        };
        let out = self.target((w, h));
        match picture.format {
            PixelFormat::Yuv420p | PixelFormat::Yuv422p | PixelFormat::Yuv444p => {
                let (cw, ch) = picture.chroma_size();
                let sizes = [(w, h), (cw, ch), (cw, ch)];
                if picture
                    .planes
                    .iter()
                    .zip(sizes)
                    .any(|(p, (pw, ph))| p.len() < pw as usize * ph as usize)
                {
                    return Err(malformed);
                }
                self.convert(picture, &out, sizes);
            }
            PixelFormat::Rgba8 => {
                if picture.planes[0].len() < w as usize * h as usize * 4 {
                    return Err(malformed);
                }
                write(
                    &self.queue,
                    &out,
                    &picture.planes[0][..w as usize * h as usize * 4],
                    w * 4,
                );
            }
            // 10-bit: converted on the CPU (the shader reads 8-bit planes).
            _ => write(&self.queue, &out, &picture.to_rgba(), w * 4),
        }
        Ok(out)
    }

    /// [`TextureOutput::upload`] for a numbered frame (a frame slot's numbers): a frame
    /// already uploaded is not uploaded again; its texture is returned.
    pub fn upload_numbered(
        &mut self,
        number: u64,
        picture: &Picture,
    ) -> Result<wgpu::Texture, TextureOutputError> {
        if let Some((n, t)) = &self.last
            && *n == number
        {
            return Ok(t.clone());
        }
        let t = self.upload(picture)?;
        self.last = Some((number, t.clone()));
        Ok(t)
    }

    /// The ring's next texture, (re)made at `size`.
    fn target(&mut self, size: (u32, u32)) -> wgpu::Texture {
        let usage = super::host::USAGE;
        let fits = |t: &wgpu::Texture| (t.width(), t.height()) == size;
        if self.ring.len() < RING || !fits(&self.ring[self.next]) {
            let t = texture(&self.device, size, wgpu::TextureFormat::Rgba8Unorm, usage);
            if self.ring.len() < RING {
                self.ring.push(t);
                self.next = self.ring.len() - 1;
            } else {
                self.ring[self.next] = t;
            }
        }
        let t = self.ring[self.next].clone();
        self.next = (self.next + 1) % RING;
        t
    }

    /// Uploads the planes and runs the conversion into `out`.
    fn convert(&mut self, picture: &Picture, out: &wgpu::Texture, sizes: [(u32, u32); 3]) {
        let key = (picture.width, picture.height, picture.format);
        if self.planes.as_ref().is_none_or(|(_, k)| *k != key) {
            let usage = wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST;
            let make = |s| texture(&self.device, s, wgpu::TextureFormat::R8Unorm, usage);
            self.planes = Some(([make(sizes[0]), make(sizes[1]), make(sizes[2])], key));
        }
        let Some((planes, _)) = &self.planes else {
            return;
        };
        for ((t, bytes), (pw, ph)) in planes.iter().zip(&picture.planes).zip(sizes) {
            write(&self.queue, t, &bytes[..pw as usize * ph as usize], pw);
        }
        self.queue.write_buffer(&self.params, 0, &params(picture));
        let views: Vec<wgpu::TextureView> = planes
            .iter()
            .chain(std::iter::once(out))
            .map(|t| t.create_view(&Default::default()))
            .collect();
        let group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &self.layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: self.params.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: wgpu::BindingResource::TextureView(&views[0]),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: wgpu::BindingResource::TextureView(&views[1]),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: wgpu::BindingResource::TextureView(&views[2]),
                },
                wgpu::BindGroupEntry {
                    binding: 4,
                    resource: wgpu::BindingResource::TextureView(&views[3]),
                },
            ],
        });
        let mut encoder = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("framelock output"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, &group, &[]);
            pass.dispatch_workgroups(picture.width.div_ceil(8), picture.height.div_ceil(8), 1);
        }
        self.queue.submit([encoder.finish()]);
    }
}
