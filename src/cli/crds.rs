use std::path::PathBuf;

use anyhow::Context;

/// Prints the CRDs, or writes one file per CRD into `dir`.
pub fn run(dir: Option<PathBuf>) -> anyhow::Result<i32> {
    let crds = gatehouse::crds::crds().context("generating CRDs")?;
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for (name, yaml) in crds {
                let path = dir.join(name);
                std::fs::write(&path, yaml)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
        None => {
            let docs: Vec<String> = crds.into_iter().map(|(_, y)| y).collect();
            super::stdout(&docs.join("---\n"))?;
        }
    }
    Ok(0)
}
