//! Reading the files the config and the command line name: regular files
//! only, and no more than a bound for their kind.
//!
//! A path may name a device, a pipe or a socket (`/dev/zero`, a FIFO, a
//! process substitution): read whole, such a file blocks or never ends,
//! and the gateway would wait, or grow, for ever. Each is refused by name
//! before it is opened, and a regular file is read no further than its
//! bound, so a file that keeps growing cannot outgrow it either.

use std::fs::Metadata;
use std::io::{self, Read as _};
use std::path::Path;

/// The most a config file, a TLS file (certificate, key, CA, revocation
/// list) or a `.proto` file may hold. Real ones hold kilobytes; a few
/// megabytes is a generated file or a certificate bundle.
pub(crate) const MAX_TEXT_BYTES: u64 = 16 << 20;

/// The most a descriptor set may hold: larger than text files, since a
/// set carries every import (and may carry source info) of a whole API.
pub(crate) const MAX_DESCRIPTOR_SET_BYTES: u64 = 256 << 20;

/// Reads `path` whole: refused when it is not a regular file, or holds
/// more than `limit` bytes; `what` names the kind of file in that error
/// (`a config file`).
pub(crate) fn read(path: &Path, limit: u64, what: &str) -> io::Result<Vec<u8>> {
    let meta = regular(path)?;
    let file = std::fs::File::open(path)?;
    // The file may have been swapped since the look above.
    let meta_now = file.metadata()?;
    if !meta_now.is_file() {
        return Err(not_regular(&meta_now));
    }
    let expected = meta.len().min(limit);
    let mut bytes = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(limit, what));
    }
    Ok(bytes)
}

/// [`read`] for text: UTF-8, or an error saying it is not.
pub(crate) fn read_text(path: &Path, limit: u64, what: &str) -> io::Result<String> {
    let bytes = read(path, limit, what)?;
    String::from_utf8(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not UTF-8 text, which {what} is"),
        )
    })
}

/// Checks that `path` names a regular file (after symbolic links) of at
/// most `limit` bytes, without opening it: opening a pipe blocks until
/// something writes to it.
pub(crate) fn check(path: &Path, limit: u64, what: &str) -> io::Result<()> {
    let meta = regular(path)?;
    if meta.len() > limit {
        return Err(too_large(limit, what));
    }
    Ok(())
}

/// The metadata of `path`, which must be a regular file.
fn regular(path: &Path) -> io::Result<Metadata> {
    let meta = std::fs::metadata(path)?;
    if meta.is_file() {
        Ok(meta)
    } else {
        Err(not_regular(&meta))
    }
}

fn not_regular(meta: &Metadata) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "not a regular file ({}), which could block or never end when read; give a file",
            kind(meta)
        ),
    )
}

fn too_large(limit: u64, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("larger than {} MiB, the most {what} may hold", limit >> 20),
    )
}

/// What a file that is not regular is, in words.
fn kind(meta: &Metadata) -> &'static str {
    if meta.is_dir() {
        return "a folder";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        let kind = meta.file_type();
        if kind.is_char_device() || kind.is_block_device() {
            return "a device";
        }
        if kind.is_fifo() {
            return "a pipe";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    "not a plain file"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_folders_are_refused_by_what_they_are() {
        let err = read(Path::new("/dev/zero"), MAX_TEXT_BYTES, "a config file").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("not a regular file (a device)"), "{text}");
        let err = read(Path::new("/"), MAX_TEXT_BYTES, "a config file").unwrap_err();
        assert!(err.to_string().contains("a folder"), "{err}");
        let err = check(Path::new("/dev/null"), MAX_TEXT_BYTES, "a file").unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }

    #[test]
    fn a_file_past_its_bound_is_refused_naming_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        std::fs::write(&path, vec![b'x'; (2 << 20) + 1]).unwrap();
        let err = read(&path, 2 << 20, "a test file").unwrap_err();
        assert!(
            err.to_string()
                .contains("larger than 2 MiB, the most a test file may hold"),
            "{err}"
        );
        assert!(check(&path, 2 << 20, "a test file").is_err());
        std::fs::write(&path, vec![b'x'; 2 << 20]).unwrap();
        assert_eq!(read(&path, 2 << 20, "a test file").unwrap().len(), 2 << 20);
        assert!(check(&path, 2 << 20, "a test file").is_ok());
    }
}
