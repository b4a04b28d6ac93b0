use anyhow::Context;
use gatehouse::bootstrap::{BootstrapOptions, XdsTls, bootstrap, parse_host_port};

use super::translate::parse_gateway;

/// Arguments of `bootstrap`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The Gateway this proxy serves (NAMESPACE/NAME).
    #[arg(long)]
    pub gateway: String,
    /// Where Gatehouse serves xDS (HOST:PORT).
    #[arg(long, default_value = "127.0.0.1:18000")]
    pub xds_address: String,
    /// Envoy admin port on 127.0.0.1 (off when unset).
    #[arg(long)]
    pub admin_port: Option<u16>,
    /// Use state-of-the-world ADS instead of delta.
    #[arg(long)]
    pub sotw: bool,
    /// Connect with mTLS, using `tls.crt`, `tls.key` and `ca.crt` of this directory (the
    /// proxy Secret Gatehouse provisions per Gateway, mounted or copied).
    #[arg(long)]
    pub xds_tls_dir: Option<String>,
    /// With --xds-tls-dir: the DNS name the xDS server certificate must carry (default: the
    /// host of --xds-address).
    #[arg(long)]
    pub xds_server_name: Option<String>,
    /// Add a listener answering `GET /ready` on this port once Envoy has its config.
    #[arg(long)]
    pub readiness_port: Option<u16>,
    /// Print JSON instead of YAML.
    #[arg(long)]
    pub json: bool,
}

/// Prints the bootstrap.
pub fn run(args: Args) -> anyhow::Result<i32> {
    let (xds_host, xds_port) = parse_host_port(&args.xds_address)?;
    let tls = args.xds_tls_dir.as_deref().map(|dir| {
        let dir = dir.trim_end_matches('/');
        XdsTls {
            cert_path: format!("{dir}/tls.crt"),
            key_path: format!("{dir}/tls.key"),
            ca_path: format!("{dir}/ca.crt"),
            server_name: args
                .xds_server_name
                .clone()
                .unwrap_or_else(|| xds_host.clone()),
        }
    });
    let options = BootstrapOptions {
        gateway: parse_gateway(&args.gateway)?,
        xds_host,
        xds_port,
        admin_port: args.admin_port,
        sotw: args.sotw,
        tls,
        readiness_port: args.readiness_port,
    };
    let doc = gatehouse::protojson::message_to_json(&bootstrap(&options))?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).context("printing JSON")?
        );
    } else {
        print!("{}", yaml_serde::to_string(&doc).context("printing YAML")?);
    }
    Ok(0)
}
