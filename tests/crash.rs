//! Crash safety under `fsync always`: writers record every acknowledged
//! write; the server is killed with SIGKILL at random moments, again and
//! again, and restarted; every acknowledged write is there every time.

mod common;

use common::server::Braid;
use redis::Commands;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

const KILLS: usize = 20;
const WRITERS: usize = 3;

#[test]
fn every_acknowledged_write_survives_repeated_sigkill() {
    let mut b = Braid::start(&["--fsync", "always", "--snapshot-every-ops", "2000"]);
    // Per writer: keys acknowledged, and the counter's acknowledged increments.
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let incr_acked = Arc::new(AtomicU64::new(0));
    let incr_attempted = Arc::new(AtomicU64::new(0));
    let mut rng = fastrand::Rng::with_seed(7);
    for round in 0..KILLS {
        let stop = Arc::new(AtomicBool::new(false));
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            let url = b.url();
            let acked = acked.clone();
            let (ia, it) = (incr_acked.clone(), incr_attempted.clone());
            let stop = stop.clone();
            writers.push(thread::spawn(move || {
                let Ok(mut c) = redis::Client::open(url).and_then(|c| c.get_connection()) else {
                    return;
                };
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("r{round}:w{w}:{i}");
                    let val = format!("v{i}");
                    if c.set::<_, _, ()>(&key, &val).is_err() {
                        return;
                    }
                    acked.lock().unwrap().push((key, val));
                    it.fetch_add(1, Ordering::SeqCst);
                    if c.incr::<_, _, i64>("ctr", 1).is_err() {
                        return;
                    }
                    ia.fetch_add(1, Ordering::SeqCst);
                    i += 1;
                }
            }));
        }
        thread::sleep(Duration::from_millis(rng.u64(50..400)));
        b.kill9();
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            let _ = w.join();
        }
        b.restart();
        let mut c = b.conn();
        let acked = acked.lock().unwrap();
        for (k, v) in acked.iter() {
            let got: Option<String> = c.get(k).unwrap();
            assert_eq!(
                got.as_deref(),
                Some(v.as_str()),
                "round {round}: acknowledged {k} lost"
            );
        }
        let ctr: i64 = c.get::<_, Option<i64>>("ctr").unwrap().unwrap_or(0);
        let (lo, hi) = (
            incr_acked.load(Ordering::SeqCst),
            incr_attempted.load(Ordering::SeqCst),
        );
        assert!(
            ctr as u64 >= lo && ctr as u64 <= hi,
            "round {round}: counter {ctr} outside acknowledged {lo} ..= attempted {hi}"
        );
    }
    assert!(acked.lock().unwrap().len() > KILLS, "the writers did write");
}
