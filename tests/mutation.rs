//! Hostile input, mutated deterministically: truncations, byte flips (mostly in the boxes,
//! where parsing happens) and box-size edits of a generated clip. Each mutant is probed,
//! opened and decoded (first, middle and last frame) on a thread of its own under a time
//! limit: an error is fine, a panic, a hang or runaway memory is not. The seed is fixed, so a
//! failure names the mutant and reproduces (`FRAMELOCK_MUTATION_SEED` explores others).

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests and benches fail loudly"
)]

mod common;

use std::path::Path;
use std::time::Duration;

use std::sync::Arc;

use framelock::{DecoderRegistry, Mp4Demuxer, Rational, VideoReader, probe, probe_bytes};

/// Every mutant must be done within this (debug build, a loaded 2-core machine).
const LIMIT: Duration = Duration::from_secs(20);

/// xorshift64*: a fixed sequence from a fixed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Offsets of the size fields of every box under `moov` (walked through its containers) and
/// of the top-level boxes.
fn box_sizes(bytes: &[u8]) -> Vec<usize> {
    const CONTAINERS: [&[u8; 4]; 7] = [
        b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"udta",
    ];
    fn walk(bytes: &[u8], from: usize, end: usize, out: &mut Vec<usize>) {
        let mut at = from;
        while at + 8 <= end {
            let size = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            if size < 8 || at + size > end {
                return;
            }
            out.push(at);
            let kind = &bytes[at + 4..at + 8];
            if CONTAINERS.iter().any(|c| c.as_slice() == kind) {
                walk(bytes, at + 8, at + size, out);
            }
            at += size;
        }
    }
    let mut out = Vec::new();
    walk(bytes, 0, bytes.len(), &mut out);
    out
}

/// The `moov` box's range.
fn moov(bytes: &[u8]) -> std::ops::Range<usize> {
    let at = bytes
        .windows(4)
        .position(|w| w == b"moov")
        .expect("a moov box")
        - 4;
    let size = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    at..at + size
}

/// Probes, opens and decodes `path`, and its `bytes` through the in-memory entry point (the
/// fuzz targets'), which must say what the file's says; errors are fine.
fn exercise(path: &Path, bytes: Vec<u8>) {
    let registry = DecoderRegistry::new();
    let from_file = probe(path, &registry).map_err(|e| e.to_string());
    let bytes: Arc<[u8]> = bytes.into();
    let from_bytes = probe_bytes(bytes.clone(), path, &registry).map_err(|e| e.to_string());
    assert_eq!(from_file, from_bytes, "the file and its bytes probe alike");
    let mut reader = VideoReader::open(path, &registry).ok();
    let mut in_memory = Mp4Demuxer::from_bytes(bytes, path)
        .ok()
        .and_then(|d| VideoReader::from_demuxer(Arc::new(d), &registry).ok());
    assert_eq!(reader.is_some(), in_memory.is_some(), "open alike");
    if let (Some(reader), Some(in_memory)) = (reader.as_mut(), in_memory.as_mut()) {
        let n = reader.frame_count();
        for f in [0, n / 2, n.saturating_sub(1)] {
            let a = reader.frame(f).map(|p| p.planes);
            let b = in_memory.frame(f).map(|p| p.planes);
            assert_eq!(a.is_ok(), b.is_ok(), "frame {f} decodes alike");
            if let (Ok(a), Ok(b)) = (a, b) {
                assert!(a == b, "frame {f}: the same picture");
            }
        }
    }
}

/// Peak resident memory of this process so far (kB), from `/proc`.
fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn mutated_files_never_panic_hang_or_run_away_with_memory() {
    let clip = common::clip("mutation.mp4", 160, 90, Rational::integer(30), 20, 5);
    let good = std::fs::read(&clip).expect("read");
    let sizes = box_sizes(&good);
    let header = moov(&good);
    assert!(
        sizes.len() > 15,
        "the walk found the boxes: {}",
        sizes.len()
    );
    let dir = tempfile::tempdir().expect("tmp");
    // Another seed explores further: FRAMELOCK_MUTATION_SEED=<u64>.
    let seed = std::env::var("FRAMELOCK_MUTATION_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_f00d_dead_beef_u64);
    let mut rng = Rng(seed.max(1));
    let mut mutants: Vec<(String, Vec<u8>)> = Vec::new();
    for _ in 0..40 {
        let cut = rng.below(good.len());
        mutants.push((format!("truncated at {cut}"), good[..cut].to_vec()));
    }
    for _ in 0..80 {
        let mut b = good.clone();
        // Three in four in the boxes, the rest anywhere.
        let at = if rng.below(4) > 0 {
            header.start + rng.below(header.len())
        } else {
            rng.below(b.len())
        };
        let bit = 1u8 << rng.below(8);
        b[at] ^= bit;
        mutants.push((format!("bit {bit:#04x} flipped at {at}"), b));
    }
    for _ in 0..80 {
        let mut b = good.clone();
        let at = sizes[rng.below(sizes.len())];
        let old = u32::from_be_bytes(b[at..at + 4].try_into().unwrap());
        let new = match rng.below(7) {
            0 => 0,
            1 => 1,
            2 => 7,
            3 => old.wrapping_add(1),
            4 => old.wrapping_sub(1),
            5 => u32::MAX,
            _ => rng.next() as u32,
        };
        b[at..at + 4].copy_from_slice(&new.to_be_bytes());
        mutants.push((format!("box size at {at}: {old} -> {new}"), b));
    }
    let rss_before = peak_rss_kb();
    for (i, (what, bytes)) in mutants.into_iter().enumerate() {
        let path = dir.path().join(format!("m{i}.mp4"));
        std::fs::write(&path, &bytes).expect("write");
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let p = path.clone();
        let worker = std::thread::spawn(move || {
            exercise(&p, bytes);
            let _ = tx.send(());
        });
        match rx.recv_timeout(LIMIT) {
            Ok(()) => {}
            Err(_) if worker.is_finished() => {
                let panic = worker
                    .join()
                    .expect_err("finished without sending: a panic");
                let text = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
                    .unwrap_or_default();
                panic!("mutant {i} ({what}) panicked: {text}");
            }
            Err(_) => panic!("mutant {i} ({what}) still running after {LIMIT:?}: a hang"),
        }
        let _ = worker.join();
        let _ = std::fs::remove_file(&path);
    }
    let grew_mb = peak_rss_kb().saturating_sub(rss_before) / 1024;
    assert!(
        grew_mb < 1024,
        "peak memory grew {grew_mb} MiB over 200 mutants of a 160x90 clip"
    );
}
