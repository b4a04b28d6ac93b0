//! The `gatehouse` command: a thin CLI over the library.

mod cli;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "gatehouse",
    version = gatehouse::build_info::VERSION,
    long_version = gatehouse::build_info::LONG_VERSION,
    about = "Kubernetes gateway controller serving Envoy with external authorization",
    after_help = "Every flag can also be set from the environment variable GATEHOUSE_ and its name \
                  in upper snake case (shown with each flag); a flag on the command line wins."
)]
struct Cli {
    /// Log format (level from RUST_LOG, default info).
    #[arg(
        long,
        env = "GATEHOUSE_LOG_FORMAT",
        global = true,
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Print the Envoy configuration Gatehouse would serve for a set of manifests.
    Translate(cli::translate::Args),
    /// Watch the Kubernetes API, serve xDS, write status (kubeconfig or in-cluster).
    // Boxed: its many flags would make every variant as large.
    Controller(Box<cli::controller::Args>),
    /// Show, for every route, which ext auth applies and which policy decided it.
    Explain(cli::explain::Args),
    /// Serve xDS from a watched directory of manifests, without a cluster.
    Standalone(cli::standalone::Args),
    /// Print an Envoy bootstrap that connects a proxy for one Gateway to Gatehouse.
    Bootstrap(cli::bootstrap::Args),
    /// Print a kubernetes.io/tls Secret holding a new self-signed certificate (for trying HTTPS).
    Certificate(cli::certificate::Args),
    /// Print the CustomResourceDefinitions (or write them into a directory).
    Crds {
        /// Write one file per CRD into this directory instead of printing.
        #[arg(long, env = "GATEHOUSE_DIR")]
        dir: Option<std::path::PathBuf>,
    },
    /// Rotate the xDS CA in steps, without dropping a proxy.
    Ca(cli::ca::Args),
    /// Print the version, the git commit it was built from and the compiler.
    Version(cli::version::Args),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    Completion(cli::completion::Args),
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    // Panics reach the log as structured errors (with the thread and location), not only as
    // raw stderr text next to JSON lines.
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()));
        let message = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        let thread = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_string();
        tracing::error!(panic = %message, location = ?location, thread = %thread, "panic");
        if format == LogFormat::Text {
            default(info);
        }
    }));
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Translate(args) => cli::translate::run(args),
        Command::Explain(args) => cli::explain::run(args),
        Command::Standalone(args) => cli::standalone::run(args).await,
        Command::Controller(args) => cli::controller::run(*args).await,
        Command::Bootstrap(args) => cli::bootstrap::run(args),
        Command::Certificate(args) => cli::certificate::run(args),
        Command::Crds { dir } => cli::crds::run(dir),
        Command::Ca(args) => cli::ca::run(args).await,
        Command::Version(args) => cli::version::run(args),
        Command::Completion(args) => cli::completion::run(args, Cli::command()),
    };
    match result {
        Ok(code) => std::process::exit(code),
        // The reader of stdout left (`gatehouse crds | head`): it has what it wanted.
        Err(e) if cli::is_broken_pipe(&e) => std::process::exit(0),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}
