//! Distributed render end to end, on one machine over loopback: each test starts Debian's
//! `nats-server` (JetStream, a temporary store, a free port on 127.0.0.1), render nodes
//! (`framelock worker`) and a coordinator (`framelock render --nats`) as processes, and
//! compares the output with a local export of the same project, byte for byte. Every wait is
//! bounded; every process is killed when its test ends.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests and benches fail loudly"
)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn framelock() -> Command {
    Command::new(env!("CARGO_BIN_EXE_framelock"))
}

/// A nats-server with JetStream on 127.0.0.1.
struct Server {
    child: Option<Child>,
    port: u16,
    store: PathBuf,
    log: PathBuf,
}

impl Server {
    fn start(dir: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut s = Self {
            child: None,
            port,
            store: dir.join("store"),
            log: dir.join("nats.log"),
        };
        s.restart();
        s
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// (Re)starts the server on the same port and store.
    fn restart(&mut self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log");
        let child = Command::new(nats_server())
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.store)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("nats-server (Debian's package; tools/install-deps.sh installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (SIGTERM: a clean shutdown) and waits for it to exit.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            terminate(&c);
            let deadline = Instant::now() + Duration::from_secs(10);
            while c.try_wait().expect("wait").is_none() {
                if Instant::now() > deadline {
                    let _ = c.kill();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Debian's nats-server: on PATH, or in /usr/sbin (where the package puts it, and which a
/// user's PATH often leaves out).
fn nats_server() -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
        .expect("nats-server (Debian's package; tools/install-deps.sh installs it)")
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn terminate(c: &Child) {
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    unsafe {
        libc::kill(c.id() as i32, libc::SIGTERM);
    }
}

/// A `framelock worker` process, logging to a file; killed when dropped.
struct Node {
    child: Child,
    log: PathBuf,
}

impl Node {
    fn start(dir: &Path, url: &str, id: &str, args: &[&str], envs: &[(&str, &str)]) -> Self {
        let log = dir.join(format!("{id}.log"));
        let file = File::create(&log).expect("log");
        let child = framelock()
            .args(["worker", "--nats", url, "--id", id])
            .args(args)
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("worker");
        let node = Self { child, log };
        node.wait_for("ready", Duration::from_secs(30));
        node
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the node's log has a line with `what`.
    fn wait_for(&self, what: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.text().lines().any(|l| l.contains(what)) {
            assert!(
                Instant::now() < deadline,
                "no {what:?} from the node in {timeout:?}:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A 320x180 clip of 4 s with sound, and a project of all of it: 12 segments of 10 frames.
fn scene(dir: &Path, name: &str) -> PathBuf {
    let clip = dir.join(format!("{name}.mp4"));
    let out = framelock()
        .arg("gen-media")
        .arg(&clip)
        .args(["--size", "320x180", "--seconds", "4", "--audio"])
        .output()
        .expect("gen-media");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    project_of(dir, &clip)
}

fn project_of(dir: &Path, clip: &Path) -> PathBuf {
    let project = dir.join(format!(
        "{}.json",
        clip.file_stem().unwrap().to_string_lossy()
    ));
    let json = serde_json::json!({
        "version": 1,
        "frame_rate": {"num": 30, "den": 1},
        "width": 320,
        "height": 180,
        "tracks": [{"clips": [{"media": clip, "start": 0, "duration": 120}]}]
    });
    std::fs::write(&project, json.to_string()).expect("write");
    project
}

const COMMON: [&str; 6] = [
    "--segment-frames",
    "10",
    "--cpu-effects",
    "--audio",
    "opus",
    "--json",
];

/// The local export of `project` (the reference).
fn local(project: &Path, out: &Path) -> Vec<u8> {
    let o = framelock()
        .arg("render")
        .arg(project)
        .arg("-o")
        .arg(out)
        .args(COMMON)
        .output()
        .expect("render");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::read(out).expect("read")
}

/// `framelock render --nats` (started; `finish` waits for it with a bound).
fn coordinator(project: &Path, out: &Path, url: &str, args: &[&str]) -> Child {
    framelock()
        .arg("render")
        .arg(project)
        .arg("-o")
        .arg(out)
        .args(COMMON)
        .args(["--nats", url])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("render")
}

fn finish(child: Child, timeout: Duration) -> Output {
    let deadline = Instant::now() + timeout;
    let mut child = child;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the coordinator did not finish in {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

fn report(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "coordinator failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the --json report")
}

/// Three nodes render a 12-segment project: the file is byte-identical to the local export,
/// every segment came from one of them, and the report lists them with their shares.
#[test]
fn three_nodes_render_the_same_bytes_as_a_local_export() {
    let dir = tempfile::tempdir().expect("tmp");
    let project = scene(dir.path(), "clip");
    let want = local(&project, &dir.path().join("local.mp4"));
    let server = Server::start(dir.path());
    let nodes: Vec<Node> = ["n1", "n2", "n3"]
        .iter()
        .map(|id| Node::start(dir.path(), &server.url(), id, &[], &[]))
        .collect();
    let out = dir.path().join("farm.mp4");
    let r = report(&finish(
        coordinator(&project, &out, &server.url(), &[]),
        Duration::from_secs(120),
    ));
    assert!(
        std::fs::read(&out).expect("read") == want,
        "the farm's file differs from the local export's"
    );
    assert_eq!(r["frames"], 120);
    assert_eq!(r["segments"], 12);
    let farm = &r["farm"];
    let shares = farm["nodes"].as_array().expect("nodes");
    assert_eq!(shares.len(), 3, "{farm}");
    let segments: u64 = shares.iter().map(|n| n["segments"].as_u64().unwrap()).sum();
    let frames: u64 = shares.iter().map(|n| n["frames"].as_u64().unwrap()).sum();
    assert_eq!((segments, frames), (12, 120), "{farm}");
    for n in shares {
        assert!(n["node"]["cores"].as_u64().unwrap() > 0);
        assert!(
            n["node"]["build"]
                .as_str()
                .unwrap()
                .starts_with("framelock ")
        );
    }
    assert!(farm["snapshot_stored"].as_u64().unwrap() > 0);
    assert!(farm["result_bytes"].as_u64().unwrap() > 0);
    assert!(
        r["audio"].as_str().unwrap().starts_with("opus"),
        "{}",
        r["audio"]
    );
    drop(nodes);
}

/// A node killed (SIGKILL) in the middle of a segment: the segment is redelivered after
/// `ack_wait` to another node, the job completes byte-identical, the report counts it.
#[test]
fn a_node_killed_mid_segment_is_redelivered_and_the_bytes_are_the_same() {
    let dir = tempfile::tempdir().expect("tmp");
    let project = scene(dir.path(), "clip");
    let want = local(&project, &dir.path().join("local.mp4"));
    let server = Server::start(dir.path());
    // 100 ms a frame: a segment takes a second, so the kill lands inside one.
    let mut victim = Node::start(
        dir.path(),
        &server.url(),
        "victim",
        &["--frame-delay-ms", "100"],
        &[],
    );
    let out = dir.path().join("farm.mp4");
    let job = coordinator(&project, &out, &server.url(), &["--ack-wait", "2"]);
    victim.wait_for("started", Duration::from_secs(30));
    victim.kill();
    let other = Node::start(dir.path(), &server.url(), "survivor", &[], &[]);
    let r = report(&finish(job, Duration::from_secs(120)));
    assert!(std::fs::read(&out).expect("read") == want, "output differs");
    assert!(
        r["farm"]["redeliveries"].as_u64().unwrap() >= 1,
        "{}",
        r["farm"]
    );
    drop(other);
}

/// A node stalled (SIGSTOP) mid-segment past `ack_wait`: the segment goes to another node;
/// when the stalled node wakes (SIGCONT) and delivers it late, the duplicate is dropped and
/// the bytes are the same.
#[test]
fn a_stalled_node_is_overtaken_and_its_late_result_is_dropped() {
    let dir = tempfile::tempdir().expect("tmp");
    let project = scene(dir.path(), "clip");
    let want = local(&project, &dir.path().join("local.mp4"));
    let server = Server::start(dir.path());
    let slow = ["--frame-delay-ms", "100"];
    let stalled = Node::start(dir.path(), &server.url(), "stalled", &slow, &[]);
    let out = dir.path().join("farm.mp4");
    let job = coordinator(&project, &out, &server.url(), &["--ack-wait", "2"]);
    stalled.wait_for("segment 0 started", Duration::from_secs(30));
    stalled.signal(libc::SIGSTOP);
    let other = Node::start(dir.path(), &server.url(), "other", &slow, &[]);
    other.wait_for("segment 0 started (delivery 2)", Duration::from_secs(30));
    stalled.signal(libc::SIGCONT);
    let r = report(&finish(job, Duration::from_secs(120)));
    assert!(std::fs::read(&out).expect("read") == want, "output differs");
    let farm = &r["farm"];
    assert!(farm["duplicates"].as_u64().unwrap() >= 1, "{farm}");
    drop(other);
}

/// The server stopped mid-job and started again on the same store: the job resumes and
/// completes byte-identical, or fails with a clear error and no output — never a corrupt file.
#[test]
fn a_server_restart_mid_job_resumes_or_fails_cleanly() {
    let dir = tempfile::tempdir().expect("tmp");
    let project = scene(dir.path(), "clip");
    let want = local(&project, &dir.path().join("local.mp4"));
    let mut server = Server::start(dir.path());
    let nodes: Vec<Node> = ["r1", "r2"]
        .iter()
        .map(|id| {
            Node::start(
                dir.path(),
                &server.url(),
                id,
                &["--frame-delay-ms", "30"],
                &[],
            )
        })
        .collect();
    let out = dir.path().join("farm.mp4");
    let job = coordinator(&project, &out, &server.url(), &["--ack-wait", "2"]);
    nodes[0].wait_for("done", Duration::from_secs(60));
    server.stop();
    std::thread::sleep(Duration::from_secs(1));
    server.restart();
    let o = finish(job, Duration::from_secs(120));
    if o.status.success() {
        assert!(std::fs::read(&out).expect("read") == want, "output differs");
    } else {
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("NATS") || err.contains("JetStream"), "{err}");
        assert!(!out.exists(), "a failed job left a file");
    }
    drop(nodes);
}

/// A segment no node can render (its source is truncated) fails the job after
/// `max_deliver` tries with the node's reason; no file is written.
#[test]
fn a_poison_segment_fails_the_job_after_max_deliver_with_the_reason() {
    let dir = tempfile::tempdir().expect("tmp");
    let good = dir.path().join("good.mp4");
    let out = framelock()
        .arg("gen-media")
        .arg(&good)
        .args(["--size", "320x180", "--seconds", "4"])
        .output()
        .expect("gen-media");
    assert!(out.status.success());
    let bytes = std::fs::read(&good).expect("read");
    let bad = dir.path().join("cut.mp4");
    std::fs::write(&bad, &bytes[..bytes.len() * 6 / 10]).expect("write");
    let project = project_of(dir.path(), &bad);
    let server = Server::start(dir.path());
    let node = Node::start(dir.path(), &server.url(), "n1", &[], &[]);
    let out = dir.path().join("farm.mp4");
    let o = finish(
        coordinator(
            &project,
            &out,
            &server.url(),
            &["--ack-wait", "2", "--max-deliver", "2"],
        ),
        Duration::from_secs(60),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("failed 2 times"), "{err}");
    assert!(
        err.contains("truncated") && err.contains("node n1"),
        "{err}"
    );
    assert!(!out.exists());
    assert!(node.text().contains("(last delivery)"), "{}", node.text());
}

/// A node of another build never gets this build's work: alone, the job fails after
/// discovery naming it as refused; beside a node of this build, the job completes and the
/// report lists it as refused.
#[test]
fn a_node_of_another_build_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let project = scene(dir.path(), "clip");
    let server = Server::start(dir.path());
    let old = Node::start(
        dir.path(),
        &server.url(),
        "old",
        &[],
        &[("FRAMELOCK_FARM_BUILD", "framelock 0.0.1 (other)")],
    );
    let out = dir.path().join("farm.mp4");
    let o = finish(
        coordinator(&project, &out, &server.url(), &["--discovery", "2"]),
        Duration::from_secs(60),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("no render node of build") && err.contains("refused: old"),
        "{err}"
    );
    assert!(!out.exists());
    let good = Node::start(dir.path(), &server.url(), "good", &[], &[]);
    let r = report(&finish(
        coordinator(&project, &out, &server.url(), &[]),
        Duration::from_secs(120),
    ));
    let refused = r["farm"]["refused"].as_array().expect("refused");
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["id"], "old");
    assert_eq!(r["farm"]["nodes"][0]["node"]["id"], "good");
    assert!(!old.text().contains("started"), "{}", old.text());
    drop(good);
}
