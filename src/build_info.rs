//! What this binary was built from, stamped by `build.rs`: for `gatehouse version` and the
//! `gatehouse_build_info` metric.

/// The crate version (`Cargo.toml`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit (12 hex digits), `GATEHOUSE_GIT_COMMIT` of the build when set (the image
/// build has no `.git`), else `unknown`.
pub const COMMIT: &str = env!("GATEHOUSE_BUILD_COMMIT");

/// Whether tracked files differed from [`COMMIT`] when the binary was built; `None` when the
/// commit did not come from git.
pub const DIRTY: Option<bool> = tree_state(env!("GATEHOUSE_BUILD_TREE"));

/// The compiler, as `rustc --version` prints it.
pub const RUSTC: &str = env!("GATEHOUSE_BUILD_RUSTC");

/// `--version`'s text: the version, then the commit and compiler on their own lines.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\ncommit: ",
    env!("GATEHOUSE_BUILD_COMMIT"),
    " (tree ",
    env!("GATEHOUSE_BUILD_TREE"),
    ")\nrustc: ",
    env!("GATEHOUSE_BUILD_RUSTC"),
);

const fn tree_state(s: &str) -> Option<bool> {
    match s.as_bytes() {
        b"dirty" => Some(true),
        b"clean" => Some(false),
        _ => None,
    }
}

/// The build information as one serializable value (`gatehouse version -o json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct BuildInfo {
    pub version: &'static str,
    pub commit: &'static str,
    pub dirty: Option<bool>,
    pub rustc: &'static str,
}

/// This binary's build information.
pub const BUILD_INFO: BuildInfo = BuildInfo {
    version: VERSION,
    commit: COMMIT,
    dirty: DIRTY,
    rustc: RUSTC,
};
