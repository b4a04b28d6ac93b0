//! Faults with real processes: a Gatehouse restart under traffic, and manifests that break
//! while Envoy serves. Each asserts zero failed requests where the design promises it.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use support::http;
use support::standalone::{HOST, World};

/// Requests `/headers` through Envoy until stopped; (total, failures, first failures).
struct Load {
    stop: Arc<AtomicBool>,
    total: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<Vec<String>>,
}

impl Load {
    fn start(port: u16) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let total = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let (s, t, f) = (stop.clone(), total.clone(), failed.clone());
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !s.load(Ordering::Relaxed) {
                t.fetch_add(1, Ordering::Relaxed);
                match http::get(port, HOST, "/headers", &[]) {
                    Ok(r) if r.status == 200 => {}
                    other => {
                        f.fetch_add(1, Ordering::Relaxed);
                        if samples.len() < 5 {
                            samples.push(format!("{:?}", other.map(|r| r.status)));
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            samples
        });
        Load {
            stop,
            total,
            failed,
            thread,
        }
    }

    fn finish(self) -> (u64, u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let samples = self.thread.join().expect("load thread");
        (
            self.total.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            samples,
        )
    }
}

/// Versions of every dynamic resource Envoy holds, from its config dump.
fn envoy_versions(w: &World) -> Vec<String> {
    let dump = w
        .envoy_admin("/config_dump")
        .map(|r| r.body)
        .unwrap_or_default();
    let doc: serde_json::Value = serde_json::from_str(&dump).unwrap_or_default();
    let mut out = Vec::new();
    collect_versions(&doc, &mut out);
    out.sort();
    out
}

fn collect_versions(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                if k == "version_info" {
                    if let Some(s) = x.as_str() {
                        out.push(s.to_string());
                    }
                } else {
                    collect_versions(x, out);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_versions(x, out)),
        _ => {}
    }
}

#[test]
fn gatehouse_restart_under_traffic_loses_nothing() {
    let mut w = World::start(false);
    let before = envoy_versions(&w);
    assert!(!before.is_empty(), "no versions in Envoy's config dump");
    let load = Load::start(w.listener_port);
    std::thread::sleep(Duration::from_millis(300));
    w.restart_gatehouse();
    // Envoy reconnects on its own (ADS retry backoff) and is served the same snapshot.
    w.wait_until("Envoy reconnected", Duration::from_secs(30), |w| {
        w.metric("gatehouse_xds_connected_proxies") >= 1.0
    });
    std::thread::sleep(Duration::from_millis(500));
    let (total, failed, samples) = load.finish();
    assert!(total > 100, "only {total} requests");
    assert_eq!(
        failed,
        0,
        "{failed} of {total} requests failed across the restart: {samples:?}\n{}",
        w.logs()
    );
    assert_eq!(
        envoy_versions(&w),
        before,
        "Envoy's config versions changed across a restart"
    );
    // And it still follows changes after the restart.
    w.apply_step("01-gateway-policy.yaml");
    w.wait_for(
        "the gateway policy after the restart",
        |r| r.status == 403,
        &[],
    );
}

#[test]
fn broken_manifests_keep_the_last_good_config() {
    let w = World::start(false);
    let good = std::fs::read_to_string(w.manifests.join("httpbin.yaml")).expect("read");
    let load = Load::start(w.listener_port);
    // Half-written (cut mid-document), emptied, garbage: the file's last good objects stay.
    let cut = &good[..good.len() / 2];
    for (what, text) in [
        ("half written", cut),
        ("truncated to nothing", ""),
        ("garbage", "{{{{ not yaml: ["),
    ] {
        w.write_and_wait("httpbin.yaml", text);
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            w.metric("gatehouse_load_errors") >= 1.0,
            "{what}: the broken file is not reported as a load error"
        );
    }
    let (total, failed, samples) = load.finish();
    assert!(total > 100, "only {total} requests");
    assert_eq!(
        failed, 0,
        "{failed} of {total} requests failed while the file was broken: {samples:?}"
    );

    // The file replaced by a directory: the file is gone, so are its objects (the HTTPRoute
    // and its Service): the host answers 404, as for any deleted route.
    let before = w.builds();
    w.remove("httpbin.yaml");
    std::fs::create_dir(w.manifests.join("httpbin.yaml")).expect("mkdir");
    w.wait_until(
        "a build after the directory appeared",
        Duration::from_secs(10),
        |w| w.builds() > before,
    );
    w.wait_for(
        "404 while the route's manifest is a directory",
        |r| r.status == 404,
        &[],
    );
    std::fs::remove_dir(w.manifests.join("httpbin.yaml")).expect("rmdir");

    // Fixed: serving again, no load errors left.
    w.write_and_wait("httpbin.yaml", &good);
    w.wait_for("200 after the fix", |r| r.status == 200, &[]);
    w.wait_until("load errors cleared", Duration::from_secs(10), |w| {
        w.metric("gatehouse_load_errors") == 0.0
    });
}
