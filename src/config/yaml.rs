//! Where a config problem is: the key path and the line and column of the
//! YAML, for errors found while parsing and for the checks after it.

use std::collections::HashMap;

use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Parses `text` as a `T`, naming the key path of any error.
pub(super) fn parse<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    let mut key = String::new();
    serde_saphyr::with_deserializer_from_str(text, |de| {
        serde_path_to_error::deserialize(de).map_err(|err| {
            key = dotted(err.path());
            err.into_inner()
        })
    })
    .map_err(|err| YamlError::new(&err, key))
}

/// YAML that does not parse or does not fit the config: which key, where,
/// and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}{message}", location(*line, *column), key_prefix(key))]
pub struct YamlError {
    /// Dotted path of the offending key, e.g. `upstreams.books.url`; empty
    /// when the problem is the document itself.
    pub key: String,
    /// 1-based line, when the parser knows it.
    pub line: Option<u64>,
    /// 1-based column, when the parser knows it.
    pub column: Option<u64>,
    /// What is wrong.
    pub message: String,
}

fn location(line: Option<u64>, column: Option<u64>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!("{line}:{column}: "),
        (Some(line), None) => format!("{line}: "),
        _ => String::new(),
    }
}

fn key_prefix(key: &str) -> String {
    if key.is_empty() {
        String::new()
    } else {
        format!("{key}: ")
    }
}

/// More than one upstream without `services`, named with their lines.
pub(super) fn too_many_defaults(defaults: &[(&str, Option<u64>)]) -> String {
    let names: Vec<String> = defaults
        .iter()
        .map(|(name, line)| match line {
            Some(line) => format!("`{name}` (line {line})"),
            None => format!("`{name}`"),
        })
        .collect();
    let listed = match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => names.join(""),
    };
    format!(
        "{listed} have no `services`, so each would be the default upstream; \
         give all but one of them `services`"
    )
}

/// The error for YAML with several default upstreams, located at the
/// second one. Their lines come from a second, lenient pass that keeps
/// the position of each upstream name.
pub(super) fn default_upstreams_error(text: &str) -> YamlError {
    #[derive(Deserialize)]
    struct Located {
        #[serde(default)]
        upstreams: HashMap<serde_saphyr::Spanned<String>, Upstream>,
    }
    #[derive(Deserialize)]
    struct Upstream {
        #[serde(default)]
        services: Vec<serde::de::IgnoredAny>,
        #[serde(default)]
        descriptors: Option<String>,
    }
    let mut defaults: Vec<(String, serde_saphyr::Location)> =
        serde_saphyr::from_str::<Located>(text)
            .map(|l| l.upstreams)
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, u)| {
                u.services.is_empty() && u.descriptors.as_deref() != Some("reflection")
            })
            .map(|(name, _)| (name.value, name.referenced))
            .collect();
    defaults.sort_by_key(|(_, at)| (at.line(), at.column()));
    let listed: Vec<(&str, Option<u64>)> = defaults
        .iter()
        .map(|(name, at)| (name.as_str(), Some(at.line())))
        .collect();
    let second = defaults.get(1);
    YamlError {
        key: match second {
            Some((name, _)) => format!("upstreams.{name}"),
            None => "upstreams".to_owned(),
        },
        line: second.map(|(_, at)| at.line()),
        column: second.map(|(_, at)| at.column()),
        message: too_many_defaults(&listed),
    }
}

/// A key path as written in YAML: `upstreams.books.url`, `protos[1]`,
/// with keys that hold dots quoted: `timeouts.methods."pkg.S/M"`.
pub(super) fn dotted(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                let plain = key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if plain && !key.is_empty() {
                    out.push_str(key);
                } else {
                    out.push_str(&format!("{key:?}"));
                }
            }
            Segment::Unknown => {}
        }
    }
    out
}

impl YamlError {
    fn new(err: &serde_saphyr::Error, key: String) -> YamlError {
        use serde_saphyr::MessageFormatter as _;
        let err = err.without_snippet();
        let position = err.location().filter(|l| l.line() > 0);
        // The user-facing wording, kept on one line.
        let mut message: String = serde_saphyr::UserMessageFormatter
            .format_message(err)
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if let Some(meant) = meant(&message) {
            message = format!("{message} (did you mean `{meant}`?)");
        }
        YamlError {
            key,
            line: position.map(|l| l.line()),
            column: position.map(|l| l.column()).filter(|c| *c > 0),
            message,
        }
    }
}

/// For an unknown key or value ("unknown field `timeot`, expected one of
/// url, timeout, ..."; also "unknown variant"), the listed one it most
/// likely meant.
fn meant(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("unknown variant `"))?;
    let (given, rest) = rest.split_once('`')?;
    let listed = rest.split_once("expected ")?.1;
    let listed = listed.strip_prefix("one of ").unwrap_or(listed);
    let names = listed
        .split(", ")
        .flat_map(|part| part.split(" or "))
        .map(|name| name.trim().trim_matches('`'));
    crate::transcode::suggest::closest(given, names).map(str::to_owned)
}

/// The 1-based line where the dotted `key` (`limits.max_body_bytes`) is
/// written in block-style YAML, found by indentation: each part is a
/// `part:` line one level inside the previous part. `None` when the key is
/// not written out that way (flow style, a default, a flag).
///
/// A last part `name[N]` is the `N`th item (from 0) of the block list
/// under `name`.
pub(super) fn line_of(text: &str, key: &str) -> Option<u64> {
    let (key, item) = match key.strip_suffix(']').and_then(|k| k.rsplit_once('[')) {
        Some((key, index)) => (key, Some(index.parse::<usize>().ok()?)),
        None => (key, None),
    };
    let Some(item) = item else {
        // A key inside a flow mapping (`canary: {upstream: x}`) has no
        // line of its own: the nearest enclosing key's line then.
        let mut key = key;
        loop {
            if let Some(line) = line_of_key(text, key) {
                return Some(line);
            }
            key = key.rsplit_once('.')?.0;
        }
    };
    let line = line_of_key(text, key)?;
    // The list's items: `- ` lines indented deeper than the key, up to the
    // next line at or left of it.
    let lines = text.lines().collect::<Vec<_>>();
    let key_line = *lines.get(usize::try_from(line).ok()? - 1)?;
    let key_indent = key_line.len() - key_line.trim_start().len();
    let mut items = (line + 1..).zip(lines.iter().skip(usize::try_from(line).ok()?));
    let mut item_indent = None;
    let mut seen = 0;
    items
        .find_map(|(number, line)| {
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                return None;
            }
            let indent = line.len() - trimmed.len();
            if indent < key_indent || (indent == key_indent && !trimmed.starts_with('-')) {
                // Past the list: stop looking.
                seen = usize::MAX;
                return None;
            }
            if seen == usize::MAX || !trimmed.starts_with('-') {
                return None;
            }
            if *item_indent.get_or_insert(indent) != indent {
                return None;
            }
            seen += 1;
            (seen == item + 1).then_some(number)
        })
        // A flow list (`routes: [{...}]`) has its items on the key's line.
        .or_else(|| key_line.contains('[').then_some(line))
}

fn line_of_key(text: &str, key: &str) -> Option<u64> {
    let mut parts = key.split('.');
    let mut want = parts.next()?;
    // The indentation of the block searched (known at its first line), and
    // of the key that opened it: a line at or left of that ends the block.
    let mut level: Option<usize> = None;
    let mut parent: Option<usize> = None;
    for (number, line) in (1u64..).zip(text.lines()) {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        if parent.is_some_and(|p| indent <= p) {
            return None;
        }
        if *level.get_or_insert(indent) != indent || key_name(trimmed) != Some(want) {
            continue;
        }
        match parts.next() {
            None => return Some(number),
            Some(next) => {
                want = next;
                parent = Some(indent);
                level = None;
            }
        }
    }
    None
}

/// The key of a `key: value` or `key:` line, unquoted.
fn key_name(line: &str) -> Option<&str> {
    let end = line
        .find(": ")
        .or_else(|| line.strip_suffix(':').map(str::len))?;
    let key = line[..end].trim();
    Some(
        key.strip_prefix('"')
            .and_then(|k| k.strip_suffix('"'))
            .or_else(|| key.strip_prefix('\'').and_then(|k| k.strip_suffix('\'')))
            .unwrap_or(key),
    )
}
