//! A directory of manifests as a source: what each file last held, and the store they make.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::merged::Merged;
use super::{LoadError, is_manifest, load_file, manifest_files};
use crate::store::{Object, ObjectRef, Store};

#[derive(Debug, Default)]
struct FileState {
    /// The objects of the last load without errors (or of the first load).
    objects: Vec<Object>,
    /// Errors of the most recent load; non-empty means `objects` are kept from before.
    errors: Vec<LoadError>,
    /// What the file looked like when last read; an event for an unchanged file (a
    /// directory-level event makes every file a candidate) is not parsed again.
    fingerprint: Option<Fingerprint>,
}

/// Inode, size and modification time: a rename over the file, a rewrite or a touch changes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fingerprint {
    inode: u64,
    len: u64,
    modified: Option<std::time::SystemTime>,
}

impl Fingerprint {
    fn of(meta: &std::fs::Metadata) -> Fingerprint {
        use std::os::unix::fs::MetadataExt;
        Fingerprint {
            inode: meta.ino(),
            len: meta.len(),
            modified: meta.modified().ok(),
        }
    }
}

/// The files of a directory tree and the objects they hold.
#[derive(Debug)]
pub struct DirSource {
    root: PathBuf,
    files: BTreeMap<PathBuf, FileState>,
    /// Errors of the last full scan (an unreadable directory).
    scan_errors: Vec<LoadError>,
    merged: Merged,
}

impl DirSource {
    /// A source for `root`; nothing is read until [`DirSource::rescan`].
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            files: BTreeMap::new(),
            scan_errors: Vec::new(),
            merged: Merged::default(),
        }
    }

    /// The watched directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Re-reads every file; returns true when any file's objects changed.
    pub fn rescan(&mut self) -> bool {
        let paths = match manifest_files(&self.root) {
            Ok(p) => {
                self.scan_errors.clear();
                p
            }
            Err(e) => {
                // The tree cannot be listed: keep everything we had rather than empty the
                // configuration.
                self.scan_errors = vec![e];
                return false;
            }
        };
        let mut changed = false;
        let gone: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|p| !paths.contains(p))
            .cloned()
            .collect();
        for p in gone {
            // Not `reload`: a path that became a directory would rescan again, forever.
            changed |= self.forget(&p);
        }
        for p in paths {
            changed |= self.reload(&p);
        }
        changed
    }

    /// Re-reads one path after a change; returns true when its objects changed.
    ///
    /// A path that no longer exists drops its objects. A file that fails to load, or that is
    /// empty while it held objects (an editor mid-write), keeps the objects of its last good
    /// load and reports why, so a half-written file never removes configuration.
    pub fn reload(&mut self, path: &Path) -> bool {
        let meta = std::fs::metadata(path);
        let is_file = meta.as_ref().map(|m| m.is_file()).unwrap_or(false);
        if meta.is_err() || !is_file || !is_manifest(path) {
            if meta.as_ref().is_ok_and(|m| m.is_dir()) {
                return self.rescan();
            }
            return self.forget(path);
        }
        let fingerprint = meta.as_ref().ok().map(Fingerprint::of);
        if let Some(state) = self.files.get(path)
            && fingerprint.is_some()
            && state.fingerprint == fingerprint
        {
            return false;
        }
        let load = load_file(path);
        let state = self.files.entry(path.to_path_buf()).or_default();
        state.fingerprint = fingerprint;
        let had_objects = !state.objects.is_empty();
        let empty = load.objects.is_empty() && load.errors.is_empty();
        if (!load.errors.is_empty() || empty) && had_objects {
            let mut errors = load.errors;
            if errors.is_empty() {
                errors.push(LoadError {
                    file: path.to_path_buf(),
                    document: 0,
                    object: None,
                    message: "file is empty; keeping the objects it held (delete the file to remove them)".into(),
                });
            }
            for e in &errors {
                tracing::warn!(error = %e, "manifest not loaded; keeping its last good objects");
            }
            state.errors = errors;
            return false;
        }
        for e in &load.errors {
            tracing::warn!(error = %e, "manifest document not loaded");
        }
        for w in &load.warnings {
            tracing::warn!(file = %path.display(), "{w}");
        }
        state.errors = load.errors;
        if state.objects == load.objects {
            return false;
        }
        let old = std::mem::replace(&mut state.objects, load.objects);
        let files = &self.files;
        let new = files.get(path).map(|s| s.objects.as_slice()).unwrap_or(&[]);
        self.merged
            .replace(path, &old, new, |p, r| defined_in(files, p, r));
        self.compact();
        true
    }

    fn compact(&mut self) {
        if self.merged.worn() {
            let files = &self.files;
            self.merged
                .rebuild(files.values().map(|s| s.objects.as_slice()));
        }
    }

    /// Drops a file that is gone; true when it held objects.
    fn forget(&mut self, path: &Path) -> bool {
        let Some(old) = self.files.remove(path) else {
            return false;
        };
        let files = &self.files;
        self.merged
            .replace(path, &old.objects, &[], |p, r| defined_in(files, p, r));
        self.compact();
        !old.objects.is_empty()
    }

    /// The store the files make; a later file wins when two define the same object.
    pub fn store(&self) -> &Store {
        self.merged.store()
    }

    /// Current input problems, one readable line each.
    pub fn problems(&self) -> Vec<String> {
        self.scan_errors
            .iter()
            .chain(self.files.values().flat_map(|s| s.errors.iter()))
            .map(ToString::to_string)
            .collect()
    }
}

/// The last definition of `object` in file `path`.
fn defined_in(
    files: &BTreeMap<PathBuf, FileState>,
    path: &Path,
    object: &ObjectRef,
) -> Option<Object> {
    files
        .get(path)?
        .objects
        .iter()
        .rev()
        .find(|o| &o.object_ref() == object)
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ObjKey;

    /// A Service `ns/NAME` on port 80.
    fn svc(name: &str) -> String {
        crate::testing::service("ns", name, 80)
    }

    #[test]
    fn broken_or_emptied_file_keeps_its_last_good_objects() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("svc.yaml");
        std::fs::write(&file, svc("a")).expect("write");
        let mut src = DirSource::new(dir.path());
        assert!(src.rescan());
        assert!(src.store().services.contains_key(&ObjKey::new("ns", "a")));

        std::fs::write(&file, "kind: [broken").expect("write");
        assert!(!src.reload(&file));
        assert!(
            src.store().services.contains_key(&ObjKey::new("ns", "a")),
            "kept after parse error"
        );
        assert_eq!(src.problems().len(), 1);

        std::fs::write(&file, "").expect("write");
        assert!(!src.reload(&file));
        assert!(
            src.store().services.contains_key(&ObjKey::new("ns", "a")),
            "kept while empty"
        );
        assert!(src.problems()[0].contains("file is empty"));

        std::fs::write(&file, svc("b")).expect("write");
        assert!(src.reload(&file));
        assert!(src.problems().is_empty());
        let store = src.store();
        assert!(store.services.contains_key(&ObjKey::new("ns", "b")));
        assert!(!store.services.contains_key(&ObjKey::new("ns", "a")));

        std::fs::remove_file(&file).expect("remove");
        assert!(src.reload(&file));
        assert!(src.store().is_empty());
    }

    #[test]
    fn rescan_picks_up_new_and_removed_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut src = DirSource::new(dir.path());
        assert!(!src.rescan());
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        std::fs::write(dir.path().join("sub/svc.yml"), svc("a")).expect("write");
        std::fs::write(dir.path().join("notes.txt"), "not a manifest").expect("write");
        assert!(src.rescan());
        assert_eq!(src.store().len(), 1);
        std::fs::remove_dir_all(dir.path().join("sub")).expect("rm");
        assert!(src.rescan());
        assert!(src.store().is_empty());
        assert!(!src.rescan(), "nothing changed");
    }
}
