//! `gatehouse completion SHELL`: a completion script, generated from the same clap definition
//! the binary parses with, so it cannot drift from the flags.

use anyhow::Context;
use clap_complete::Shell;

/// Arguments of `completion`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Load it for this shell session, e.g.:\n  \
    bash:       source <(gatehouse completion bash)\n  \
    zsh:        source <(gatehouse completion zsh)\n  \
    fish:       gatehouse completion fish | source\n  \
    powershell: gatehouse completion powershell | Out-String | Invoke-Expression")]
pub struct Args {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Prints the script for `shell` of the command `command`.
pub fn run(args: Args, mut command: clap::Command) -> anyhow::Result<i32> {
    let name = command.get_name().to_string();
    // Generated into memory: clap_complete panics when its writer fails (`| head`).
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, name, &mut script);
    let script = String::from_utf8(script).context("the completion script is not UTF-8")?;
    super::stdout(&script)?;
    Ok(0)
}
