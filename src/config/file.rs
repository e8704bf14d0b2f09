//! A config read from a file: where it came from ([`Origin`]), the paths
//! in it taken relative to its folder, and the files a change to which
//! calls for a reload.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Config, ConfigError, ListenerTls};

/// A config file and its text.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The file.
    pub path: PathBuf,
    /// Its text as read.
    pub text: Arc<str>,
}

impl Config {
    /// Reads a YAML file; relative paths in it are relative to its folder.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = crate::files::read_text(path, crate::files::MAX_TEXT_BYTES, "a config file")
            .map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
        let mut config = Config::from_yaml(&text).map_err(|error| ConfigError::Invalid {
            path: path.to_owned(),
            error,
        })?;
        if let Some(base) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            config.rebase(base);
        }
        config.origin = Some(Origin {
            path: path.to_owned(),
            text: text.into(),
        });
        Ok(config)
    }

    fn rebase(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        self.descriptor_sets.iter_mut().for_each(fix);
        if let Some(tls) = &mut self.tls {
            tls.rebase(base);
        }
        self.include_paths.iter_mut().for_each(fix);
        if let Some(auth) = &mut self.auth {
            auth.files_mut().for_each(fix);
        }
        for proto in &mut self.protos {
            // A proto named relative to an import path (as `--proto` takes
            // it with `-I`) stays a name to resolve there.
            let in_includes = || {
                self.include_paths
                    .iter()
                    .any(|dir| dir.join(&*proto).is_file())
            };
            if proto.is_relative() && !base.join(&*proto).exists() && in_includes() {
                continue;
            }
            fix(proto);
        }
        for upstream in self.upstreams.values_mut() {
            if let Some(tls) = &mut upstream.tls {
                for p in [&mut tls.ca_file, &mut tls.cert_file, &mut tls.key_file]
                    .into_iter()
                    .flatten()
                {
                    fix(p);
                }
            }
        }
    }

    /// The files a change to which calls for a reload: the config file,
    /// descriptor sets, `.proto` files (those named directly; imports
    /// found on include paths are not watched), the listener's TLS files,
    /// upstream TLS files and `auth` key files.
    pub fn watched_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self.origin.iter().map(|o| o.path.clone()).collect();
        files.extend(self.descriptor_sets.iter().cloned());
        files.extend(self.tls.iter().flat_map(ListenerTls::files).cloned());
        files.extend(self.auth.iter().flat_map(|a| a.files()).cloned());
        for proto in &self.protos {
            let found = std::iter::once(proto.clone())
                .chain(self.include_paths.iter().map(|dir| dir.join(proto)))
                .find(|p| p.is_file());
            files.extend(found);
        }
        let tls = self
            .upstreams
            .values()
            .filter_map(|u| u.tls.as_ref())
            .chain(self.routes.iter().filter_map(|r| r.tls.as_ref()));
        for tls in tls {
            files.extend(
                [&tls.ca_file, &tls.cert_file, &tls.key_file]
                    .into_iter()
                    .flatten()
                    .cloned(),
            );
        }
        files
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::tempdir;

    #[test]
    fn file_error_names_file_line_column_and_key() {
        let tmp = tempdir();
        let dir = tmp.path();
        let path = dir.join("gateway.yaml");
        std::fs::write(&path, "upstreams:\n  books:\n    url: ftp://x\n").unwrap();
        let err = Config::from_file(&path).expect_err("bad url");
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "invalid config {}:3:10: upstreams.books.url: ",
                path.display()
            )),
            "{text}"
        );
    }

    #[test]
    fn missing_file_is_named() {
        let tmp = tempdir();
        let path = tmp.path().join("absent.yaml");
        let err = Config::from_file(&path).expect_err("missing");
        assert!(matches!(err, ConfigError::Read { .. }), "{err}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn relative_paths_are_relative_to_the_file() {
        let tmp = tempdir();
        let dir = tmp.path();
        let path = dir.join("gateway.yaml");
        std::fs::write(
            &path,
            "descriptor_sets: [api.pb, /abs/other.pb]\nprotos: [protos/a.proto]\ninclude_paths: [protos]\n\
             upstreams:\n  a:\n    url: https://127.0.0.1:1\n    tls: { ca_file: ca.pem }\n",
        )
        .unwrap();
        let config = Config::from_file(&path).expect("parses");
        assert_eq!(
            config.descriptor_sets,
            [dir.join("api.pb"), PathBuf::from("/abs/other.pb")]
        );
        assert_eq!(config.protos, [dir.join("protos/a.proto")]);
        assert_eq!(config.include_paths, [dir.join("protos")]);
        let tls = config.upstreams["a"].tls.as_ref().expect("tls");
        assert_eq!(tls.ca_file.as_deref(), Some(dir.join("ca.pem").as_path()));
    }

    #[test]
    fn proto_named_relative_to_an_include_path_stays_a_name() {
        let tmp = tempdir();
        let dir = tmp.path();
        std::fs::create_dir_all(dir.join("protos")).unwrap();
        std::fs::write(dir.join("protos/a.proto"), "syntax = \"proto3\";\n").unwrap();
        let path = dir.join("gateway.yaml");
        std::fs::write(&path, "protos: [a.proto]\ninclude_paths: [protos]\n").unwrap();
        let config = Config::from_file(&path).expect("parses");
        assert_eq!(config.protos, [PathBuf::from("a.proto")]);
        assert_eq!(config.include_paths, [dir.join("protos")]);
    }

    #[test]
    fn missing_proto_is_still_rebased_so_the_error_names_the_full_path() {
        let tmp = tempdir();
        let dir = tmp.path();
        let path = dir.join("gateway.yaml");
        std::fs::write(&path, "protos: [absent.proto]\n").unwrap();
        let config = Config::from_file(&path).expect("parses");
        assert_eq!(config.protos, [dir.join("absent.proto")]);
    }
}
