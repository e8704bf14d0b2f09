//! Compiling `.proto` files at startup with protox.

use std::path::{Component, Path, PathBuf};

use miette::Diagnostic;
use protox::file::{ChainFileResolver, FileResolver, GoogleFileResolver, IncludeFileResolver};

use super::bundled::BundledResolver;

/// Compiles `files` with `includes` (then the bundled `google/api`,
/// `google/rpc` and well-known files) on the import path. Returns an encoded
/// `FileDescriptorSet` with imports, or a message with `file:line:col`.
///
/// Without `includes`, the import path is the current folder, then the
/// folder of each file that lies outside it.
pub(super) fn compile(files: &[PathBuf], includes: &[PathBuf]) -> Result<Vec<u8>, String> {
    // The compiler follows imports by recursion, a frame per file: a long
    // import chain would overflow a runtime thread's stack (2 MiB) and
    // abort the process. It runs on a thread with room for chains tens of
    // thousands of files long (the memory is only reserved).
    const STACK: usize = 512 << 20;
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("protogate-compile".to_owned())
            .stack_size(STACK)
            .spawn_scoped(scope, || compile_here(files, includes))
            .map_err(|e| format!("cannot start the .proto compiler's thread: {e}"))?
            .join()
            .unwrap_or_else(|_| Err("the .proto compiler failed (it panicked)".to_owned()))
    })
    .map_err(|err| {
        // The compiler knows no editions and says only what it expected.
        if err.ends_with("but found 'edition'") {
            format!(
                "{err} (a Protobuf editions file, which protogate does not read yet: write it with syntax = \"proto3\")"
            )
        } else {
            err
        }
    })
}

fn compile_here(files: &[PathBuf], includes: &[PathBuf]) -> Result<Vec<u8>, String> {
    let mut roots = Roots::new(includes)?;
    let targets = files
        .iter()
        .map(|file| roots.target(file, !includes.is_empty()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut resolver = ChainFileResolver::new();
    for root in &roots.0 {
        resolver.add(Bounded::new(root.absolute.clone()));
    }
    resolver.add(BundledResolver);
    resolver.add(GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler.include_imports(true).include_source_info(false);
    for target in &targets {
        compiler.open_file(target).map_err(|e| roots.describe(&e))?;
    }
    Ok(compiler.encode_file_descriptor_set())
}

/// A folder of the import path whose files are checked before the
/// compiler reads them: regular files of at most
/// [`MAX_TEXT_BYTES`](crate::files::MAX_TEXT_BYTES) (the compiler's own
/// bound is 2 GiB, and it would read a device such as `/dev/zero` to it,
/// or wait on a pipe for ever).
struct Bounded {
    folder: PathBuf,
    files: IncludeFileResolver,
}

impl Bounded {
    fn new(folder: PathBuf) -> Bounded {
        Bounded {
            files: IncludeFileResolver::new(folder.clone()),
            folder,
        }
    }
}

impl FileResolver for Bounded {
    fn resolve_path(&self, path: &Path) -> Option<String> {
        self.files.resolve_path(path)
    }

    fn open_file(&self, name: &str) -> Result<protox::file::File, protox::Error> {
        let path = self.folder.join(name);
        match crate::files::check(&path, crate::files::MAX_TEXT_BYTES, "a .proto file") {
            Ok(()) => self.files.open_file(name),
            // Not here: the next folder may have it.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                Err(protox::Error::file_not_found(name))
            }
            Err(err) => Err(protox::Error::new(format!("{}: {err}", path.display()))),
        }
    }
}

/// One folder of the import path: as given (for messages) and absolute
/// (for protox, which matches file paths to folders by their text).
struct Root {
    given: PathBuf,
    absolute: PathBuf,
}

struct Roots(Vec<Root>);

impl Roots {
    fn new(includes: &[PathBuf]) -> Result<Roots, String> {
        let default = [PathBuf::from(".")];
        let dirs = if includes.is_empty() {
            &default[..]
        } else {
            includes
        };
        for dir in includes.iter().filter(|dir| !dir.is_dir()) {
            // Not an error: the import path may name folders only some
            // builds have; a file that needs one is reported missing.
            tracing::warn!(dir = %dir.display(), "Import path (-I) is not a folder that exists");
        }
        let roots = dirs
            .iter()
            .map(|dir| {
                Ok(Root {
                    given: dir.clone(),
                    absolute: absolute(dir).map_err(|e| format!("{}: {e}", dir.display()))?,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Roots(roots))
    }

    /// What to hand protox for `file`: its absolute path under a root, or
    /// a name relative to the import path. With `strict` (import path
    /// given) a file outside every root is an error; otherwise its folder
    /// joins the import path.
    fn target(&mut self, file: &Path, strict: bool) -> Result<PathBuf, String> {
        let shown = file.display();
        if file.is_relative() && !file.exists() {
            let under_root = self.0.iter().any(|root| root.absolute.join(file).is_file());
            return if under_root {
                // A name in the import path, as protox takes it: without
                // `.` parts (`./shop/s.proto`) or `..` that stays inside.
                Ok(plain_name(file).unwrap_or_else(|| file.to_owned()))
            } else {
                Err(format!("{shown}: file not found{}", self.searched(file)))
            };
        }
        if file.is_dir() {
            return Err(format!("{shown}: is a folder, not a .proto file"));
        }
        if !file.exists() {
            return Err(format!("{shown}: file not found"));
        }
        let path = absolute(file).map_err(|e| format!("{shown}: {e}"))?;
        if self.0.iter().any(|root| path.starts_with(&root.absolute)) {
            return Ok(path);
        }
        if strict {
            let dirs: Vec<String> = self
                .0
                .iter()
                .map(|r| r.given.display().to_string())
                .collect();
            return Err(format!(
                "{shown}: not under any import path (-I {})",
                dirs.join(", -I ")
            ));
        }
        let (Some(given), Some(folder)) = (file.parent(), path.parent()) else {
            return Err(format!("{shown}: file not found"));
        };
        self.0.push(Root {
            given: given.to_owned(),
            absolute: folder.to_owned(),
        });
        Ok(path)
    }

    /// ` (looked for a, b; -I c does not exist)`: where the relative
    /// `file` was looked for, as the user would write each path.
    fn searched(&self, file: &Path) -> String {
        let mut seen: Vec<PathBuf> = Vec::new();
        let mut looked = Vec::new();
        let here = Root {
            given: PathBuf::new(),
            absolute: absolute(Path::new(".")).unwrap_or_default(),
        };
        for root in std::iter::once(&here).chain(&self.0) {
            let absolute = root.absolute.join(file);
            if seen.contains(&absolute) {
                continue;
            }
            seen.push(absolute);
            looked.push(root.given.join(file).display().to_string());
        }
        let missing: Vec<String> = self
            .0
            .iter()
            .filter(|root| !root.absolute.is_dir())
            .map(|root| format!("-I {} does not exist", root.given.display()))
            .collect();
        let mut text = format!(" (looked for {}", looked.join(", "));
        for note in missing {
            text.push_str("; ");
            text.push_str(&note);
        }
        // The usual slip: the file is under a folder of the working
        // directory (`proto/`) that is not an import path yet.
        match folder_holding(file) {
            Some(folder) => text.push_str(&format!("; it is under {folder}: pass -I {folder}")),
            None => text.push_str("; pass -I DIR with the folder it lies under"),
        }
        text.push(')');
        text
    }

    /// The path of the file protox calls `name`, as the user would write
    /// it: the import folder as given, joined with the name.
    fn path_of(&self, name: &str) -> String {
        self.0
            .iter()
            .find(|root| root.absolute.join(name).is_file())
            .map(|root| match root.given.as_os_str().to_str() {
                Some("." | "") => name.to_owned(),
                _ => root.given.join(name).display().to_string(),
            })
            .unwrap_or_else(|| name.to_owned())
    }

    /// Where imports were looked for, and how to add a folder.
    fn search_hint(&self) -> String {
        let dirs: Vec<String> = self
            .0
            .iter()
            .map(|r| r.given.display().to_string())
            .collect();
        format!(
            " (searched {} and the bundled google/api, google/rpc and google/protobuf files; add an import path with -I DIR)",
            dirs.join(", ")
        )
    }

    /// One line: `file:line:col: message`, as compilers print errors.
    fn describe(&self, err: &protox::Error) -> String {
        let located = err
            .source_code()
            .zip(err.labels().and_then(|mut l| l.next()));
        if let Some((source, label)) = located
            && let Ok(span) = source.read_span(label.inner(), 0, 0)
        {
            let name = span.name().or(err.file()).map(|n| self.path_of(n));
            let (line, col) = (span.line() + 1, span.column() + 1);
            let mut help = err.help().map(|h| format!(" ({h})")).unwrap_or_default();
            if err.is_file_not_found() {
                help.push_str(&self.search_hint());
            }
            return format!("{}:{line}:{col}: {err}{help}", name.unwrap_or_default());
        }
        match err.file() {
            // A parse error without a place: the file ended too early
            // (protox gives no span for that); point at its last character.
            Some(file) if err.is_parse() && err.labels().is_none() => match self.end_of(file) {
                Some((line, col)) => format!("{}:{line}:{col}: {err}", self.path_of(file)),
                None => format!("{}: {err}", self.path_of(file)),
            },
            Some(file) => format!("{}: {err}", self.path_of(file)),
            None => err.to_string(),
        }
    }

    /// Line and column (from 1) just past the last character of the file
    /// protox calls `name` that is not white space.
    fn end_of(&self, name: &str) -> Option<(usize, usize)> {
        let path = self
            .0
            .iter()
            .map(|root| root.absolute.join(name))
            .find(|path| path.is_file())?;
        let text =
            crate::files::read_text(&path, crate::files::MAX_TEXT_BYTES, "a .proto file").ok()?;
        Some(end_position(&text))
    }
}

/// `path` made absolute against the current folder, with `.` and `..`
/// folded away by text (protox compares paths by their components).
fn absolute(path: &Path) -> std::io::Result<PathBuf> {
    let mut out = PathBuf::new();
    for component in std::path::absolute(path)?.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    Ok(out)
}

/// Line and column (from 1) just past the last character of `text` that
/// is not white space; `1:1` for a blank text.
fn end_position(text: &str) -> (usize, usize) {
    let text = text.trim_end();
    let line = text.matches('\n').count() + 1;
    let last = text.rsplit('\n').next().unwrap_or_default();
    (line, last.chars().count() + 1)
}

/// A folder of the working directory (one level down) holding `file`.
fn folder_holding(file: &Path) -> Option<String> {
    if file.is_absolute() {
        return None;
    }
    let mut folders: Vec<PathBuf> = std::fs::read_dir(".")
        .ok()?
        .filter_map(Result::ok)
        .take(1000)
        .map(|entry| entry.path())
        .filter(|folder| folder.is_dir() && folder.join(file).is_file())
        .collect();
    folders.sort();
    let folder = folders.first()?;
    let name = folder
        .strip_prefix(".")
        .unwrap_or(folder)
        .display()
        .to_string();
    // As it would be typed in a shell: quoted when it holds more than
    // letters, digits and `_./-`, and never read as a flag.
    let name = if name.starts_with('-') {
        format!("./{name}")
    } else {
        name
    };
    let plain = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_./-".contains(&b));
    Some(if plain {
        name
    } else {
        format!("'{}'", name.replace('\'', "'\\''"))
    })
}

/// `file` without `.` parts, and with `..` parts that stay inside it
/// folded; `None` when one would leave it.
fn plain_name(file: &Path) -> Option<PathBuf> {
    use std::path::Component;
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for part in file.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::Normal(name) => parts.push(name),
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.iter().collect())
}

#[cfg(test)]
mod tests {
    use super::end_position;

    #[test]
    fn end_position_is_just_past_the_last_visible_character() {
        assert_eq!(end_position(""), (1, 1));
        assert_eq!(end_position("\n \n"), (1, 1));
        assert_eq!(end_position("message A {"), (1, 12));
        assert_eq!(end_position("a\nmessage A {\n  int32 x = 1;\n\n"), (3, 15));
        assert_eq!(end_position("a\r\nb {\r\n"), (2, 4));
    }
}
