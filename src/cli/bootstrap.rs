use gatehouse::bootstrap::{BootstrapOptions, XdsTls, bootstrap, parse_host_port};

use super::translate::parse_gateway;

/// Arguments of `bootstrap`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The Gateway this proxy serves (NAMESPACE/NAME).
    #[arg(long, env = "GATEHOUSE_GATEWAY")]
    pub gateway: String,
    /// Where Gatehouse serves xDS (HOST:PORT).
    #[arg(long, env = "GATEHOUSE_XDS_ADDRESS", default_value = "127.0.0.1:18000")]
    pub xds_address: String,
    /// Envoy admin port on 127.0.0.1 (off when unset).
    #[arg(long, env = "GATEHOUSE_ADMIN_PORT")]
    pub admin_port: Option<u16>,
    /// Use state-of-the-world ADS instead of delta.
    #[arg(long, env = "GATEHOUSE_SOTW", value_parser = clap::builder::BoolishValueParser::new())]
    pub sotw: bool,
    /// Connect with mTLS, using `tls.crt`, `tls.key` and `ca.crt` of this directory (the
    /// proxy Secret Gatehouse provisions per Gateway, mounted or copied).
    #[arg(long, env = "GATEHOUSE_XDS_TLS_DIR")]
    pub xds_tls_dir: Option<String>,
    /// With --xds-tls-dir: the DNS name the xDS server certificate must carry (default: the
    /// host of --xds-address).
    #[arg(long, env = "GATEHOUSE_XDS_SERVER_NAME")]
    pub xds_server_name: Option<String>,
    /// Add a listener answering `GET /ready` on this port once Envoy has its config.
    #[arg(long, env = "GATEHOUSE_READINESS_PORT")]
    pub readiness_port: Option<u16>,
    /// Output format.
    #[arg(
        short = 'o',
        long = "output",
        env = "GATEHOUSE_OUTPUT",
        value_enum,
        default_value = "yaml"
    )]
    pub output: super::Output,
    /// Same as `-o json` (kept for scripts written before `-o`).
    #[arg(long, hide = true, conflicts_with = "output")]
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
    let output = if args.json {
        super::Output::Json
    } else {
        args.output
    };
    output.print(&doc)?;
    Ok(0)
}
