//! Compiling `.proto` files at startup with protox.

use std::path::{Path, PathBuf};

use miette::Diagnostic;
use protox::file::{ChainFileResolver, GoogleFileResolver, IncludeFileResolver};

use super::bundled::BundledResolver;

/// Compiles `files` with `includes` (then the bundled `google/api`,
/// `google/rpc` and well-known files) on the import path. Returns an encoded
/// `FileDescriptorSet` with imports, or a message with `file:line:col`.
pub(super) fn compile(files: &[PathBuf], includes: &[PathBuf]) -> Result<Vec<u8>, String> {
    let mut resolver = ChainFileResolver::new();
    let default_include = [PathBuf::from(".")];
    let includes = if includes.is_empty() { &default_include[..] } else { includes };
    for dir in includes {
        resolver.add(IncludeFileResolver::new(dir.clone()));
    }
    resolver.add(BundledResolver);
    resolver.add(GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler.include_imports(true).include_source_info(false);
    for file in files {
        if !file.exists() && !is_relative_to_includes(file, includes) {
            return Err(format!("{}: file not found", file.display()));
        }
        compiler.open_file(file).map_err(|e| describe(&e))?;
    }
    Ok(compiler.encode_file_descriptor_set())
}

fn is_relative_to_includes(file: &Path, includes: &[PathBuf]) -> bool {
    file.is_relative() && includes.iter().any(|dir| dir.join(file).exists())
}

/// One line: `file:line:col: message`, as compilers print errors.
fn describe(err: &protox::Error) -> String {
    let located = err.source_code().zip(err.labels().and_then(|mut l| l.next()));
    if let Some((source, label)) = located {
        if let Ok(span) = source.read_span(label.inner(), 0, 0) {
            let name = span.name().map(str::to_owned).or_else(|| err.file().map(str::to_owned));
            let (line, col) = (span.line() + 1, span.column() + 1);
            let help = err.help().map(|h| format!(" ({h})")).unwrap_or_default();
            return format!("{}:{line}:{col}: {err}{help}", name.unwrap_or_default());
        }
    }
    match err.file() {
        Some(file) => format!("{file}: {err}"),
        None => err.to_string(),
    }
}
