//! Shared helpers for the integration tests: generated media, and Debian's `ffmpeg` as an
//! independent encoder and decoder.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use framelock::{
    ClipDef, EffectStack, GenerateOptions, Picture, Rational, generate_test_clip, testcard,
};

/// A temporary directory shared by the tests of one binary; each binary gets its own.
///
/// A `static` is never dropped, so a `TempDir` kept in one would outlive the process and leave
/// its media behind (about 150 MB per run of the test command, which filled a CI disk). The
/// directory is removed by an `atexit` handler instead: the test harness returns from `main`
/// once every test has finished (a failed test included), and the C runtime runs the handler
/// then. A process killed by a signal still leaves it behind; nothing in the tests needs that.
pub fn media_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    extern "C" fn remove_media_dir() {
        if let Some(dir) = DIR.get() {
            // Best effort: the process is exiting and has nobody left to tell.
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    DIR.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("framelock-test-media-")
            .tempdir()
            .expect("temp dir")
            .keep();
        // SAFETY: `atexit` only records the handler, a plain `extern "C" fn` with no captures
        // that touches nothing but the `OnceLock`, which is set before the process can exit.
        let registered = unsafe { libc::atexit(remove_media_dir) };
        assert_eq!(
            registered, 0,
            "atexit refused the media-dir cleanup handler"
        );
        dir
    })
}

/// `media_dir()/name`, made once per binary by `make` (tests run in parallel: one makes it,
/// the others wait).
pub fn cached(name: &str, make: impl FnOnce(&Path)) -> PathBuf {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let path = media_dir().join(name);
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if !path.exists() {
        make(&path);
    }
    path
}

/// Generates (once per binary) a framelock test clip.
pub fn clip(name: &str, width: u32, height: u32, fps: Rational, frames: u64, gop: u32) -> PathBuf {
    cached(name, |path| {
        let mut o = GenerateOptions::new(width, height, fps, 1.0);
        o.frames = frames;
        o.gop = gop;
        generate_test_clip(path, &o, |_, _| {}).expect("generate test clip");
    })
}

/// Panics with a clear message when `ffmpeg` is not installed (`.ci/run` installs it).
pub fn ffmpeg() -> Command {
    static CHECK: OnceLock<()> = OnceLock::new();
    CHECK.get_or_init(|| {
        let ok = Command::new("ffmpeg")
            .arg("-version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "these tests need Debian's ffmpeg: apt-get install ffmpeg (see .ci/run)"
        );
    });
    let mut c = Command::new("ffmpeg");
    c.args(["-v", "error", "-nostdin", "-y"]);
    c
}

/// Runs a command, panicking with its stderr on failure.
pub fn run(mut c: Command) -> Vec<u8> {
    let out = c.output().expect("spawn");
    assert!(
        out.status.success(),
        "{c:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Encodes `frames` test-card pictures with ffmpeg (`encoder_args`, e.g. libx264 with
/// B-frames) into `path`: media an independent encoder made, still carrying frame indices.
pub fn ffmpeg_testcard(path: &Path, width: u32, height: u32, frames: u64, encoder_args: &[&str]) {
    let mut c = ffmpeg();
    c.args(["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s"])
        .arg(format!("{width}x{height}"))
        .args(["-r", "30", "-i", "-"])
        .args(encoder_args)
        .arg(path)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn ffmpeg");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        let mut f = Picture::black(width, height);
        for i in 0..frames {
            let [y, u, v] = &mut f.planes;
            testcard::draw_i420(i, width, height, y, u, v);
            stdin.write_all(&f.to_raw()).expect("write to ffmpeg");
        }
    }
    let out = child.wait_with_output().expect("ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg encode failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes a clip from ffmpeg's own `testsrc2` source.
pub fn ffmpeg_testsrc(path: &Path, size: &str, seconds: f64, args: &[&str]) {
    let mut c = ffmpeg();
    c.args(["-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={size}:rate=30:duration={seconds}"))
        .args(args)
        .arg(path);
    run(c);
}

/// Decodes `path` with ffmpeg to raw planar frames of `pix_fmt`, one per coded frame.
pub fn ffmpeg_decode_raw(path: &Path, pix_fmt: &str) -> Vec<u8> {
    let mut c = ffmpeg();
    c.arg("-i").arg(path).args([
        "-map",
        "0:v:0",
        "-fps_mode",
        "passthrough",
        "-f",
        "rawvideo",
        "-pix_fmt",
        pix_fmt,
        "-",
    ]);
    run(c)
}

/// `path` decoded by ffmpeg to `pix_fmt`, into pictures shaped like `first` (its size and
/// planes), one per coded frame.
pub fn ffmpeg_frames_like(path: &Path, pix_fmt: &str, first: &Picture) -> Vec<Picture> {
    let raw = ffmpeg_decode_raw(path, pix_fmt);
    let size = first.size_bytes();
    assert_eq!(raw.len() % size, 0, "raw output is not whole frames");
    raw.chunks_exact(size)
        .map(|chunk| {
            let mut f = first.clone();
            let mut off = 0;
            for p in &mut f.planes {
                let n = p.len();
                p.copy_from_slice(&chunk[off..off + n]);
                off += n;
            }
            f
        })
        .collect()
}

/// Seeks to `t` and ticks, letting every worker finish between ticks, until a picture is
/// presented (decode, then render: a picture made off the tick lands a tick or two later).
pub fn show(engine: &mut framelock::PlaybackEngine, t: u64) {
    let wait = std::time::Duration::from_secs(120);
    // The exact frame: a seek may first show the nearest decoded one (`approximate`).
    let exact = |e: &framelock::PlaybackEngine| {
        let m = e.metrics();
        m.presented - m.approximate
    };
    engine.seek_frame(t);
    let before = exact(engine);
    for _ in 0..8 {
        engine.tick();
        if exact(engine) > before {
            return;
        }
        assert!(engine.wait_idle(wait), "workers did not finish");
    }
    panic!("frame {t} was never shown");
}

/// A clip of `media` at timeline frames `start..start + duration`, from source frame
/// `source_in`, with `effects`.
pub fn clip_def(
    media: &Path,
    start: u64,
    duration: u64,
    source_in: u64,
    effects: EffectStack,
) -> ClipDef {
    ClipDef {
        media: media.to_path_buf(),
        start,
        duration,
        source_in,
        enabled: true,
        effects,
        audio: Default::default(),
    }
}

/// ffprobe's JSON for `path` with `args` (`-show_streams`, `-show_entries …`).
pub fn ffprobe_json(path: &Path, args: &[&str]) -> serde_json::Value {
    let mut c = Command::new("ffprobe");
    c.args(["-v", "error"])
        .args(args)
        .args(["-of", "json"])
        .arg(path);
    serde_json::from_slice(&run(c)).expect("ffprobe json")
}

/// A decoder double: openh264 with `hook` run before each packet (`true` for a sync sample)
/// — a test's gate or permits, to make decoding as slow as the test wants.
pub struct HookedBackend {
    name: &'static str,
    hook: std::sync::Arc<dyn Fn(bool) + Send + Sync>,
}

impl HookedBackend {
    /// A backend called `name` whose decoders run `hook` before each packet.
    pub fn new(name: &'static str, hook: impl Fn(bool) + Send + Sync + 'static) -> Self {
        Self {
            name,
            hook: std::sync::Arc::new(hook),
        }
    }
}

struct HookedDecoder {
    name: &'static str,
    inner: Box<dyn framelock::Decoder>,
    hook: std::sync::Arc<dyn Fn(bool) + Send + Sync>,
}

impl framelock::DecoderBackend for HookedBackend {
    fn name(&self) -> &'static str {
        self.name
    }
    fn codecs(&self) -> Option<&'static [framelock::Codec]> {
        Some(&[framelock::Codec::H264])
    }
    fn support(&self, s: &framelock::StreamDescription) -> framelock::Support {
        framelock::OpenH264Backend.support(s)
    }
    fn create(
        &self,
        s: &framelock::StreamDescription,
    ) -> Result<Box<dyn framelock::Decoder>, framelock::MediaError> {
        Ok(Box::new(HookedDecoder {
            name: self.name,
            inner: framelock::OpenH264Backend.create(s)?,
            hook: self.hook.clone(),
        }))
    }
}

impl framelock::Decoder for HookedDecoder {
    fn backend(&self) -> &'static str {
        self.name
    }
    fn decode(
        &mut self,
        p: framelock::Packet<'_>,
        out: &mut Vec<framelock::DecodedPicture>,
    ) -> Result<(), framelock::MediaError> {
        (self.hook)(p.is_sync);
        self.inner.decode(p, out)
    }
    fn flush(
        &mut self,
        out: &mut Vec<framelock::DecodedPicture>,
    ) -> Result<(), framelock::MediaError> {
        self.inner.flush(out)
    }
    fn reset(&mut self) -> Result<(), framelock::MediaError> {
        self.inner.reset()
    }
    fn set_frame_pool(&mut self, pool: framelock::BufferPool) {
        self.inner.set_frame_pool(pool);
    }
}

/// Proxies made on request only (not at open): all-intra H.264 at `height`, in `dir`, by one
/// openh264 worker.
pub fn intra_proxies(dir: &Path, height: u32) -> framelock::ProxyOptions {
    let mut proxies = framelock::ProxyOptions::with_manager(framelock::ProxyManager::new(
        framelock::ProxyManagerOptions {
            dir: dir.to_path_buf(),
            workers: 1,
            threads_per_job: 1,
            registry: framelock::DecoderRegistry::openh264_only(),
            paused: false,
        },
    ));
    proxies.auto_generate = false;
    proxies.strategy.generation.resolutions = vec![height];
    proxies.strategy.generation.codec = framelock::ProxyCodec::H264Intra;
    proxies
}

/// Ticks `engine` (letting its workers finish between ticks) until `events` brings a
/// `ProxyReady` (at most 60 s), then once more, idle: the proxy is usable.
pub fn tick_until_proxy_ready(
    engine: &mut framelock::PlaybackEngine,
    events: &crossbeam_channel::Receiver<framelock::EngineEvent>,
) {
    let wait = std::time::Duration::from_secs(10);
    let start = std::time::Instant::now();
    while !events
        .try_iter()
        .any(|e| matches!(e, framelock::EngineEvent::ProxyReady { .. }))
    {
        assert!(start.elapsed() < wait * 6, "the proxy was not made");
        engine.tick();
        assert!(engine.wait_idle(wait));
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    engine.tick();
    assert!(engine.wait_idle(wait));
}
