use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::bail;
use gatehouse::model::{self, ModelConfig};
use gatehouse::source::files;
use gatehouse::store::{ObjKey, Store};
use gatehouse::translate::{self, TranslateOptions};

/// Output formats of `translate`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Format {
    Yaml,
    Json,
    /// A static Envoy bootstrap of one Gateway (`envoy -c` runs it without a control plane),
    /// printed as JSON: Envoy reads YAML 1.1, where a bare `yes`, `on` or `n` is a boolean,
    /// so a tenant's header value `yes` in YAML would reach Envoy as `true` (and be refused).
    Bootstrap,
}

/// Which manifests to read, and which Gateway to show (shared by `translate` and `explain`).
#[derive(Debug, clap::Args)]
pub struct Input {
    /// Manifest files or directories (read recursively); `-` reads multi-document YAML from
    /// standard input.
    #[arg(short = 'f', long = "filename", env = "GATEHOUSE_FILENAME", required = true, num_args = 1..)]
    pub paths: Vec<PathBuf>,
    /// Only this Gateway (NAMESPACE/NAME).
    #[arg(long, env = "GATEHOUSE_GATEWAY")]
    pub gateway: Option<String>,
}

impl Input {
    /// The model of the manifests, the Gateway asked for, and whether a document failed.
    pub fn load_model(&self) -> anyhow::Result<(model::Model, Option<ObjKey>, bool)> {
        let wanted = self.gateway.as_deref().map(parse_gateway).transpose()?;
        let (store, failed) = load(&self.paths)?;
        Ok((
            model::build(&store, &ModelConfig::default()),
            wanted,
            failed,
        ))
    }
}

/// Arguments of `translate`.
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
        default_value = "yaml"
    )]
    pub output: Format,
    /// Address the Envoy listeners bind to.
    #[arg(long, env = "GATEHOUSE_BIND_ADDRESS", default_value = "0.0.0.0")]
    pub bind_address: String,
    #[command(flatten)]
    pub route_scopes: super::RouteScopes,
}

/// Parses `NAMESPACE/NAME`.
pub fn parse_gateway(s: &str) -> anyhow::Result<ObjKey> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok(ObjKey::new(ns, name))
        }
        _ => bail!("--gateway must be NAMESPACE/NAME, got {s:?}"),
    }
}

/// How `-f` names standard input, and how messages name it.
const STDIN: &str = "-";
const STDIN_NAME: &str = "<stdin>";

/// Loads manifests into a store, printing warnings and errors; true when any document failed.
/// `-` is standard input, read in the order given among the other paths; it can be given once.
pub fn load(paths: &[PathBuf]) -> anyhow::Result<(Store, bool)> {
    if paths.iter().filter(|p| p.as_os_str() == STDIN).count() > 1 {
        bail!("-f - is given more than once: standard input can be read only once");
    }
    let mut load = files::FileLoad::default();
    for path in paths {
        let one = if path.as_os_str() == STDIN {
            read_stdin()
        } else {
            files::load_paths(std::slice::from_ref(path))
        };
        load.objects.extend(one.objects);
        load.errors.extend(one.errors);
        load.warnings.extend(one.warnings);
    }
    for w in &load.warnings {
        eprintln!("warning: {w}");
    }
    for e in &load.errors {
        eprintln!("error: {e}");
    }
    let mut store = Store::new();
    for o in load.objects {
        store.apply(o);
    }
    Ok((store, !load.errors.is_empty()))
}

/// The documents on standard input, with errors naming `<stdin>` as they name a file.
fn read_stdin() -> files::FileLoad {
    let name = Path::new(STDIN_NAME);
    let mut text = String::new();
    match std::io::stdin().read_to_string(&mut text) {
        Ok(_) => files::load_str(name, &text),
        Err(e) => files::FileLoad {
            errors: vec![files::LoadError {
                file: name.to_path_buf(),
                document: 0,
                object: None,
                message: format!("cannot read: {e}"),
            }],
            ..files::FileLoad::default()
        },
    }
}

/// Loads, models and prints. Exit code 1 when any document failed to load (what loaded is
/// still printed), 0 otherwise.
pub fn run(args: Args) -> anyhow::Result<i32> {
    let (model, wanted, failed) = args.input.load_model()?;
    let options = TranslateOptions {
        bind_address: args.bind_address,
        route_scopes_from: args.route_scopes.from,
    };
    let resources: Vec<_> = model
        .gateways
        .iter()
        .filter(|g| wanted.as_ref().is_none_or(|w| *w == g.key))
        .map(|g| translate::translate_gateway(g, &options))
        .collect();
    if let Some(w) = &wanted
        && resources.is_empty()
    {
        bail!("Gateway {w} is not in the manifests (or not served by Gatehouse)");
    }
    let doc = match args.output {
        Format::Bootstrap => {
            let [one] = resources.as_slice() else {
                bail!(
                    "-o bootstrap needs exactly one Gateway; {} found, choose one with --gateway",
                    resources.len()
                );
            };
            gatehouse::render::bootstrap_json(one)?
        }
        _ => gatehouse::render::translate_json(&resources, &model.status)?,
    };
    let output = match args.output {
        Format::Json | Format::Bootstrap => super::Output::Json,
        Format::Yaml => super::Output::Yaml,
    };
    output.print(&doc)?;
    Ok(if failed { 1 } else { 0 })
}
