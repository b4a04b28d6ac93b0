use anyhow::Context;
use gatehouse::bootstrap::{BootstrapOptions, bootstrap, parse_host_port};

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
    /// Print JSON instead of YAML.
    #[arg(long)]
    pub json: bool,
}

/// Prints the bootstrap.
pub fn run(args: Args) -> anyhow::Result<i32> {
    let (xds_host, xds_port) = parse_host_port(&args.xds_address)?;
    let options = BootstrapOptions {
        gateway: parse_gateway(&args.gateway)?,
        xds_host,
        xds_port,
        admin_port: args.admin_port,
        sotw: args.sotw,
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
