//! `gatehouse version`: what this binary was built from.

use gatehouse::build_info::{BUILD_INFO, LONG_VERSION};

/// Output formats of `version`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Format {
    /// `--version`'s lines.
    Text,
    Json,
    Yaml,
}

/// Arguments of `version`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output format.
    #[arg(
        short = 'o',
        long = "output",
        env = "GATEHOUSE_OUTPUT",
        value_enum,
        default_value = "text"
    )]
    pub output: Format,
}

/// Prints the version, commit, whether the tree was dirty and the compiler.
pub fn run(args: Args) -> anyhow::Result<i32> {
    match args.output {
        Format::Text => super::stdout(&format!("gatehouse {LONG_VERSION}\n"))?,
        Format::Json => super::Output::Json.print(&BUILD_INFO)?,
        Format::Yaml => super::Output::Yaml.print(&BUILD_INFO)?,
    }
    Ok(0)
}
