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
        let bytes = std::fs::read(path).map_err(|source| DescriptorError::Read {
            path: path.clone(),
            source,
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

    /// Adds files; a name seen before keeps its first file.
    fn add_files(&mut self, files: impl IntoIterator<Item = RawFile>, source_name: &str) {
        for file in files {
            if let Some(existing) = self.by_name.get(&file.name) {
                // Copies of the shared Google definitions differ in comments
                // and options from build to build; that is no news.
                let shared = file.name.starts_with("google/");
                if existing.bytes != file.bytes && !shared {
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
            builder.add(name, None)?;
        }
        for name in bundled::ALWAYS {
            builder.add(name, None)?;
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
    /// Adds `name` after its imports (depth first).
    fn add(&mut self, name: &str, importer: Option<&str>) -> Result<(), DescriptorError> {
        if self.added.contains_key(name) {
            // Added already, or an import cycle the pool will reject.
            return Ok(());
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
        for import in &file.imports {
            self.add(import, Some(name))?;
        }
        self.pool
            .decode_file_descriptor_proto(file.bytes.clone())
            .map_err(|e| DescriptorError::Invalid {
                file: name.to_owned(),
                reason: e.to_string(),
            })?;
        self.added.insert(name.to_owned(), true);
        self.files.push(file);
        Ok(())
    }
}
