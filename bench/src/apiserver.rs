//! The tests' real kube-apiserver + etcd (tests/support/apiserver.rs, included as is: same
//! flags, certificates, token auth and CRD installation), and the API server's own request
//! counters from its `/metrics`.
//!
//! The included file panics where the tests want a failure (binaries missing, server not
//! ready): in the bench that is the loud failure it should be, never a skip.

use std::collections::BTreeMap;
use std::path::PathBuf;

#[path = "../../tests/support/apiserver.rs"]
mod support;

pub use support::ApiServer;

/// The repository root (the included file reads `scripts/`, `crds/` and `tests/testdata/`).
fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// What the included file expects of the tests' `procs` module, on the bench's [`Proc`].
mod procs {
    use std::ops::{Deref, DerefMut};
    use std::path::Path;
    use std::process::{Command, ExitStatus};
    use std::time::{Duration, Instant};

    pub struct Proc(crate::procs::Proc);

    impl Proc {
        pub fn spawn(name: &str, cmd: Command, dir: &Path) -> Proc {
            match crate::procs::Proc::spawn(name, cmd, dir) {
                Ok(p) => Proc(p),
                Err(e) => panic!("{e:#}"),
            }
        }

        pub fn tail(&self, _lines: usize) -> String {
            format!("--- {} ---\n{}\n", self.0.log.display(), self.0.tail())
        }

        pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
            let _ = Command::new("kill")
                .args(["-TERM", &self.0.pid().to_string()])
                .status();
            let deadline = Instant::now() + timeout;
            while Instant::now() < deadline {
                if let Ok(Some(status)) = self.0.child.try_wait() {
                    return Some(status);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            None
        }
    }

    impl Deref for Proc {
        type Target = crate::procs::Proc;
        fn deref(&self) -> &Self::Target {
            &self.0
        }
    }

    impl DerefMut for Proc {
        fn deref_mut(&mut self) -> &mut Self::Target {
            &mut self.0
        }
    }

    pub fn free_port() -> u16 {
        gatehouse::loopback::unused_port()
    }
}

/// Write verbs of `apiserver_request_total`.
const WRITE_VERBS: [&str; 5] = ["POST", "PUT", "PATCH", "DELETE", "APPLY"];

/// Write requests the API server has served so far, by `resource[/subresource]`.
pub async fn writes(client: &kube::Client) -> anyhow::Result<BTreeMap<String, u64>> {
    let req = http::Request::get("/metrics").body(Vec::new())?;
    let text = client.request_text(req).await?;
    Ok(parse_writes(&text))
}

fn parse_writes(text: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix("=\""))
                .map(|v| v.trim_end_matches('"'))
                .unwrap_or("")
        };
        if !WRITE_VERBS.contains(&label("verb")) {
            continue;
        }
        let key = match label("subresource") {
            "" => label("resource").to_string(),
            sub => format!("{}/{sub}", label("resource")),
        };
        let n = value.trim().parse::<f64>().unwrap_or(0.0) as u64;
        *out.entry(key).or_insert(0) += n;
    }
    out
}

/// `after - before`, leaving out resources that did not move.
pub fn delta(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v.saturating_sub(before.get(k).copied().unwrap_or(0));
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn writes_are_summed_by_resource() {
        let text = r#"# HELP apiserver_request_total x
apiserver_request_total{code="200",component="apiserver",dry_run="",group="coordination.k8s.io",resource="leases",scope="resource",subresource="",verb="PUT",version="v1"} 12
apiserver_request_total{code="200",component="apiserver",dry_run="",group="gateway.networking.k8s.io",resource="httproutes",scope="resource",subresource="status",verb="PATCH",version="v1"} 3
apiserver_request_total{code="409",component="apiserver",dry_run="",group="gateway.networking.k8s.io",resource="httproutes",scope="resource",subresource="status",verb="PATCH",version="v1"} 1
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="secrets",scope="resource",subresource="",verb="GET",version="v1"} 40
"#;
        let w = super::parse_writes(text);
        assert_eq!(w.get("leases"), Some(&12));
        assert_eq!(w.get("httproutes/status"), Some(&4));
        assert_eq!(w.get("secrets"), None);
    }
}
