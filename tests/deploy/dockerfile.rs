//! The `Dockerfile` read by plain line parsing (comments dropped,
//! continued lines joined, one instruction a line), its stages, and which
//! paths `.dockerignore` keeps out of the build context.

use crate::support;

/// One instruction: its keyword in capitals and the rest of the line.
#[derive(Debug, Clone)]
pub(crate) struct Instruction {
    pub(crate) keyword: String,
    pub(crate) args: String,
}

/// The instructions of one stage, from its `FROM` on.
#[derive(Debug)]
pub(crate) struct Stage {
    /// What the `FROM` line names: image, and `AS name` when given.
    pub(crate) image: String,
    pub(crate) name: Option<String>,
    pub(crate) instructions: Vec<Instruction>,
}

impl Stage {
    /// Every instruction with `keyword`.
    pub(crate) fn all(&self, keyword: &str) -> Vec<&Instruction> {
        self.instructions
            .iter()
            .filter(|i| i.keyword == keyword)
            .collect()
    }

    /// The last instruction with `keyword` (the one in force), which must be
    /// there.
    pub(crate) fn last(&self, keyword: &str) -> &Instruction {
        self.all(keyword)
            .pop()
            .unwrap_or_else(|| panic!("no {keyword} in the stage from {}", self.image))
    }

    /// The JSON array (exec form) of the last `keyword`.
    pub(crate) fn exec_form(&self, keyword: &str) -> Vec<String> {
        let args = &self.last(keyword).args;
        serde_json::from_str(args)
            .unwrap_or_else(|e| panic!("{keyword} {args} is not a JSON array (exec form): {e}"))
    }
}

/// The Dockerfile's stages, in order.
pub(crate) fn stages() -> Vec<Stage> {
    let text =
        std::fs::read_to_string(support::repo().join("Dockerfile")).expect("read Dockerfile");
    let mut stages: Vec<Stage> = Vec::new();
    for instruction in instructions(&text) {
        if instruction.keyword == "FROM" {
            let words: Vec<&str> = instruction.args.split_whitespace().collect();
            let name = match words.as_slice() {
                [_, as_, name] if as_.eq_ignore_ascii_case("as") => Some((*name).to_owned()),
                [_] => None,
                _ => panic!("FROM {} is not `image [AS name]`", instruction.args),
            };
            stages.push(Stage {
                image: words[0].to_owned(),
                name,
                instructions: Vec::new(),
            });
        } else {
            let stage = stages
                .last_mut()
                .unwrap_or_else(|| panic!("{} before any FROM", instruction.keyword));
            stage.instructions.push(instruction);
        }
    }
    assert!(!stages.is_empty(), "the Dockerfile has no FROM");
    stages
}

/// Instructions of a Dockerfile's text: `#` lines dropped, lines ending in
/// `\` joined with the next.
pub(crate) fn instructions(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && pending.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                pending.push_str(head);
                pending.push(' ');
            }
            None => {
                pending.push_str(trimmed);
                let whole = std::mem::take(&mut pending);
                let (keyword, args) = whole
                    .split_once(char::is_whitespace)
                    .unwrap_or((&whole, ""));
                out.push(Instruction {
                    keyword: keyword.to_ascii_uppercase(),
                    args: args.trim().to_owned(),
                });
            }
        }
    }
    assert!(
        pending.is_empty(),
        "the Dockerfile ends in a continued line"
    );
    out
}

/// A `COPY`'s flags (`--from=build`), sources and destination.
#[derive(Debug)]
pub(crate) struct Copy {
    pub(crate) from: Option<String>,
    pub(crate) sources: Vec<String>,
    pub(crate) dest: String,
}

pub(crate) fn copy(instruction: &Instruction) -> Copy {
    let mut from = None;
    let mut paths = Vec::new();
    for word in instruction.args.split_whitespace() {
        match word.strip_prefix("--") {
            Some(flag) => {
                if let Some(stage) = flag.strip_prefix("from=") {
                    from = Some(stage.to_owned());
                }
            }
            None => paths.push(word.to_owned()),
        }
    }
    let dest = paths
        .pop()
        .unwrap_or_else(|| panic!("COPY {} has no destination", instruction.args));
    assert!(!paths.is_empty(), "COPY {} has no source", instruction.args);
    Copy {
        from,
        sources: paths,
        dest,
    }
}

/// Whether `.dockerignore` keeps `path` (relative to the repository root)
/// out of the build context: its last matching pattern decides, `!`
/// patterns letting a path back in. A pattern matches a path or any folder
/// above it; `*` stands for any part of one name, `**` for any number of
/// folders.
pub(crate) fn ignored(path: &str) -> bool {
    let text = std::fs::read_to_string(support::repo().join(".dockerignore")).unwrap_or_default();
    let names: Vec<&str> = path.trim_matches('/').split('/').collect();
    let mut ignored = false;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (keep, pattern) = match line.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        let pattern: Vec<&str> = pattern.trim_matches('/').split('/').collect();
        // The path itself, or a folder it is in.
        if (1..=names.len()).any(|n| matches_names(&pattern, &names[..n])) {
            ignored = !keep;
        }
    }
    ignored
}

fn matches_names(pattern: &[&str], names: &[&str]) -> bool {
    match (pattern.split_first(), names.split_first()) {
        (None, None) => true,
        (Some((&"**", rest)), _) => {
            (0..=names.len()).any(|skip| matches_names(rest, &names[skip..]))
        }
        (Some((first, rest)), Some((name, names))) => {
            matches_name(first.as_bytes(), name.as_bytes()) && matches_names(rest, names)
        }
        _ => false,
    }
}

/// One name against one pattern part, `*` standing for any run of
/// characters and `?` for one.
fn matches_name(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|skip| matches_name(rest, &name[skip..])),
        Some((b'?', rest)) => !name.is_empty() && matches_name(rest, &name[1..]),
        Some((c, rest)) => name.first() == Some(c) && matches_name(rest, &name[1..]),
    }
}

/// The folders and files `build.rs` reads, from its
/// `cargo:rerun-if-changed=` lines (with the `{CONST}`s they name filled in
/// from its `const NAME: &str = "...";` lines).
pub(crate) fn build_script_inputs() -> Vec<String> {
    let text = std::fs::read_to_string(support::repo().join("build.rs")).expect("read build.rs");
    let consts: Vec<(String, String)> = text
        .lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix("const ")?;
            let (name, value) = rest.split_once(": &str = ")?;
            let value = value.strip_suffix(';')?.trim_matches('"');
            Some((name.to_owned(), value.to_owned()))
        })
        .collect();
    let inputs: Vec<String> = text
        .lines()
        .filter_map(|line| {
            let start = line.find("rerun-if-changed=")? + "rerun-if-changed=".len();
            let rest = &line[start..];
            let input = &rest[..rest.find('"')?];
            let mut input = input.to_owned();
            for (name, value) in &consts {
                input = input.replace(&format!("{{{name}}}"), value);
            }
            assert!(
                !input.contains('{'),
                "build.rs reads {input}, with a name this test cannot fill in"
            );
            Some(input)
        })
        .collect();
    assert!(
        !inputs.is_empty(),
        "build.rs names no rerun-if-changed input"
    );
    inputs
}

#[test]
fn ignore_patterns_match_as_docker_reads_them() {
    let names = |p: &str| p.split('/').map(str::to_owned).collect::<Vec<_>>();
    let check = |pattern: &str, path: &str| {
        let pattern = names(pattern);
        let pattern: Vec<&str> = pattern.iter().map(String::as_str).collect();
        let path = names(path);
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        (1..=path.len()).any(|n| matches_names(&pattern, &path[..n]))
    };
    assert!(check("tests", "tests/protos/etcd"));
    assert!(check("tests/*/etcd", "tests/protos/etcd/rpc.proto"));
    assert!(check("**/*.md", "a/b/README.md"));
    assert!(check("*", "src"));
    assert!(!check("target", "src/target.rs"));
    assert!(!check("tests/protos/x", "tests/protos/etcd"));
}
