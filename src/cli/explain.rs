use anyhow::{Context, bail};
use gatehouse::explain;

use super::translate::Input;

/// Output formats of `explain`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Format {
    /// A table for humans.
    Table,
    Json,
    /// A mermaid flowchart of the attachment graph.
    Mermaid,
}

/// Arguments of `explain`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub input: Input,
    /// Output format.
    #[arg(
        short = 'o',
        long = "output",
        env = "GATEHOUSE_OUTPUT",
        value_enum,
        default_value = "table"
    )]
    pub output: Format,
}

/// Prints the effective ext auth of every route. Exit code 1 when a document failed to load.
pub fn run(args: Args) -> anyhow::Result<i32> {
    let (model, wanted, failed) = args.input.load_model()?;
    let rows: Vec<_> = explain::explain(&model)
        .into_iter()
        .filter(|r| wanted.as_ref().is_none_or(|w| w.to_string() == r.gateway))
        .collect();
    if let Some(w) = &wanted
        && model.gateway(w).is_none()
    {
        bail!("Gateway {w} is not in the manifests (or not served by Gatehouse)");
    }
    match args.output {
        Format::Table => super::stdout(&explain::table(&rows))?,
        Format::Json => {
            super::stdout(&(serde_json::to_string_pretty(&rows).context("printing JSON")? + "\n"))?
        }
        Format::Mermaid => super::stdout(&explain::mermaid(&rows))?,
    }
    Ok(if failed { 1 } else { 0 })
}
