//! The `gatehouse` command: a thin CLI over the library.

mod cli;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "Kubernetes gateway controller serving Envoy with external authorization"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the Envoy configuration Gatehouse would serve for a set of manifests.
    Translate(cli::translate::Args),
    /// Print the CustomResourceDefinitions (or write them into a directory).
    Crds {
        /// Write one file per CRD into this directory instead of printing.
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Translate(args) => cli::translate::run(args),
        Command::Crds { dir } => cli::crds::run(dir),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}
