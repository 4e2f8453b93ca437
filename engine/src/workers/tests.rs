//! The decode pool's tests: thread priority, the result channel, decoders in the budget.

mod priority {
    #[test]
    fn background_threads_run_nicer_than_the_caller() {
        let nice = std::thread::spawn(super::super::lower_thread_priority)
            .join()
            .ok()
            .flatten();
        if cfg!(target_os = "linux") {
            assert_eq!(nice, Some(10));
            // The caller's thread is untouched.
            let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
            let after_comm = stat.rsplit(')').next().unwrap_or("");
            let nice_field = after_comm.split_whitespace().nth(16);
            assert_eq!(nice_field, Some("0"));
        }
    }
}

mod decode {
    use super::super::*;
    use crate::media::{GenerateOptions, VideoReader, generate_test_clip};
    use crate::memory::PoolClass;
    use framelock_components::Rational;

    /// Jobs submitted as fast as the pool takes them, with nobody collecting: the pool takes
    /// no more than its result channel holds, so every job finishes and the pool goes idle.
    #[test]
    fn uncollected_results_never_stall_the_workers() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("tiny.mp4");
        let options = GenerateOptions::new(64, 36, Rational::integer(30), 2.0);
        generate_test_clip(&path, &options, |_, _| {})?;
        let pool = DecodePool::with_skip_cache(1, DecoderRegistry::openh264_only(), 1, 0);
        let path = Arc::new(path);
        let job = |frame| DecodeJob {
            asset_id: 1,
            path: path.clone(),
            frame,
            generation: 0,
            lane: 0,
            cache_key: None,
        };
        // 1 worker × 1 queued × 2 + 8: the result channel holds 10.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut taken = 0;
        while taken < 10 {
            assert!(Instant::now() < deadline, "{taken} jobs taken");
            match pool.try_submit(job(taken)) {
                Ok(()) => taken += 1,
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
        }
        assert!(
            pool.wait_idle(Duration::from_secs(20)),
            "the workers finished"
        );
        assert!(
            pool.try_submit(job(10)).is_err(),
            "no room for an eleventh result: refused"
        );
        assert_eq!(pool.try_collect().count(), 10);
        assert!(pool.try_submit(job(10)).is_ok(), "collected: room again");
        assert!(pool.wait_idle(Duration::from_secs(20)));
        Ok(())
    }

    /// Decoders count in the pool's budget; with room for one, a worker alternating two
    /// assets closes one asset's decoder before opening the other's, and with room for
    /// both keeps both. By asset, each asset's jobs stay on one worker whatever their lane.
    #[test]
    fn decoders_are_counted_and_kept_within_the_room() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = Arc::new(dir.path().join("small.mp4"));
        generate_test_clip(
            path.as_ref(),
            &GenerateOptions::new(320, 180, Rational::integer(30), 1.0),
            |_, _| {},
        )?;
        let one = VideoReader::open(path.as_ref(), &DecoderRegistry::openh264_only())?;
        let each = one.state_bytes();
        assert!(each > 320 * 180 * 3, "{each} bytes");
        let run = |room: usize, by_asset: bool, workers: usize, expected: usize| {
            let (memory, pool) = budgeted(workers, room, by_asset, expected);
            // Counted before any decoder opens: the expected ones.
            let counted = memory.stats().class(PoolClass::Decoders).in_use_bytes;
            assert_eq!(counted, expected);
            let mut peak = 0;
            for frame in 0..6 {
                for asset_id in [1, 2] {
                    let job = DecodeJob {
                        asset_id,
                        path: path.clone(),
                        frame,
                        generation: 0,
                        lane: frame,
                        cache_key: None,
                    };
                    assert!(pool.try_submit(job).is_ok());
                    assert!(pool.wait_idle(Duration::from_secs(20)));
                    for done in pool.try_collect() {
                        assert_eq!(done.result.as_ref().map(|p| p.index).ok(), Some(frame));
                    }
                    let decoders = memory.stats().class(PoolClass::Decoders).in_use_bytes;
                    peak = peak.max(decoders);
                }
            }
            let decoders = memory.stats().class(PoolClass::Decoders).in_use_bytes;
            drop(pool);
            let after = memory.stats().class(PoolClass::Decoders).in_use_bytes;
            (peak, decoders, after)
        };
        assert_eq!(
            run(each * 3 / 2, false, 1, 0),
            (each, each, 0),
            "room for one"
        );
        assert_eq!(
            run(each * 3, false, 1, 0),
            (2 * each, 2 * each, 0),
            "room for two"
        );
        // Two expected decoders are counted from the start; opening them uses up the
        // reservation instead of adding to it.
        assert_eq!(
            run(each * 3, false, 1, 2 * each),
            (2 * each, 2 * each, 0),
            "two expected"
        );
        // Two workers by lane: each worker opens a decoder per asset (lanes alternate).
        assert_eq!(run(1 << 30, false, 2, 0).1, 4 * each);
        // By asset: one decoder per asset, over both workers.
        assert_eq!(run(1 << 30, true, 2, 0).1, 2 * each);
        Ok(())
    }

    /// A pool of `workers` with room for one decoder of `path` and its frames, not two: the
    /// decoder's bytes, the buffer pool it is counted in, the pool.
    fn room_for_one(
        path: &std::path::Path,
        workers: usize,
    ) -> Result<(usize, BufferPool, DecodePool), Box<dyn std::error::Error>> {
        let each = VideoReader::open(path, &DecoderRegistry::openh264_only())?.state_bytes();
        let (memory, pool) = budgeted(workers, each * 3 / 2, false, 0);
        Ok((each, memory, pool))
    }

    /// A pool of `workers` whose decoders open within `room` bytes of a buffer pool of its
    /// own (returned with it).
    fn budgeted(
        workers: usize,
        room: usize,
        by_asset: bool,
        expected: usize,
    ) -> (BufferPool, DecodePool) {
        let memory = BufferPool::new(1 << 30);
        let pool = DecodePool::with_options(DecodePoolOptions {
            workers,
            registry: DecoderRegistry::openh264_only(),
            queue: 4,
            skip_cache_bytes: 0,
            pool: Some(memory.clone()),
            disk: None,
            progress: Progress::default(),
            decoder_room: Some(room),
            by_asset,
            decoders_expected: expected,
            clock: None,
        });
        (memory, pool)
    }

    /// Two workers, room for one decoder: a job whose decoder does not fit is answered
    /// `NoRoom` (not opened over the budget), the worker holding the other decoder closes
    /// it while idle, and the job asked again decodes. The decoders counted never pass the
    /// room.
    #[test]
    fn a_decoder_without_room_waits_for_the_other_worker_to_close_one()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = Arc::new(dir.path().join("small.mp4"));
        generate_test_clip(
            path.as_ref(),
            &GenerateOptions::new(320, 180, Rational::integer(30), 1.0),
            |_, _| {},
        )?;
        let (each, memory, pool) = room_for_one(&path, 2)?;
        let job = |asset_id, lane| DecodeJob {
            asset_id,
            path: path.clone(),
            frame: 0,
            generation: 0,
            lane,
            cache_key: None,
        };
        let decode = |asset_id, lane| {
            assert!(pool.try_submit(job(asset_id, lane)).is_ok());
            assert!(pool.wait_idle(Duration::from_secs(20)));
            let done: Vec<DecodeDone> = pool.try_collect().collect();
            assert_eq!(done.len(), 1);
            done.into_iter().next().map(|d| d.result)
        };
        let decoders = || memory.stats().class(PoolClass::Decoders).in_use_bytes;
        // Asset 1 on one worker; its frame holds no room once collected and dropped.
        assert!(matches!(decode(1, 0), Some(Ok(_))));
        assert_eq!(decoders(), each);
        // Asset 2 on the other worker: no room while asset 1's decoder is open.
        let lane = (1..64).find(|&l| pool.worker_for(&job(2, l)) != pool.worker_for(&job(1, 0)));
        let lane = lane.ok_or("a lane on the other worker")?;
        let first = decode(2, lane);
        assert!(
            matches!(first, Some(Err(MediaError::NoRoom { bytes, .. })) if bytes == each),
            "{first:?}"
        );
        assert_eq!(decoders(), each);
        // The idle worker closes asset 1's decoder for it (it looks every 20 ms).
        let deadline = Instant::now() + Duration::from_secs(5);
        while decoders() > 0 {
            assert!(Instant::now() < deadline, "asset 1's decoder stayed open");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(matches!(decode(2, lane), Some(Ok(_))));
        assert_eq!(decoders(), each);
        Ok(())
    }

    /// Two lanes of one asset (two layers of one file, the second behind the first) on one
    /// worker without room for a second decoder: the second lane opens its own over the room
    /// (counted) instead of seeking the first lane's decoder back each turn, and the lanes
    /// take turns on two decoders.
    #[test]
    fn two_busy_lanes_of_one_asset_get_a_decoder_each() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = Arc::new(dir.path().join("lanes.mp4"));
        let mut options = GenerateOptions::new(320, 180, Rational::integer(30), 2.0);
        options.gop = 30;
        generate_test_clip(path.as_ref(), &options, |_, _| {})?;
        let (each, memory, pool) = room_for_one(&path, 1)?;
        let decode = |frame, lane| {
            let job = DecodeJob {
                asset_id: 1,
                path: path.clone(),
                frame,
                generation: 0,
                lane,
                cache_key: None,
            };
            assert!(pool.try_submit(job).is_ok());
            assert!(pool.wait_idle(Duration::from_secs(20)));
            let done: Vec<DecodeDone> = pool.try_collect().collect();
            assert_eq!(done.len(), 1);
            done.into_iter().next().map(|d| d.result)
        };
        let decoders = || memory.stats().class(PoolClass::Decoders).in_use_bytes;
        assert!(matches!(decode(33, 0), Some(Ok(_))));
        assert!(matches!(decode(34, 0), Some(Ok(_))));
        // The other lane, behind the first one's decoder.
        let mut frames = Vec::new();
        for i in 0..4 {
            for (frame, lane) in [(3 + i, 1), (35 + i, 0)] {
                match decode(frame, lane) {
                    Some(Ok(p)) => frames.push(p.index),
                    other => return Err(format!("frame {frame}: {other:?}").into()),
                }
            }
        }
        assert_eq!(frames, [3, 35, 4, 36, 5, 37, 6, 38]);
        assert_eq!(decoders(), 2 * each, "a decoder per lane");
        Ok(())
    }
}

mod routing {
    use super::super::*;
    use crate::media::{GenerateOptions, generate_test_clip};
    use framelock_components::Rational;

    /// A new lane goes to the worker with the fewest jobs in flight (ties: by its number),
    /// and keeps that worker afterwards, so a GOP's frames continue one decoder.
    #[test]
    fn a_new_lane_goes_to_the_least_busy_worker_and_stays_there() {
        let pool = DecodePool::new(2, DecoderRegistry::openh264_only(), 4);
        assert_eq!(pool.lane_worker(4), 0, "a tie goes by number");
        assert_eq!(pool.lane_worker(5), 1, "a tie goes by number");
        // Worker 0 busy: lane 6 (number 0) goes to worker 1, and stays there.
        pool.worker_in_flight[0].add();
        assert_eq!(pool.busy_workers(), 1);
        assert_eq!(pool.lane_worker(6), 1);
        pool.worker_in_flight[0].done();
        assert_eq!(pool.busy_workers(), 0);
        assert_eq!(pool.lane_worker(6), 1, "a lane keeps its worker");
        assert_eq!(pool.lane_worker(4), 0);
    }

    /// A withdrawn job is dropped undecoded: no result, counted as stale, the pool idle.
    #[test]
    fn a_withdrawn_job_is_dropped_undecoded() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("tiny.mp4");
        let options = GenerateOptions::new(64, 36, Rational::integer(30), 1.0);
        generate_test_clip(&path, &options, |_, _| {})?;
        let pool = DecodePool::new(1, DecoderRegistry::openh264_only(), 4);
        let job = |frame| DecodeJob {
            asset_id: 7,
            path: Arc::new(path.clone()),
            frame,
            generation: 0,
            lane: 0,
            cache_key: None,
        };
        pool.withdraw(7, 3, 0);
        for frame in [2, 3, 4] {
            assert!(pool.try_submit(job(frame)).is_ok());
        }
        assert!(
            pool.wait_idle(Duration::from_secs(20)),
            "the worker finished"
        );
        let mut got: Vec<u64> = pool.try_collect().map(|d| d.frame).collect();
        got.sort_unstable();
        assert_eq!(got, [2, 4], "frame 3 was withdrawn");
        assert_eq!(pool.dropped_stale(), 1);
        Ok(())
    }
}
