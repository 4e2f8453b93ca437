//! How a picture's samples are laid out ([`PixelFormat`]) and turned into colours
//! ([`ColorSpace`]: matrix and range).

/// The layout of a frame's samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PixelFormat {
    /// 8-bit 4:2:0.
    Yuv420p,
    /// 8-bit 4:2:2.
    Yuv422p,
    /// 8-bit 4:4:4.
    Yuv444p,
    /// 10-bit 4:2:0, samples as little-endian `u16`.
    Yuv420p10,
    /// 10-bit 4:2:2, samples as little-endian `u16`.
    Yuv422p10,
    /// 8-bit RGBA, one plane (rows of `width * 4` bytes; the other two planes are empty):
    /// frames rendered with effects.
    Rgba8,
}

impl PixelFormat {
    /// Chroma plane size for a `width`×`height` picture.
    pub fn chroma_size(self, width: u32, height: u32) -> (u32, u32) {
        match self {
            Self::Yuv420p | Self::Yuv420p10 => (width.div_ceil(2), height.div_ceil(2)),
            Self::Yuv422p | Self::Yuv422p10 => (width.div_ceil(2), height),
            Self::Yuv444p => (width, height),
            Self::Rgba8 => (0, 0),
        }
    }

    /// Bytes per sample.
    pub fn bytes_per_sample(self) -> usize {
        match self {
            Self::Yuv420p10 | Self::Yuv422p10 => 2,
            Self::Rgba8 => 4,
            _ => 1,
        }
    }

    /// A stable one-byte code (cache keys and the disk tier's slot headers store it).
    pub fn code(self) -> u8 {
        match self {
            Self::Yuv420p => 0,
            Self::Yuv422p => 1,
            Self::Yuv444p => 2,
            Self::Yuv420p10 => 3,
            Self::Yuv422p10 => 4,
            Self::Rgba8 => 5,
        }
    }

    /// The format of a [`PixelFormat::code`].
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => Self::Yuv420p,
            1 => Self::Yuv422p,
            2 => Self::Yuv444p,
            3 => Self::Yuv420p10,
            4 => Self::Yuv422p10,
            5 => Self::Rgba8,
            _ => return None,
        })
    }

    /// The name `ffmpeg -pix_fmt` uses.
    pub fn ffmpeg_name(self) -> &'static str {
        match self {
            Self::Yuv420p => "yuv420p",
            Self::Yuv422p => "yuv422p",
            Self::Yuv444p => "yuv444p",
            Self::Yuv420p10 => "yuv420p10le",
            Self::Yuv422p10 => "yuv422p10le",
            Self::Rgba8 => "rgba",
        }
    }
}

/// YUV → RGB matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum MatrixCoefficients {
    /// SD.
    Bt601,
    /// HD (the default for streams that do not say).
    #[default]
    Bt709,
}

/// Sample value range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum YuvRange {
    /// Y in 16..=235, UV in 16..=240 (video).
    #[default]
    Limited,
    /// 0..=255 (JPEG).
    Full,
}

/// How to turn samples into colours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ColorSpace {
    /// Matrix.
    pub matrix: MatrixCoefficients,
    /// Range.
    pub range: YuvRange,
}
