//! Faults with real processes: a Gatehouse restart under traffic, and manifests that break
//! while Envoy serves. Each asserts zero failed requests where the design promises it.

use crate::support;

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

/// True when this process runs as root (uid 0), from /proc/self/status.
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// A manifest Gatehouse may not read is a load error, and never removes configuration: a file
/// replaced by an unreadable one keeps its last good objects. Root reads everything, so as root
/// Gatehouse runs as `nobody` (setpriv).
#[test]
fn unreadable_manifests_are_load_errors_and_keep_the_last_good_objects() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).expect("mkdir");
    for d in [dir.path(), manifests.as_path()] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    for file in ["gateway.yaml", "httpbin.yaml"] {
        let from = support::repo().join("examples/ext-auth/base").join(file);
        std::fs::copy(from, manifests.join(file)).expect("copy example");
    }
    let (xds, admin, debug) = (
        support::procs::free_port(),
        support::procs::free_port(),
        support::procs::free_port(),
    );
    let mut cmd = if running_as_root() {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(support::procs::gatehouse());
        c
    } else {
        std::process::Command::new(support::procs::gatehouse())
    };
    cmd.args(["standalone", "--manifests"])
        .arg(&manifests)
        .args(["--xds-address", &format!("127.0.0.1:{xds}")])
        .args(["--admin-address", &format!("127.0.0.1:{admin}")])
        .args(["--debug-address", &format!("127.0.0.1:{debug}")]);
    let gh = support::procs::Proc::spawn("gatehouse", cmd, dir.path());
    support::procs::wait_for_port(admin, Duration::from_secs(10), "gatehouse admin");
    let get = |path: &str| {
        let port = if path.starts_with("/debug/") {
            debug
        } else {
            admin
        };
        http::get(port, "localhost", path, &[])
            .map(|r| r.body)
            .unwrap_or_default()
    };
    let load_errors = || -> f64 {
        get("/metrics")
            .lines()
            .find_map(|l| l.strip_prefix("gatehouse_load_errors "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(-1.0)
    };
    let wait = |what: &str, check: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while !check() {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}\n{}",
                gh.tail(40)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let serves_route = || get("/debug/xds").contains("www.example.com");
    wait("the route served", &serves_route);
    assert_eq!(load_errors(), 0.0);

    // A new file nobody but root can read: a load error, nothing else changes.
    let unreadable = |path: &std::path::Path, text: &str| {
        std::fs::write(path, text).expect("write");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    };
    let tmp = dir.path().join("extra.yaml");
    unreadable(
        &tmp,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: extra}\n",
    );
    std::fs::rename(&tmp, manifests.join("extra.yaml")).expect("rename into place");
    wait("a load error for the unreadable file", &|| {
        load_errors() == 1.0
    });
    assert!(
        gh.tail(200).contains("Permission denied") || gh.tail(200).contains("permission denied"),
        "the log names the cause\n{}",
        gh.tail(40)
    );
    assert!(serves_route(), "an unrelated route stayed");

    // The route's own file replaced by an unreadable one: its objects stay.
    let good = std::fs::read_to_string(manifests.join("httpbin.yaml")).expect("read");
    let tmp = dir.path().join("httpbin.yaml");
    unreadable(
        &tmp,
        &good.replace("www.example.com", "changed.example.com"),
    );
    std::fs::rename(&tmp, manifests.join("httpbin.yaml")).expect("rename into place");
    wait("two load errors", &|| load_errors() == 2.0);
    assert!(serves_route(), "the route's last good objects stay");

    // Readable again: the new content is served and the errors clear.
    std::fs::set_permissions(
        manifests.join("httpbin.yaml"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    std::fs::remove_file(manifests.join("extra.yaml")).expect("remove");
    // chmod alone changes neither content nor mtime; touch the file so it is read again.
    std::fs::write(
        manifests.join("httpbin.yaml"),
        good.replace("www.example.com", "changed.example.com"),
    )
    .expect("rewrite");
    wait("errors cleared", &|| load_errors() == 0.0);
    wait("the rewritten route served", &|| {
        get("/debug/xds").contains("changed.example.com")
    });
}
