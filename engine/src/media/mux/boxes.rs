//! The `moov` boxes of one track: `trak` down to the sample tables and the sample entry
//! (`avc1`, `av01`, ProRes `apc*`, `Opus`, `mp4a`, `sowt`).

use super::{Chunk, Track, TrackCodec, TrackKind};
use crate::media::WriteError;

pub(super) fn trak(
    t: &Track,
    id: u32,
    chunks: &[&Chunk],
    offsets: &[u64],
    co64: bool,
    presented: u64,
) -> mp4_atom::Trak {
    use mp4_atom::*;
    let (width, height, volume) = match t.kind {
        TrackKind::Video { width, height } => (width, height, 0),
        TrackKind::Audio { .. } => (0, 0, 1),
    };
    let stbl = stbl(t, chunks, offsets, co64);
    let edts = (t.delay > 0 || t.presented.is_some()).then(|| Edts {
        elst: Some(Elst {
            entries: vec![ElstEntry {
                segment_duration: presented,
                media_time: Some(t.delay),
                media_rate: 1.into(),
            }],
        }),
    });
    let video = matches!(t.kind, TrackKind::Video { .. });
    Trak {
        tkhd: Tkhd {
            creation_time: 0,
            modification_time: 0,
            track_id: id,
            duration: presented,
            layer: 0,
            alternate_group: u16::from(!video),
            enabled: true,
            in_movie: true,
            size_is_aspect_ratio: false,
            volume: volume.into(),
            matrix: identity(),
            width: (width as u16).into(),
            height: (height as u16).into(),
        },
        edts,
        mdia: Mdia {
            mdhd: Mdhd {
                creation_time: 0,
                modification_time: 0,
                timescale: t.timescale,
                duration: t.media_duration(),
                language: "und".into(),
            },
            hdlr: Hdlr {
                handler: FourCC::new(if video { b"vide" } else { b"soun" }),
                name: if video {
                    "VideoHandler"
                } else {
                    "SoundHandler"
                }
                .into(),
            },
            minf: Minf {
                vmhd: video.then(Vmhd::default),
                smhd: (!video).then(Smhd::default),
                dinf: Dinf {
                    dref: Dref {
                        entries: vec![Url::default().into()],
                    },
                },
                stbl,
                ..Default::default()
            },
        },
        ..Default::default()
    }
}

fn stbl(t: &Track, chunks: &[&Chunk], offsets: &[u64], co64: bool) -> mp4_atom::Stbl {
    use mp4_atom::*;
    let pcm = t.is_pcm();
    // A PCM "sample" in the tables is one frame; a packet written is many.
    let frame_bytes = match t.kind {
        TrackKind::Audio { channels, .. } => u32::from(channels) * 2,
        TrackKind::Video { .. } => 0,
    };
    let mut stts: Vec<SttsEntry> = Vec::new();
    if pcm {
        stts.push(SttsEntry {
            sample_count: t.media_duration() as u32,
            sample_delta: 1,
        });
    } else {
        for s in &t.samples {
            match stts.last_mut() {
                Some(e) if e.sample_delta == s.duration => e.sample_count += 1,
                _ => stts.push(SttsEntry {
                    sample_count: 1,
                    sample_delta: s.duration,
                }),
            }
        }
    }
    let sizes: Vec<u32> = t.samples.iter().map(|s| s.size).collect();
    let stsz = if pcm {
        StszSamples::Identical {
            count: t.media_duration() as u32,
            size: frame_bytes,
        }
    } else if sizes.windows(2).all(|w| w[0] == w[1]) {
        StszSamples::Identical {
            count: sizes.len() as u32,
            size: sizes[0],
        }
    } else {
        StszSamples::Different { sizes }
    };
    let mut stsc: Vec<StscEntry> = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        let per_chunk = if pcm {
            t.samples[c.first..c.first + c.count]
                .iter()
                .map(|s| s.duration)
                .sum()
        } else {
            c.count as u32
        };
        if stsc.last().is_none_or(|e| e.samples_per_chunk != per_chunk) {
            stsc.push(StscEntry {
                first_chunk: i as u32 + 1,
                samples_per_chunk: per_chunk,
                sample_description_index: 1,
            });
        }
    }
    let stss = (!t.samples.iter().all(|s| s.sync)).then(|| Stss {
        entries: t
            .samples
            .iter()
            .enumerate()
            .filter(|(_, s)| s.sync)
            .map(|(i, _)| i as u32 + 1)
            .collect(),
    });
    Stbl {
        stsd: Stsd {
            codecs: vec![sample_entry(t)],
        },
        stts: Stts { entries: stts },
        stss,
        stsc: Stsc { entries: stsc },
        stsz: Stsz { samples: stsz },
        stco: (!co64).then(|| Stco {
            entries: offsets.iter().map(|&o| o as u32).collect(),
        }),
        co64: co64.then(|| Co64 {
            entries: offsets.to_vec(),
        }),
        ..Default::default()
    }
}

fn sample_entry(t: &Track) -> mp4_atom::Codec {
    use mp4_atom::*;
    let visual = |width: u32, height: u32, compressor: &str| Visual {
        data_reference_index: 1,
        width: width as u16,
        height: height as u16,
        horizresolution: 72.into(),
        vertresolution: 72.into(),
        frame_count: 1,
        compressor: compressor.into(),
        depth: 24,
    };
    let audio = |rate: u32, channels: u16| Audio {
        data_reference_index: 1,
        channel_count: channels,
        sample_size: 16,
        sample_rate: (rate as u16).into(),
    };
    let bt709 = Some(Colr::Nclx {
        colour_primaries: 1,
        transfer_characteristics: 1,
        matrix_coefficients: 1,
        full_range_flag: false,
    });
    match (&t.codec, t.kind) {
        (Some(TrackCodec::Avc { sps, pps }), TrackKind::Video { width, height }) => Avc1 {
            visual: visual(width, height, ""),
            avcc: avcc(sps, pps),
            btrt: None,
            colr: bt709,
            pasp: None,
            taic: None,
            fiel: None,
            spatial: Default::default(),
        }
        .into(),
        (Some(TrackCodec::Av1(c)), TrackKind::Video { width, height }) => Av01 {
            visual: visual(width, height, ""),
            av1c: Av1c {
                seq_profile: c.profile,
                seq_level_idx_0: c.level,
                seq_tier_0: c.tier,
                high_bitdepth: c.high_bitdepth,
                twelve_bit: false,
                monochrome: false,
                chroma_subsampling_x: c.subsampling.0,
                chroma_subsampling_y: c.subsampling.1,
                chroma_sample_position: 0,
                initial_presentation_delay: None,
                config_obus: c.config_obus.clone(),
            },
            btrt: None,
            ccst: None,
            colr: bt709,
            pasp: None,
            taic: None,
            spatial: None,
        }
        .into(),
        // mp4-atom has no ProRes entry. A ProRes entry is a plain VisualSampleEntry, which is
        // what its `jpeg` entry writes: that is written here and renamed by `name_entries`.
        (Some(TrackCodec::ProRes { fourcc }), TrackKind::Video { width, height }) => Jpeg {
            visual: visual(width, height, prores_name(*fourcc)),
            colr: bt709,
            ..Default::default()
        }
        .into(),
        (Some(TrackCodec::Opus { pre_skip }), TrackKind::Audio { rate, channels }) => Opus {
            audio: audio(rate, channels),
            dops: Dops {
                output_channel_count: channels as u8,
                pre_skip: *pre_skip,
                input_sample_rate: rate,
                output_gain: 0,
                channel_mapping: None,
            },
            btrt: None,
        }
        .into(),
        (Some(TrackCodec::Aac { config, bitrate }), TrackKind::Audio { rate, channels }) => {
            aac_entry(audio(rate, channels), config, *bitrate)
        }
        (_, TrackKind::Audio { rate, channels }) => Sowt {
            audio: audio(rate, channels),
            pcmc: None,
            chnl: None,
            btrt: None,
        }
        .into(),
        // Unreachable: finish refuses a track without a codec, set_codec a mismatched one.
        (_, TrackKind::Video { width, height }) => Avc1 {
            visual: visual(width, height, ""),
            avcc: avcc(&[], &[]),
            btrt: None,
            colr: None,
            pasp: None,
            taic: None,
            fiel: None,
            spatial: Default::default(),
        }
        .into(),
    }
}

/// The compressor name QuickTime shows for a ProRes sample entry code.
fn prores_name(fourcc: [u8; 4]) -> &'static str {
    match &fourcc {
        b"apco" => "Apple ProRes 422 Proxy",
        b"apcs" => "Apple ProRes 422 LT",
        b"apcn" => "Apple ProRes 422",
        b"apch" => "Apple ProRes 422 HQ",
        _ => "Apple ProRes",
    }
}

/// Gives the first sample entry of track `i` in the encoded `moov` the code `codes[i]`
/// where it is `Some` (ProRes, written by mp4-atom as `jpeg`). Renaming changes no size.
pub(super) fn name_entries(moov: &mut [u8], codes: &[Option<[u8; 4]>]) -> Result<(), WriteError> {
    if codes.iter().all(Option::is_none) {
        return Ok(());
    }
    let broken = |what: &str| WriteError::Mux(format!("renaming a sample entry: {what}"));
    let moov_body = child(moov, 0..moov.len(), b"moov").ok_or_else(|| broken("no moov"))?;
    let mut at = moov_body.start;
    let mut track = 0;
    while let Some((kind, body, end)) = box_at(moov, at, moov_body.end) {
        if kind == *b"trak" {
            if let Some(Some(code)) = codes.get(track) {
                let stsd = [b"mdia", b"minf", b"stbl", b"stsd"]
                    .iter()
                    .try_fold(body.clone(), |r, k| child(moov, r, k))
                    .ok_or_else(|| broken("no stsd"))?;
                // Full box (version, flags), entry count, then the first entry's header.
                let entry = stsd.start + 8;
                if moov.get(entry + 4..entry + 8) != Some(b"jpeg".as_slice()) {
                    return Err(broken("the entry is not the one written"));
                }
                moov[entry + 4..entry + 8].copy_from_slice(code);
            }
            track += 1;
        }
        at = end;
    }
    Ok(())
}

/// The box at `at` (before `limit`): its kind, body and end. Only 32-bit sizes (a moov the
/// muxer wrote).
fn box_at(buf: &[u8], at: usize, limit: usize) -> Option<([u8; 4], std::ops::Range<usize>, usize)> {
    let head = buf.get(at..at + 8)?;
    let size = u32::from_be_bytes(head[..4].try_into().ok()?) as usize;
    let end = at.checked_add(size)?;
    if size < 8 || end > limit {
        return None;
    }
    Some((head[4..8].try_into().ok()?, at + 8..end, end))
}

/// The body of the first `kind` box within `range`.
fn child(
    buf: &[u8],
    range: std::ops::Range<usize>,
    kind: &[u8; 4],
) -> Option<std::ops::Range<usize>> {
    let mut at = range.start;
    while let Some((k, body, end)) = box_at(buf, at, range.end) {
        if &k == kind {
            return Some(body);
        }
        at = end;
    }
    None
}

fn avcc(sps: &[u8], pps: &[u8]) -> mp4_atom::Avcc {
    mp4_atom::Avcc::new(sps, pps).unwrap_or_else(|_| mp4_atom::Avcc {
        configuration_version: 1,
        avc_profile_indication: sps.get(1).copied().unwrap_or(66),
        profile_compatibility: sps.get(2).copied().unwrap_or(0),
        avc_level_indication: sps.get(3).copied().unwrap_or(30),
        length_size: 4,
        sequence_parameter_sets: vec![sps.to_vec()],
        picture_parameter_sets: vec![pps.to_vec()],
        ext: None,
    })
}

fn aac_entry(audio: mp4_atom::Audio, config: &[u8], bitrate: u32) -> mp4_atom::Codec {
    use mp4_atom::*;
    // AudioSpecificConfig: 5 bits object type, 4 bits frequency index, 4 bits channels.
    let b0 = config.first().copied().unwrap_or(0x11);
    let b1 = config.get(1).copied().unwrap_or(0x90);
    Mp4a {
        audio,
        esds: Esds {
            es_desc: esds::EsDescriptor {
                es_id: 2,
                depends_on_es_id: None,
                url: None,
                ocr_es_id: None,
                stream_priority: 0,
                dec_config: esds::DecoderConfig {
                    object_type_indication: 0x40,
                    stream_type: 5,
                    up_stream: 0,
                    buffer_size_db: Default::default(),
                    max_bitrate: bitrate,
                    avg_bitrate: bitrate,
                    dec_specific: Some(esds::DecoderSpecific {
                        profile: b0 >> 3,
                        freq_index: ((b0 & 0x07) << 1) | (b1 >> 7),
                        chan_conf: (b1 >> 3) & 0x0f,
                        raw: config.to_vec(),
                    }),
                },
                sl_config: esds::SLConfig::default(),
            },
        },
        btrt: None,
        taic: None,
    }
    .into()
}

pub(super) fn identity() -> mp4_atom::Matrix {
    mp4_atom::Matrix {
        a: 0x1_0000,
        b: 0,
        u: 0,
        c: 0,
        d: 0x1_0000,
        v: 0,
        x: 0,
        y: 0,
        w: 0x4000_0000,
    }
}
