//! The thread-safe [`Player`] on the wall clock: frames arrive in order and show the right
//! pictures; a burst of 1000 scrubs ends on the last one; seeks are frame-exact.
//! (No timing is asserted: waits are bounded, results are exact.)

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests and benches fail loudly"
)]

mod common;

use std::sync::mpsc::{Receiver, sync_channel};
use std::time::{Duration, Instant};

use framelock::{
    ClipDef, DecoderRegistry, EngineOptions, Player, PresentedFrame, Project, Rational, TrackDef,
    testcard,
};

fn project() -> Project {
    let media = common::clip("player.mp4", 320, 180, Rational::integer(30), 120, 30);
    let mut p = Project::new(Rational::integer(30), 320, 180);
    p.tracks.push(TrackDef {
        name: "v1".into(),
        opacity: 1.0,
        clips: vec![ClipDef {
            media,
            start: 0,
            duration: 100,
            source_in: 20,
            enabled: true,
            effects: Default::default(),
            audio: Default::default(),
        }],
    });
    p
}

fn open() -> (Player, Receiver<PresentedFrame>) {
    let (tx, rx) = sync_channel(4096);
    let player = Player::open(
        &project(),
        EngineOptions {
            registry: DecoderRegistry::openh264_only(),
            workers: 2,
            ..EngineOptions::default()
        },
        move |f| {
            let _ = tx.try_send(f);
        },
    )
    .expect("open");
    (player, rx)
}

/// Waits (bounded) for a presented frame of timeline frame `t`.
fn wait_for(rx: &Receiver<PresentedFrame>, t: u64) -> PresentedFrame {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let f = rx.recv_timeout(left).expect("frame {t} never came");
        if f.timeline_frame == t && !f.repeated {
            return f;
        }
    }
}

#[test]
fn plays_in_order_with_the_right_pictures() {
    let (player, rx) = open();
    player.play();
    let last = wait_for(&rx, 99);
    assert_eq!(testcard::read_index(&last.picture), Some(119));
    player.pause();
    drop(player);
    let frames: Vec<PresentedFrame> = rx.try_iter().collect();
    let mut prev = None;
    for f in &frames {
        assert_eq!(
            testcard::read_index(&f.picture),
            Some(20 + f.timeline_frame)
        );
        if let Some(p) = prev {
            assert!(f.timeline_frame >= p, "frames go forward");
        }
        prev = Some(f.timeline_frame);
    }
}

#[test]
fn scrub_burst_ends_on_the_last_request_and_seek_is_exact() {
    let (player, rx) = open();
    for i in 0..1000u64 {
        player.scrub((i * 37 % 100) as f64 / 30.0);
    }
    player.scrub(42.5 / 30.0); // frame 42
    let f = wait_for(&rx, 42);
    assert_eq!(testcard::read_index(&f.picture), Some(62));
    player.seek(77.0 / 30.0);
    let f = wait_for(&rx, 77);
    assert_eq!(testcard::read_index(&f.picture), Some(97));
    let deadline = Instant::now() + Duration::from_secs(20);
    while player.metrics().decode_queue_depth > 0 {
        assert!(Instant::now() < deadline, "decode work left behind");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(player.playhead().expect("published").frame, 77);

    // a new sink receives the frames from then on
    let (tx2, rx2) = sync_channel(64);
    player.frame_sink(move |f| {
        let _ = tx2.try_send(f);
    });
    player.seek_frame(5);
    let f = wait_for(&rx2, 5);
    assert_eq!(testcard::read_index(&f.picture), Some(25));
}

/// `EngineOptions::puffin_server` serves the live profile while the player plays:
/// `puffin_viewer` connects to it (here a plain TCP client reads puffin_http's protocol
/// version, then frame data).
#[test]
fn the_player_serves_its_profile_to_puffin_viewer() {
    use std::io::Read;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let options = EngineOptions {
        puffin_server: Some(addr.clone()),
        ..EngineOptions::default()
    };
    let player = Player::open(&project(), options, |_| {}).expect("open");
    let mut client = std::net::TcpStream::connect(&addr).expect("connect to the puffin server");
    client
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    player.play();
    let mut header = [0u8; 2];
    client
        .read_exact(&mut header)
        .expect("a frame from the server");
    assert_eq!(
        u16::from_le_bytes(header),
        2,
        "puffin_http protocol version"
    );
    let mut more = [0u8; 64];
    let n = client.read(&mut more).expect("frame data");
    assert!(n > 0);
    // A second engine cannot take the same address: a clear error.
    let again = Player::open(
        &project(),
        EngineOptions {
            puffin_server: Some(addr.clone()),
            ..EngineOptions::default()
        },
        |_| {},
    );
    assert!(matches!(
        again,
        Err(framelock::PlayerError::ProfileServer { .. })
    ));
}
