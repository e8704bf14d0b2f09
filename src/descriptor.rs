//! Descriptor sources — descriptor sets, `.proto` files, embedded sets — merged
//! into one `DescriptorPool`, with the bundled `google/api`, `google/rpc` and
//! well-known files filling in whatever the sources do not carry.
//!
//! Files are added as encoded bytes straight into the pool (never through
//! `prost_types`, which drops custom options). When two sources carry a file
//! of the same name, the first one wins.

mod bundled;
mod compile;
pub mod reflection;
mod set;

use std::collections::HashMap;
use std::path::PathBuf;

use bytes::Bytes;
use prost_reflect::DescriptorPool;

pub use set::RawFile;

/// Where descriptors come from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// Binary `FileDescriptorSet` files.
    pub descriptor_sets: Vec<PathBuf>,
    /// `.proto` files compiled at startup.
    pub protos: Vec<PathBuf>,
    /// Import paths for `protos`.
    pub include_paths: Vec<PathBuf>,
    /// Encoded `FileDescriptorSet`s given in memory (the demo, tests).
    pub embedded: Vec<Bytes>,
    /// Upstreams asked for their descriptors by server reflection. With
    /// any, an empty pool is fine: they may not have answered yet.
    pub reflecting: Vec<String>,
    /// What those that answered sent.
    pub reflected: Vec<Reflected>,
}

/// What one upstream's server reflection sent.
#[derive(Debug, Clone)]
pub struct Reflected {
    /// The upstream's name.
    pub upstream: String,
    /// The services it lists and described (gRPC's own reflection and
    /// health services left out).
    pub services: Vec<String>,
    /// The files defining them, with their imports.
    pub files: Vec<RawFile>,
    /// Services it lists but would not describe, each with its answer
    /// (`shop.v1.Ghost: NotFound: ...`): served without them.
    pub skipped: Vec<String>,
}

impl Sources {
    /// Whether no source is given.
    pub fn is_empty(&self) -> bool {
        self.descriptor_sets.is_empty()
            && self.protos.is_empty()
            && self.embedded.is_empty()
            && self.reflecting.is_empty()
    }
}

/// A loaded pool and the files it was built from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The pool.
    pub pool: DescriptorPool,
    /// Every file in the pool as its original bytes, imports first, as an
    /// encoded `FileDescriptorSet` (what the gateway's own server
    /// reflection answers with).
    pub set: Bytes,
}

/// Descriptors that cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DescriptorError {
    /// No source given.
    #[error(
        "no descriptors given: pass --descriptor-set FILE, --proto FILE, or --upstream URL --reflect \
         (in a config file: `descriptor_sets`, `protos`, or an upstream with `descriptors: reflection`)"
    )]
    Empty,
    /// A descriptor set file cannot be read.
    #[error("cannot read descriptor set {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A descriptor set is not a valid encoded `FileDescriptorSet`.
    #[error("{source_name} is not a valid FileDescriptorSet: {reason}")]
    Corrupt {
        /// The file or source.
        source_name: String,
        /// The decode error.
        reason: String,
    },
    /// A `.proto` file does not compile.
    #[error("{0}")]
    Compile(String),
    /// A file imports one that no source carries.
    #[error(
        "{file} imports {import}, which no descriptor source contains (build descriptor sets with --include_imports)"
    )]
    MissingImport {
        /// The importing file.
        file: String,
        /// The missing import.
        import: String,
    },
    /// A file is structurally invalid (unknown type, duplicate name, ...).
    #[error("invalid descriptor {file}: {reason}")]
    Invalid {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
}

/// Loads every source into one pool.
pub fn load(sources: &Sources) -> Result<DescriptorPool, DescriptorError> {
    load_files(sources).map(|loaded| loaded.pool)
}

/// Loads every source into one pool, keeping the files' bytes.
pub fn load_files(sources: &Sources) -> Result<Loaded, DescriptorError> {
    if sources.is_empty() {
        return Err(DescriptorError::Empty);
    }
    let mut files = Files::default();
    for set in &sources.embedded {
        files.add_set(set.clone(), "embedded descriptor set")?;
    }
    for path in &sources.descriptor_sets {
        let limit = crate::files::MAX_DESCRIPTOR_SET_BYTES;
        let bytes = crate::files::read(path, limit, "a descriptor set").map_err(|source| {
            DescriptorError::Read {
                path: path.clone(),
                source,
            }
        })?;
        let name = path.display().to_string();
        files
            .add_set(bytes.into(), &name)
            .map_err(|err| match err {
                DescriptorError::Corrupt {
                    source_name,
                    reason,
                } if is_proto_source(path) => DescriptorError::Corrupt {
                    source_name,
                    reason: format!("{reason} (a .proto source? pass it with --proto)"),
                },
                other => other,
            })?;
    }
    if !sources.protos.is_empty() {
        let set = compile::compile(&sources.protos, &sources.include_paths)
            .map_err(DescriptorError::Compile)?;
        files.add_set(set.into(), "compiled .proto files")?;
    }
    for reflected in &sources.reflected {
        let source = format!("upstream `{}` (server reflection)", reflected.upstream);
        files.add_files(reflected.files.iter().cloned(), &source);
    }
    files.into_pool()
}

fn is_proto_source(path: &std::path::Path) -> bool {
    path.extension().is_some_and(|ext| ext == "proto")
}

/// Files by name, in the order sources gave them, plus the bundled ones.
#[derive(Default)]
struct Files {
    order: Vec<String>,
    by_name: HashMap<String, RawFile>,
}

impl Files {
    fn add_set(&mut self, set: Bytes, source_name: &str) -> Result<(), DescriptorError> {
        let corrupt = |reason: String| DescriptorError::Corrupt {
            source_name: source_name.to_owned(),
            reason,
        };
        let files = set::split(set).map_err(|e| corrupt(e.to_string()))?;
        // An empty file decodes as a set without files: a failed build,
        // not a set to serve.
        if files.is_empty() {
            return Err(corrupt("it contains no files".to_owned()));
        }
        if files.iter().any(|f| f.name.is_empty()) {
            return Err(corrupt("a file in it has no name".to_owned()));
        }
        self.add_files(files, source_name);
        Ok(())
    }

    /// Adds files; a name seen before keeps its first file, unless the
    /// new one is a fuller version of it (defines all it does, and more).
    fn add_files(&mut self, files: impl IntoIterator<Item = RawFile>, source_name: &str) {
        for file in files {
            if let Some(existing) = self.by_name.get_mut(&file.name) {
                // Copies of the shared Google definitions differ in comments
                // and options from build to build; that is no news.
                let shared = file.name.starts_with("google/");
                if existing.bytes == file.bytes || shared {
                    continue;
                }
                if set::covers(&file, existing) && !set::covers(existing, &file) {
                    // Two versions of a file shared by services (a common
                    // types file), one newer: the newer serves both.
                    tracing::warn!(
                        file = %file.name,
                        source = source_name,
                        "Descriptor file given twice with different contents; keeping this one, which defines all the first does and more"
                    );
                    *existing = file;
                } else {
                    tracing::warn!(
                        file = %file.name,
                        source = source_name,
                        "Descriptor file given twice with different contents; keeping the first"
                    );
                }
                continue;
            }
            self.order.push(file.name.clone());
            self.by_name.insert(file.name.clone(), file);
        }
    }

    fn into_pool(self) -> Result<Loaded, DescriptorError> {
        let bundled: HashMap<String, RawFile> =
            set::split(Bytes::from_static(bundled::DESCRIPTOR_SET))
                .map_err(|e| DescriptorError::Corrupt {
                    source_name: "bundled descriptors".to_owned(),
                    reason: e.to_string(),
                })?
                .into_iter()
                .map(|f| (f.name.clone(), f))
                .collect();
        let mut builder = PoolBuilder {
            pool: DescriptorPool::new(),
            user: &self.by_name,
            bundled: &bundled,
            added: HashMap::new(),
            files: Vec::new(),
        };
        for name in &self.order {
            builder.add(name)?;
        }
        for name in bundled::ALWAYS {
            builder.add(name)?;
        }
        Ok(Loaded {
            set: set::join(builder.files.iter().copied()),
            pool: builder.pool,
        })
    }
}

struct PoolBuilder<'a> {
    pool: DescriptorPool,
    user: &'a HashMap<String, RawFile>,
    bundled: &'a HashMap<String, RawFile>,
    /// `false` while a file's imports are being added, `true` once added.
    added: HashMap<String, bool>,
    /// The files added, in order.
    files: Vec<&'a RawFile>,
}

impl<'a> PoolBuilder<'a> {
    /// Adds `name` after its imports, depth first, on a stack of its own:
    /// an import chain thousands of files long (a reflecting backend can
    /// send one) would overflow the thread's.
    fn add(&mut self, name: &str) -> Result<(), DescriptorError> {
        // Each file being added, with the index of its next import.
        let mut stack: Vec<(&'a RawFile, usize)> = Vec::new();
        self.enter(name, None, &mut stack)?;
        while let Some(&(file, next)) = stack.last() {
            if let Some(import) = file.imports.get(next) {
                if let Some(top) = stack.last_mut() {
                    top.1 += 1;
                }
                self.enter(import, Some(&file.name), &mut stack)?;
                continue;
            }
            stack.pop();
            if let Some(why) = &file.unsupported {
                // Checked here: prost-reflect panics on such a file.
                return Err(DescriptorError::Invalid {
                    file: file.name.clone(),
                    reason: why.clone(),
                });
            }
            self.pool
                .decode_file_descriptor_proto(file.bytes.clone())
                .map_err(|e| DescriptorError::Invalid {
                    file: file.name.clone(),
                    reason: e.to_string(),
                })?;
            self.added.insert(file.name.clone(), true);
            self.files.push(file);
        }
        Ok(())
    }

    /// Starts adding `name` (imported by `importer`) unless it is added
    /// already; refuses an import cycle, naming the files in it.
    fn enter(
        &mut self,
        name: &str,
        importer: Option<&str>,
        stack: &mut Vec<(&'a RawFile, usize)>,
    ) -> Result<(), DescriptorError> {
        match self.added.get(name) {
            Some(true) => return Ok(()),
            Some(false) => {
                let from = stack.iter().position(|(f, _)| f.name == name).unwrap_or(0);
                let mut cycle: Vec<&str> = stack[from..].iter().map(|(f, _)| &*f.name).collect();
                cycle.push(name);
                return Err(DescriptorError::Invalid {
                    file: name.to_owned(),
                    reason: format!(
                        "its imports go round in a cycle: {}",
                        cycle.join(" imports ")
                    ),
                });
            }
            None => {}
        }
        let file: &'a RawFile = self
            .user
            .get(name)
            .or_else(|| self.bundled.get(name))
            .ok_or_else(|| DescriptorError::MissingImport {
                file: importer.unwrap_or("a descriptor source").to_owned(),
                import: name.to_owned(),
            })?;
        self.added.insert(name.to_owned(), false);
        stack.push((file, 0));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;
    use prost_types::{DescriptorProto, FileDescriptorProto, FileDescriptorSet};

    use super::*;

    fn set(files: Vec<FileDescriptorProto>) -> Bytes {
        FileDescriptorSet { file: files }.encode_to_vec().into()
    }

    /// A set of encoded files; `edition`'s field (14) is not in
    /// prost-types, so it is appended to the encoded file.
    fn set_with_edition(files: Vec<FileDescriptorProto>, edition: (&str, i32)) -> Bytes {
        let mut out = Vec::new();
        for file in files {
            let mut bytes = file.encode_to_vec();
            if file.name.as_deref() == Some(edition.0) {
                prost::encoding::int32::encode(14, &edition.1, &mut bytes);
            }
            prost::encoding::bytes::encode(1, &bytes, &mut out);
        }
        out.into()
    }

    fn file(name: &str, imports: &[&str]) -> FileDescriptorProto {
        FileDescriptorProto {
            name: Some(name.to_owned()),
            package: Some(format!("p{}", name.len())),
            dependency: imports.iter().map(|i| (*i).to_owned()).collect(),
            message_type: vec![DescriptorProto {
                name: Some(name.replace(['/', '.'], "_")),
                ..DescriptorProto::default()
            }],
            syntax: Some("proto3".to_owned()),
            ..FileDescriptorProto::default()
        }
    }

    fn load_set(set: Bytes) -> Result<Loaded, DescriptorError> {
        load_files(&Sources {
            embedded: vec![set],
            ..Sources::default()
        })
    }

    /// prost-reflect panics on a syntax it does not know: such files are
    /// refused first, saying what they are.
    #[test]
    fn editions_and_unknown_syntaxes_are_refused_not_a_panic() {
        let editions = FileDescriptorProto {
            syntax: Some("editions".to_owned()),
            ..file("e.proto", &[])
        };
        let err = load_set(set_with_edition(vec![editions], ("e.proto", 1000)))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("e.proto") && err.contains("editions file (edition 2023)"),
            "{err}"
        );
        for syntax in ["proto4", ""] {
            let odd = FileDescriptorProto {
                syntax: Some(syntax.to_owned()),
                ..file("odd.proto", &[])
            };
            let err = load_set(set(vec![odd])).unwrap_err().to_string();
            assert!(err.contains(&format!("its syntax is `{syntax}`")), "{err}");
        }
        // Imported by a good file: still named.
        let editions = FileDescriptorProto {
            syntax: Some("editions".to_owned()),
            ..file("dep.proto", &[])
        };
        let files = vec![file("top.proto", &["dep.proto"]), editions];
        let err = load_set(set_with_edition(files, ("dep.proto", 1001)))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("dep.proto") && err.contains("edition 2024"),
            "{err}"
        );
    }

    /// A chain of imports thousands of files long (a reflecting backend
    /// may send one) loads on a small stack: files are added without
    /// recursion.
    #[test]
    fn a_long_import_chain_needs_no_deep_stack() {
        const FILES: usize = 8000;
        let files: Vec<FileDescriptorProto> = (0..FILES)
            .map(|i| {
                let next = format!("c/f{}.proto", i + 1);
                let imports: &[&str] = if i + 1 < FILES { &[&next] } else { &[] };
                FileDescriptorProto {
                    package: Some(format!("c{i}")),
                    ..file(&format!("c/f{i}.proto"), imports)
                }
            })
            .collect();
        let set = set(files);
        let loaded = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || load_set(set).map(|l| l.pool.files().count()))
            .unwrap()
            .join()
            .expect("no stack overflow");
        assert!(loaded.unwrap() >= FILES);
    }

    /// Two services sharing a types file at two versions, the second only
    /// adding to the first (as shared protos evolve): the fuller version
    /// serves both, whichever comes first; neither service is lost.
    #[test]
    fn the_fuller_version_of_a_shared_file_is_kept() {
        use prost_types::{FieldDescriptorProto, MethodDescriptorProto, ServiceDescriptorProto};
        let message = |name: &str| DescriptorProto {
            name: Some(name.to_owned()),
            field: vec![FieldDescriptorProto {
                name: Some("id".to_owned()),
                number: Some(1),
                label: Some(1),
                r#type: Some(9),
                json_name: Some("id".to_owned()),
                ..FieldDescriptorProto::default()
            }],
            ..DescriptorProto::default()
        };
        let common = |messages: &[&str]| FileDescriptorProto {
            name: Some("common.proto".to_owned()),
            package: Some("shared.v1".to_owned()),
            message_type: messages.iter().map(|m| message(m)).collect(),
            syntax: Some("proto3".to_owned()),
            ..FileDescriptorProto::default()
        };
        let service = |file: &str, name: &str, uses: &str| FileDescriptorProto {
            name: Some(file.to_owned()),
            package: Some(format!("svc.{name}")),
            dependency: vec!["common.proto".to_owned()],
            service: vec![ServiceDescriptorProto {
                name: Some(name.to_owned()),
                method: vec![MethodDescriptorProto {
                    name: Some("Get".to_owned()),
                    input_type: Some(format!(".shared.v1.{uses}")),
                    output_type: Some(format!(".shared.v1.{uses}")),
                    ..MethodDescriptorProto::default()
                }],
                ..ServiceDescriptorProto::default()
            }],
            syntax: Some("proto3".to_owned()),
            ..FileDescriptorProto::default()
        };
        let older = set(vec![common(&["X"]), service("a.proto", "A", "X")]);
        let newer = set(vec![common(&["X", "Y"]), service("b.proto", "B", "Y")]);
        for embedded in [vec![older.clone(), newer.clone()], vec![newer, older]] {
            let loaded = load_files(&Sources {
                embedded,
                ..Sources::default()
            })
            .expect("both load");
            for name in ["svc.A.A", "svc.B.B"] {
                assert!(loaded.pool.get_service_by_name(name).is_some(), "{name}");
            }
        }
    }

    /// Files that import each other are refused, naming the cycle.
    #[test]
    fn an_import_cycle_is_named() {
        let files = vec![
            file("a.proto", &["b.proto"]),
            file("b.proto", &["c.proto"]),
            file("c.proto", &["a.proto"]),
        ];
        let err = load_set(set(files)).unwrap_err().to_string();
        assert!(
            err.contains("a.proto imports b.proto imports c.proto imports a.proto"),
            "{err}"
        );
    }

    /// The same for `.proto` files, whose compiler follows imports by
    /// recursion: it runs on a thread of its own with room for it.
    #[test]
    fn a_long_chain_of_proto_files_compiles_from_a_small_stack() {
        const FILES: usize = 2000;
        let dir = tempfile::tempdir().unwrap();
        for i in 0..FILES {
            let import = if i + 1 < FILES {
                format!("import \"f{}.proto\";\n", i + 1)
            } else {
                String::new()
            };
            let source = format!("syntax = \"proto3\";\npackage c{i};\n{import}message M {{}}\n");
            std::fs::write(dir.path().join(format!("f{i}.proto")), source).unwrap();
        }
        let sources = Sources {
            protos: vec![PathBuf::from("f0.proto")],
            include_paths: vec![dir.path().to_owned()],
            ..Sources::default()
        };
        let loaded = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || load_files(&sources).map(|l| l.pool.files().count()))
            .unwrap()
            .join()
            .expect("no stack overflow");
        assert!(loaded.unwrap() >= FILES);
    }
}
