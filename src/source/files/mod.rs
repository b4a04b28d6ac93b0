//! Manifests on disk: multi-document YAML (or JSON) files, a file or a directory tree.

mod cel;
mod decode;
mod dir;
mod merged;
mod split;
mod watch;

use std::path::{Path, PathBuf};

pub use decode::decode_document;
pub use dir::DirSource;
pub use watch::{MAX_DELAY, QUIET, WatchError, watch};

use crate::store::Object;

/// Why one document (or file) could not be loaded. Other documents are unaffected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}{}: {message}", file.display(), doc_suffix(*document), object_suffix(object))]
pub struct LoadError {
    /// The file.
    pub file: PathBuf,
    /// 1-based document index within the file; 0 when the whole file failed.
    pub document: usize,
    /// The object, when its kind and name could be read (`TrafficPolicy httpbin/p`).
    pub object: Option<String>,
    /// What is wrong, naming the field where known.
    pub message: String,
}

fn doc_suffix(document: usize) -> String {
    if document == 0 {
        String::new()
    } else {
        format!(" document {document}")
    }
}

fn object_suffix(object: &Option<String>) -> String {
    object
        .as_ref()
        .map(|o| format!(" ({o})"))
        .unwrap_or_default()
}

/// The outcome of loading one file: what loaded, what failed, what was skipped.
#[derive(Debug, Default, Clone)]
pub struct FileLoad {
    /// Objects that decoded and validated.
    pub objects: Vec<Object>,
    /// Documents that failed.
    pub errors: Vec<LoadError>,
    /// Documents skipped on purpose (unknown kinds), as readable lines.
    pub warnings: Vec<String>,
}

impl FileLoad {
    fn merge(&mut self, other: FileLoad) {
        self.objects.extend(other.objects);
        self.errors.extend(other.errors);
        self.warnings.extend(other.warnings);
    }
}

/// True for file names the loader reads.
pub fn is_manifest(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name.starts_with('.') {
        return false;
    }
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// Every manifest file under `path` (itself when it is a file), sorted for determinism.
pub fn manifest_files(path: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let io_err = |p: &Path, e: std::io::Error| LoadError {
        file: p.to_path_buf(),
        document: 0,
        object: None,
        message: e.to_string(),
    };
    let meta = std::fs::metadata(path).map_err(|e| io_err(path, e))?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut found = Vec::new();
    let mut pending = vec![path.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| io_err(&dir, e))? {
            let entry = entry.map_err(|e| io_err(&dir, e))?;
            let p = entry.path();
            let ft = entry.file_type().map_err(|e| io_err(&p, e))?;
            if ft.is_dir() {
                if !p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("")
                    .starts_with('.')
                {
                    pending.push(p);
                }
            } else if is_manifest(&p) {
                found.push(p);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Loads one file. A file that cannot be read yields one error; each bad document yields its
/// own error and the others still load.
pub fn load_file(path: &Path) -> FileLoad {
    match std::fs::read_to_string(path) {
        Ok(text) => load_str(path, &text),
        Err(e) => FileLoad {
            errors: vec![LoadError {
                file: path.to_path_buf(),
                document: 0,
                object: None,
                message: format!("cannot read: {e}"),
            }],
            ..FileLoad::default()
        },
    }
}

/// Loads the documents of `text`, reporting errors against `path`.
pub fn load_str(path: &Path, text: &str) -> FileLoad {
    let mut out = FileLoad::default();
    for (index, doc) in split::documents(text).into_iter().enumerate() {
        out.merge(decode_document(path, index + 1, doc.first_line, doc.text));
    }
    out
}

/// Loads every manifest under each path.
pub fn load_paths(paths: &[PathBuf]) -> FileLoad {
    let mut out = FileLoad::default();
    for path in paths {
        match manifest_files(path) {
            Ok(files) => {
                for file in files {
                    out.merge(load_file(&file));
                }
            }
            Err(e) => out.errors.push(e),
        }
    }
    out
}

#[cfg(test)]
mod tests;
