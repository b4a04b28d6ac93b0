//! Subcommands. Each returns the process exit code; errors end as readable messages.

pub mod bootstrap;
pub mod ca;
pub mod certificate;
pub mod completion;
pub mod controller;
mod crd_check;
pub mod crds;
pub mod explain;
pub mod kube_client;
mod leadership;
mod serve;
mod shutdown;
pub mod standalone;
mod status_loop;
pub mod translate;
pub mod version;
mod xds_certificate;

/// Writes `text` to stdout. Unlike `print!`, a reader that went away (`| head`) is an error
/// the caller returns, which `main` ends quietly, instead of a panic.
pub fn stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(anyhow::Error::from)
}

/// True when `e` is stdout's reader having gone away: not a failure of the command.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// `-o` of the commands that print one document (`bootstrap`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Yaml,
    Json,
}

impl Output {
    /// Prints `doc` on stdout in this format.
    pub fn print<T: serde::Serialize>(self, doc: &T) -> anyhow::Result<()> {
        use anyhow::Context;
        match self {
            Output::Json => {
                stdout(&(serde_json::to_string_pretty(doc).context("printing JSON")? + "\n"))
            }
            Output::Yaml => stdout(&yaml_serde::to_string(doc).context("printing YAML")?),
        }
    }
}

/// `--route-scopes-from`, shared by the commands that translate.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct RouteScopes {
    /// Serve a single-port Gateway's routes as one RouteConfiguration per hostname (Envoy's
    /// scoped RDS) from this many hostnames on — or from two, when they hold 2,000 routes —
    /// so that over delta ADS a route change sends, and Envoy re-applies, one host's table;
    /// 0 never scopes. Only ports whose hostnames are all exact are scoped.
    #[arg(long = "route-scopes-from", env = "GATEHOUSE_ROUTE_SCOPES_FROM", default_value_t = gatehouse::translate::scopes::DEFAULT_ROUTE_SCOPES_FROM)]
    pub from: usize,
}

/// `--cluster-removal-grace`, shared by the commands that serve xDS.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct RemovalGrace {
    /// Seconds a cluster that left the configuration stays in Envoy after the listeners and
    /// routes that named it were accepted without it, so that requests in flight on it finish
    /// (Envoy resets them when the cluster goes; an auth check reset that way answers 403).
    /// Raise it above your longest auth `requestTimeout` times its retry attempts.
    #[arg(
        long = "cluster-removal-grace",
        env = "GATEHOUSE_CLUSTER_REMOVAL_GRACE",
        value_name = "SECONDS",
        default_value_t = 15
    )]
    pub seconds: u64,
}

impl RemovalGrace {
    pub fn duration(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.seconds)
    }
}
