//! The Kubernetes manifests in `deploy/kubernetes/`, read as plain YAML
//! trees (every document of every file), and the parts of them the tests
//! compare: the protogate container, its ports, its config file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::support;

/// The folder of the manifests.
pub(crate) fn folder() -> PathBuf {
    support::repo().join("deploy/kubernetes")
}

/// One YAML document and the file it is in.
#[derive(Debug)]
pub(crate) struct Doc {
    pub(crate) file: String,
    pub(crate) value: Value,
}

/// Every document of every `.yaml` file in the folder, in file name order.
#[derive(Debug)]
pub(crate) struct Manifests {
    pub(crate) docs: Vec<Doc>,
}

impl Manifests {
    pub(crate) fn load() -> Manifests {
        let mut files: Vec<PathBuf> = std::fs::read_dir(folder())
            .expect("deploy/kubernetes/ exists")
            .map(|entry| entry.expect("folder entry").path())
            .filter(|path| {
                path.extension()
                    .is_some_and(|ext| ext == "yaml" || ext == "yml")
            })
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no manifests in {}", folder().display());
        let mut docs = Vec::new();
        for path in files {
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).expect("read manifest");
            let values: Vec<Value> = serde_saphyr::from_multiple(&text)
                .unwrap_or_else(|e| panic!("{file} does not parse as YAML: {e}"));
            assert!(!values.is_empty(), "{file} holds no document");
            for value in values {
                assert!(value.is_object(), "{file}: a document that is not a map");
                docs.push(Doc {
                    file: file.clone(),
                    value,
                });
            }
        }
        Manifests { docs }
    }

    /// Every document of `kind`.
    pub(crate) fn all(&self, kind: &str) -> Vec<&Value> {
        self.docs
            .iter()
            .filter(|doc| doc.value["kind"] == kind)
            .map(|doc| &doc.value)
            .collect()
    }

    /// The one document of `kind`.
    pub(crate) fn one(&self, kind: &str) -> &Value {
        let found = self.all(kind);
        assert_eq!(found.len(), 1, "one {kind} in deploy/kubernetes/");
        found[0]
    }

    /// The Deployment's protogate container.
    pub(crate) fn container(&self) -> &Value {
        let containers = array(self.one("Deployment"), "/spec/template/spec/containers");
        let found: Vec<&Value> = containers
            .iter()
            .filter(|c| c["name"] == "protogate")
            .collect();
        assert_eq!(found.len(), 1, "one container named protogate");
        found[0]
    }

    /// The container's port called `name`, or numbered so.
    pub(crate) fn container_port(&self, name_or_number: &Value) -> u16 {
        let ports = array(self.container(), "/ports");
        if let Some(number) = name_or_number.as_u64() {
            let number = u16::try_from(number).expect("port number");
            assert!(
                ports.iter().any(|p| p["containerPort"] == number),
                "port {number} is not among the container's ports"
            );
            return number;
        }
        let name = name_or_number
            .as_str()
            .expect("a port is a name or a number");
        let port = ports
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("the container has no port named {name:?}"));
        u16::try_from(uint(port, "/containerPort")).expect("port number")
    }

    /// The container's args.
    pub(crate) fn args(&self) -> Vec<String> {
        strings(self.container(), "/args")
    }

    /// The config file the container's args name (`--config FILE`).
    pub(crate) fn config_path(&self) -> PathBuf {
        config_flag(&self.args())
    }

    /// The ConfigMap entry that the Deployment mounts as the config file:
    /// the config's text. Panics, saying why, when the file the args name
    /// is not where a ConfigMap volume puts one of its keys.
    pub(crate) fn config_text(&self) -> String {
        let path = self.config_path();
        let (dir, key) = (path.parent().unwrap(), path.file_name().unwrap());
        let mount = array(self.container(), "/volumeMounts")
            .iter()
            .find(|m| Path::new(text(m, "/mountPath")) == dir)
            .unwrap_or_else(|| panic!("no volume is mounted at {}", dir.display()));
        assert!(
            mount.get("subPath").is_none() && mount.get("subPathExpr").is_none(),
            "the config is mounted with a subPath: the kubelet never updates such a mount, so a changed ConfigMap would not reach protogate"
        );
        let volume_name = text(mount, "/name");
        let volume = array(self.one("Deployment"), "/spec/template/spec/volumes")
            .iter()
            .find(|v| v["name"] == volume_name)
            .unwrap_or_else(|| panic!("the mount names no volume: {volume_name}"));
        let map_name = text(volume, "/configMap/name");
        assert!(
            volume.pointer("/configMap/items").is_none(),
            "`items` would rename the ConfigMap's keys: mount them as they are"
        );
        let map = self
            .all("ConfigMap")
            .into_iter()
            .find(|m| m["metadata"]["name"] == map_name)
            .unwrap_or_else(|| panic!("the volume names a ConfigMap that is not here: {map_name}"));
        let key = key.to_str().unwrap();
        text(map, &format!("/data/{key}")).to_owned()
    }
}

/// The value after `--config` (or in `--config=FILE`).
pub(crate) fn config_flag(args: &[String]) -> PathBuf {
    let at = args
        .iter()
        .position(|a| a == "--config" || a.starts_with("--config="))
        .unwrap_or_else(|| panic!("no --config in {args:?}"));
    match args[at].strip_prefix("--config=") {
        Some(value) => PathBuf::from(value),
        None => PathBuf::from(args.get(at + 1).expect("a value after --config")),
    }
}

/// The value at `pointer`, which must be there.
pub(crate) fn at<'a>(value: &'a Value, pointer: &str) -> &'a Value {
    value
        .pointer(pointer)
        .unwrap_or_else(|| panic!("{pointer} is missing in {}", name_of(value)))
}

pub(crate) fn text<'a>(value: &'a Value, pointer: &str) -> &'a str {
    at(value, pointer)
        .as_str()
        .unwrap_or_else(|| panic!("{pointer} is not a string"))
}

pub(crate) fn uint(value: &Value, pointer: &str) -> u64 {
    at(value, pointer)
        .as_u64()
        .unwrap_or_else(|| panic!("{pointer} is not a whole number"))
}

pub(crate) fn array<'a>(value: &'a Value, pointer: &str) -> &'a Vec<Value> {
    at(value, pointer)
        .as_array()
        .unwrap_or_else(|| panic!("{pointer} is not a list"))
}

pub(crate) fn strings(value: &Value, pointer: &str) -> Vec<String> {
    array(value, pointer)
        .iter()
        .map(|v| v.as_str().expect("a list of strings").to_owned())
        .collect()
}

/// `Kind/name`, for messages.
fn name_of(value: &Value) -> String {
    format!(
        "{}/{}",
        value["kind"].as_str().unwrap_or("?"),
        value["metadata"]["name"].as_str().unwrap_or("?")
    )
}

/// A Kubernetes CPU quantity (`2`, `"2"`, `"1500m"`) in millicores.
pub(crate) fn millicores(quantity: &Value) -> u64 {
    if let Some(whole) = quantity.as_u64() {
        return whole * 1000;
    }
    let text = quantity.as_str().expect("a CPU quantity");
    match text.strip_suffix('m') {
        Some(milli) => milli.parse().expect("millicores"),
        None => text.parse::<u64>().expect("whole CPUs") * 1000,
    }
}

/// A Kubernetes memory quantity with a binary suffix (`512Mi`), in bytes.
pub(crate) fn bytes(quantity: &Value) -> u64 {
    let text = quantity.as_str().expect("a memory quantity");
    let (number, shift) = [("Ki", 10), ("Mi", 20), ("Gi", 30)]
        .iter()
        .find_map(|(suffix, shift)| text.strip_suffix(suffix).map(|n| (n, *shift)))
        .unwrap_or((text, 0));
    number.parse::<u64>().expect("a whole quantity") << shift
}

/// Whole seconds of a Kubernetes `...Seconds` field.
pub(crate) fn seconds(value: &Value, pointer: &str) -> Duration {
    Duration::from_secs(uint(value, pointer))
}
