#![allow(
    clippy::unwrap_used,
    missing_docs,
    clippy::print_stdout,
    reason = "scratch"
)]
use framelock_components::Effect;
use framelock_engine::effects::fast::point::PointChain;
use framelock_engine::effects::samples;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(33);
    let effects = samples::hundred();
    // chains: split at non-grades
    let mut chains: Vec<PointChain> = vec![PointChain::default()];
    for e in &effects {
        if PointChain::takes(e) {
            chains.last_mut().unwrap().push(e);
        } else {
            chains.push(PointChain::default());
        }
    }
    let step = 65535.0 / (n - 1) as f64;
    for (ci, chain) in chains.iter().enumerate() {
        if chain.is_empty() {
            continue;
        }
        let mut nodes = Vec::with_capacity(n * n * n * 4);
        for b in 0..n {
            for g in 0..n {
                for r in 0..n {
                    for v in [r, g, b] {
                        nodes.push((v as f64 * step).round() as u16);
                    }
                    nodes.push(65535);
                }
            }
        }
        chain.apply(&mut nodes);
        let node =
            |r: usize, g: usize, b: usize, c: usize| nodes[((b * n + g) * n + r) * 4 + c] as f64;
        // random pixels
        let mut s: u64 = 12345;
        let mut rnd = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 48) as u16
        };
        let m = 400_000;
        let mut px: Vec<u16> = (0..m * 4)
            .map(|i| if i % 4 == 3 { 65535 } else { rnd() })
            .collect();
        let orig = px.clone();
        chain.apply(&mut px);
        let mut hist = [0usize; 8];
        let mut maxe = 0.0f64;
        for p in 0..m {
            let x = [
                orig[p * 4] as f64 / step,
                orig[p * 4 + 1] as f64 / step,
                orig[p * 4 + 2] as f64 / step,
            ];
            let i = x.map(|v| (v.floor() as usize).min(n - 2));
            let f = [x[0] - i[0] as f64, x[1] - i[1] as f64, x[2] - i[2] as f64];
            // tetrahedral
            let (r0, g0, b0) = (i[0], i[1], i[2]);
            for c in 0..3 {
                let v000 = node(r0, g0, b0, c);
                let v111 = node(r0 + 1, g0 + 1, b0 + 1, c);
                let (fr, fg, fb) = (f[0], f[1], f[2]);
                let v = if fr >= fg && fg >= fb {
                    v000 + fr * (node(r0 + 1, g0, b0, c) - v000)
                        + fg * (node(r0 + 1, g0 + 1, b0, c) - node(r0 + 1, g0, b0, c))
                        + fb * (v111 - node(r0 + 1, g0 + 1, b0, c))
                } else if fr >= fb && fb >= fg {
                    v000 + fr * (node(r0 + 1, g0, b0, c) - v000)
                        + fb * (node(r0 + 1, g0, b0 + 1, c) - node(r0 + 1, g0, b0, c))
                        + fg * (v111 - node(r0 + 1, g0, b0 + 1, c))
                } else if fb >= fr && fr >= fg {
                    v000 + fb * (node(r0, g0, b0 + 1, c) - v000)
                        + fr * (node(r0 + 1, g0, b0 + 1, c) - node(r0, g0, b0 + 1, c))
                        + fg * (v111 - node(r0 + 1, g0, b0 + 1, c))
                } else if fg >= fr && fr >= fb {
                    v000 + fg * (node(r0, g0 + 1, b0, c) - v000)
                        + fr * (node(r0 + 1, g0 + 1, b0, c) - node(r0, g0 + 1, b0, c))
                        + fb * (v111 - node(r0 + 1, g0 + 1, b0, c))
                } else if fg >= fb && fb >= fr {
                    v000 + fg * (node(r0, g0 + 1, b0, c) - v000)
                        + fb * (node(r0, g0 + 1, b0 + 1, c) - node(r0, g0 + 1, b0, c))
                        + fr * (v111 - node(r0, g0 + 1, b0 + 1, c))
                } else {
                    v000 + fb * (node(r0, g0, b0 + 1, c) - v000)
                        + fg * (node(r0, g0 + 1, b0 + 1, c) - node(r0, g0, b0 + 1, c))
                        + fr * (v111 - node(r0, g0 + 1, b0 + 1, c))
                };
                let e = (v - px[p * 4 + c] as f64).abs() / 257.0; // in 1/255 units
                maxe = maxe.max(e);
                let k = ((e * 4.0) as usize).min(7);
                hist[k] += 1;
            }
        }
        println!("chain {ci}: max err {maxe:.3}/255, hist (quarter-steps) {hist:?}");
    }
    let _ = Effect::Blur { radius: 1 };
}
