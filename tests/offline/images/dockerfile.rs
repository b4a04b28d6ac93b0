//! Just enough of the Dockerfile and .dockerignore formats to check the images offline:
//! instructions with their continuation lines joined, stages, and Docker's ignore patterns.

use std::path::Path;

/// One instruction: its keyword (upper case), flags (`--from=build`) and arguments.
#[derive(Debug, Clone)]
pub struct Instruction {
    pub keyword: String,
    pub flags: Vec<String>,
    /// The text after the keyword and its flags, as written.
    pub rest: String,
}

impl Instruction {
    pub fn flag(&self, name: &str) -> Option<&str> {
        let prefix = format!("--{name}=");
        self.flags.iter().find_map(|f| f.strip_prefix(&prefix))
    }

    /// The JSON-array (exec) form's words, e.g. `ENTRYPOINT ["/gatehouse"]`.
    pub fn exec_form(&self) -> Vec<String> {
        serde_json::from_str(&self.rest)
            .unwrap_or_else(|e| panic!("{} is not in exec form ({e}): {}", self.keyword, self.rest))
    }

    pub fn words(&self) -> Vec<&str> {
        self.rest.split_whitespace().collect()
    }
}

/// A stage: its FROM line and the instructions up to the next FROM.
#[derive(Debug)]
pub struct Stage {
    pub from: Instruction,
    pub name: Option<String>,
    pub body: Vec<Instruction>,
}

impl Stage {
    /// The base image (`rust:1.92-bookworm`).
    pub fn image(&self) -> &str {
        self.from.words()[0]
    }

    pub fn all(&self, keyword: &str) -> Vec<&Instruction> {
        self.body.iter().filter(|i| i.keyword == keyword).collect()
    }

    pub fn last(&self, keyword: &str) -> &Instruction {
        self.all(keyword)
            .pop()
            .unwrap_or_else(|| panic!("stage {:?} has no {keyword}", self.name))
    }
}

/// Parses a Dockerfile into its stages (instructions before the first FROM, i.e. global ARGs,
/// are dropped).
pub fn parse(path: &Path) -> Vec<Stage> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                logical.push(std::mem::take(&mut current));
            }
        }
    }
    assert!(
        current.is_empty(),
        "{}: dangling continuation",
        path.display()
    );
    let mut stages: Vec<Stage> = Vec::new();
    for line in logical {
        let (keyword, mut rest) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
        let mut flags = Vec::new();
        loop {
            rest = rest.trim_start();
            if !rest.starts_with("--") {
                break;
            }
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            flags.push(rest[..end].to_string());
            rest = &rest[end..];
        }
        let ins = Instruction {
            keyword: keyword.to_ascii_uppercase(),
            flags,
            rest: rest.trim().to_string(),
        };
        if ins.keyword == "FROM" {
            let words = ins.words();
            let name = match words.as_slice() {
                [_, as_, name] if as_.eq_ignore_ascii_case("as") => Some(name.to_string()),
                [_] => None,
                other => panic!("{}: unexpected FROM {other:?}", path.display()),
            };
            stages.push(Stage {
                from: ins,
                name,
                body: Vec::new(),
            });
        } else if let Some(stage) = stages.last_mut() {
            stage.body.push(ins);
        }
    }
    stages
}

/// The patterns of a .dockerignore, in order (`!` re-includes).
pub struct DockerIgnore {
    patterns: Vec<(bool, Vec<String>)>,
}

impl DockerIgnore {
    pub fn read(path: &Path) -> DockerIgnore {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let patterns = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                let (negate, p) = match l.strip_prefix('!') {
                    Some(p) => (true, p),
                    None => (false, l),
                };
                let segments = p
                    .trim_start_matches("./")
                    .trim_matches('/')
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
                (negate, segments)
            })
            .collect();
        DockerIgnore { patterns }
    }

    /// Whether `rel` (a path relative to the context root) is left out of the build context.
    /// As Docker does: the last matching pattern decides, and a pattern matching a parent
    /// directory matches everything under it.
    pub fn excludes(&self, rel: &str) -> bool {
        let segments: Vec<&str> = rel.split('/').filter(|s| !s.is_empty()).collect();
        let mut excluded = false;
        for (negate, pattern) in &self.patterns {
            let matched = (1..=segments.len()).any(|n| glob(pattern, &segments[..n]));
            if matched {
                excluded = !negate;
            }
        }
        excluded
    }
}

/// `**` spans any number of segments; `*` and `?` stay within one.
fn glob(pattern: &[String], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((p, rest)) if p == "**" => (0..=path.len()).any(|skip| glob(rest, &path[skip..])),
        Some((p, rest)) => path
            .split_first()
            .is_some_and(|(s, tail)| segment(p.as_bytes(), s.as_bytes()) && glob(rest, tail)),
    }
}

fn segment(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|skip| segment(rest, &s[skip..])),
        Some((b'?', rest)) => !s.is_empty() && segment(rest, &s[1..]),
        Some((c, rest)) => s.first() == Some(c) && segment(rest, &s[1..]),
    }
}
