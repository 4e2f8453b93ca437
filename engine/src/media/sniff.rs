//! What a media file is, from its first bytes: MP4/MOV goes on to the demuxer, anything else
//! is named (Matroska, MPEG-TS, AVI, an image...) so the error says what the file is.

use std::io::{Read, Seek, SeekFrom};

/// Reads up to `buf.len()` bytes from the start of `file`.
pub(super) fn read_up_to(file: &mut (impl Read + Seek), buf: &mut [u8]) -> std::io::Result<usize> {
    file.seek(SeekFrom::Start(0))?;
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Containers libavformat demuxes for framelock (feature `ffmpeg`), by the names
/// [`not_mp4`] gives them.
#[cfg_attr(
    not(feature = "ffmpeg"),
    allow(dead_code, reason = "used with libav only")
)]
pub(super) fn libavformat_reads(found: &str) -> bool {
    matches!(
        found,
        "Matroska/WebM"
            | "MPEG transport stream"
            | "AVI"
            | "MXF"
            | "MPEG program stream"
            | "FLV"
            | "Ogg"
    )
}

/// Why a file that is not MP4/MOV is refused (`from_bytes`: it came as bytes in memory,
/// which only the MP4 demuxer reads).
pub(super) fn refusal(found: &str, from_bytes: bool) -> String {
    let lavf = libavformat_reads(found);
    let how = if lavf && cfg!(feature = "ffmpeg") && from_bytes {
        "from a file, libavformat demuxes it; from bytes in memory framelock demuxes MP4 and \
         MOV only"
    } else if lavf {
        "framelock demuxes MP4 and MOV, and this container with the `ffmpeg` feature (libavformat)"
    } else {
        "framelock demuxes MP4 and MOV"
    };
    format!(
        "not an MP4/MOV (found {found}); {how}: remux it first (`ffmpeg -i IN -c copy OUT.mp4`)"
    )
}

/// What a file that is not an ISO base media file (MP4/MOV) is, from its first bytes:
/// `None` when it starts like one (a box with a known type), else the format recognised, or
/// "unrecognised data".
pub(super) fn not_mp4(head: &[u8]) -> Option<&'static str> {
    const BOXES: [&[u8; 4]; 16] = [
        b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"uuid", b"styp", b"sidx",
        b"junk", b"pdin", b"meta", b"moof", b"mfra", b"prfl",
    ];
    if head.len() >= 8 && BOXES.iter().any(|b| head[4..8] == b[..]) {
        return None;
    }
    let starts = |magic: &[u8]| head.starts_with(magic);
    Some(if starts(&[0x1A, 0x45, 0xDF, 0xA3]) {
        "Matroska/WebM"
    } else if head.len() > 188 && head[0] == 0x47 && head[188] == 0x47 {
        "MPEG transport stream"
    } else if starts(b"RIFF") && head.get(8..12) == Some(b"AVI ") {
        "AVI"
    } else if starts(b"RIFF") && head.get(8..12) == Some(b"WAVE") {
        "WAV audio"
    } else if starts(&[0x89, b'P', b'N', b'G']) {
        "a PNG image"
    } else if starts(&[0xFF, 0xD8, 0xFF]) {
        "a JPEG image"
    } else if starts(b"GIF8") {
        "a GIF image"
    } else if starts(b"OggS") {
        "Ogg"
    } else if starts(b"FLV") {
        "FLV"
    } else if starts(&[0x06, 0x0E, 0x2B, 0x34]) {
        "MXF"
    } else if starts(&[0, 0, 1, 0xBA]) {
        "MPEG program stream"
    } else if starts(&[0, 0, 0, 1]) || starts(&[0, 0, 1]) {
        "a raw H.264/H.265 elementary stream"
    } else if starts(b"ID3") || starts(b"fLaC") {
        "audio (MP3/FLAC)"
    } else if head.len() >= 8
        && head[4..8]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b' ')
    {
        // A box of a type not listed above: the parser decides.
        return None;
    } else {
        "unrecognised data"
    })
}

#[cfg(test)]
mod tests {
    use super::not_mp4;

    #[test]
    fn other_formats_are_named_and_mp4_boxes_pass() {
        let mut ts = vec![0u8; 400];
        ts[0] = 0x47;
        ts[188] = 0x47;
        let cases: [(&[u8], Option<&str>); 9] = [
            (b"\0\0\0\x20ftypisom\0\0\x02\0", None),
            (b"\0\0\0\x08wide\0\0\0\x10mdat", None),
            (b"\0\0\0\x10abcd\0\0\0\0", None),
            (
                &[0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x86, 0x81],
                Some("Matroska/WebM"),
            ),
            (&ts, Some("MPEG transport stream")),
            (b"RIFF\x02\x80\0\0AVI LIST", Some("AVI")),
            (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", Some("a PNG image")),
            (
                b"\0\0\0\x01\x67\x42\xc0\x0d",
                Some("a raw H.264/H.265 elementary stream"),
            ),
            (
                &[0xde, 0xad, 0xbe, 0xef, 0xff, 0x01, 0x02, 0x03],
                Some("unrecognised data"),
            ),
        ];
        for (head, want) in cases {
            assert_eq!(not_mp4(head), want, "{head:?}");
        }
    }
}
