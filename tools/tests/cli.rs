//! The `framelock` binary end to end: gen-media (with audio), probe (text and JSON),
//! decode-bench --verify, and clear errors.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests and benches fail loudly"
)]

use std::process::Command;

fn framelock() -> Command {
    Command::new(env!("CARGO_BIN_EXE_framelock"))
}

#[test]
fn gen_media_with_audio_then_probe_and_bench() {
    let dir = tempfile::tempdir().expect("tmp");
    let clip = dir.path().join("clip.mp4");
    let out = framelock()
        .args(["gen-media"])
        .arg(&clip)
        .args([
            "--size",
            "320x180",
            "--fps",
            "25",
            "--seconds",
            "2",
            "--gop",
            "10",
            "--audio",
        ])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = framelock()
        .arg("probe")
        .arg(&clip)
        .arg("--json")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["video"]["codec"], "H264");
    assert_eq!(v["video"]["frame_count"], 50);
    assert_eq!(
        v["video"]["keyframes"],
        serde_json::json!([0, 10, 20, 30, 40])
    );
    assert_eq!(v["audio"]["codec"], "Aac");
    assert_eq!(v["audio"]["sample_rate"], 48000);
    assert_eq!(v["audio"]["channels"], 1);

    let out = framelock().arg("probe").arg(&clip).output().expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("320x180") && text.contains("decoder    openh264"),
        "{text}"
    );

    let out = framelock()
        .arg("decode-bench")
        .arg(&clip)
        .args(["--verify", "--json", "--backend", "openh264"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["frames"], 50);
    assert_eq!(v["wrong_frames"], 0);
    assert!(v["sequential_fps"].as_f64().expect("fps") > 0.0);
}

#[test]
fn errors_are_clear_and_exit_non_zero() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = framelock()
        .arg("probe")
        .arg(dir.path().join("missing.mp4"))
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no such file"), "{err}");

    let out = framelock()
        .args(["gen-media"])
        .arg(dir.path().join("x.mp4"))
        .args(["--size", "321x180", "--seconds", "1"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("even"));
    assert!(!dir.path().join("x.mp4").exists());
}
