//! The container image and the Kubernetes manifests, made trustworthy
//! without a cluster or a container runtime: every manifest parses, the
//! config in the ConfigMap loads and validates with protogate's own loader,
//! the Deployment, the Services and the Dockerfile agree with that config
//! and with each other, and the built binary, run with the Deployment's
//! args and the ConfigMap's config (addresses moved to loopback), answers
//! the probes, reloads when the ConfigMap's files are swapped as the
//! kubelet swaps them, and stops cleanly on SIGTERM within the grace
//! period.

mod support;

#[path = "deploy/dockerfile.rs"]
mod dockerfile;
#[path = "deploy/manifests.rs"]
mod manifests;
#[allow(dead_code)]
#[path = "cli/process.rs"]
mod process;
#[path = "deploy/served.rs"]
mod served;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use manifests::{Manifests, array, at, bytes, millicores, seconds, strings, text, uint};
use protogate::Config;

/// The ConfigMap's config, loaded from a file as protogate loads it.
fn deployed_config(manifests: &Manifests) -> Config {
    let dir = support::tempdir();
    let name = manifests.config_path();
    let path = dir.join(name.file_name().unwrap());
    std::fs::write(&path, manifests.config_text()).expect("write config");
    let config = Config::from_file(&path).unwrap_or_else(|e| panic!("the ConfigMap's config: {e}"));
    config
        .validate()
        .unwrap_or_else(|e| panic!("the ConfigMap's config: {e}"));
    config
}

/// The admin listener's address, which the probes need.
fn admin_listen(config: &Config) -> SocketAddr {
    config
        .admin
        .listen
        .expect("the config turns the admin listener on: the probes ask it")
}

#[test]
fn every_manifest_parses_and_names_its_kind() {
    let manifests = Manifests::load();
    for doc in &manifests.docs {
        for key in ["/apiVersion", "/kind", "/metadata/name"] {
            assert!(
                doc.value.pointer(key).and_then(|v| v.as_str()).is_some(),
                "{}: a document without {key}",
                doc.file
            );
        }
    }
    for kind in ["ConfigMap", "Deployment", "PodDisruptionBudget"] {
        manifests.one(kind);
    }
    assert!(!manifests.all("Service").is_empty(), "no Service");
}

#[test]
fn the_configmap_config_loads_and_listens_beyond_loopback() {
    let manifests = Manifests::load();
    let config = deployed_config(&manifests);
    for (key, addr) in [
        ("listen", config.listen),
        ("admin.listen", admin_listen(&config)),
    ] {
        assert!(
            addr.ip().is_unspecified(),
            "{key} is {addr}: the Service and the kubelet's probes come in on the pod's address"
        );
    }
    assert_eq!(
        config.upstreams.len(),
        1,
        "one upstream, for the user to point"
    );
}

#[test]
fn the_deployment_agrees_with_the_config() {
    let manifests = Manifests::load();
    let config = deployed_config(&manifests);
    let container = manifests.container();

    // Its ports are the listeners', and nothing else.
    let declared: BTreeSet<u16> = array(container, "/ports")
        .iter()
        .map(|p| u16::try_from(uint(p, "/containerPort")).unwrap())
        .collect();
    let admin = admin_listen(&config).port();
    let listened = BTreeSet::from([config.listen.port(), admin]);
    assert_eq!(
        declared, listened,
        "containerPorts against listen and admin.listen"
    );

    // The probes ask the admin listener its real paths.
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let get = at(container, &format!("/{probe}/httpGet"));
        assert_eq!(text(get, "/path"), path, "{probe} path");
        assert_eq!(
            manifests.container_port(at(get, "/port")),
            admin,
            "{probe} port"
        );
        assert!(
            get.get("scheme").is_none_or(|s| s == "HTTP"),
            "{probe}: the admin listener speaks cleartext HTTP"
        );
    }

    // The kubelet waits for the preStop sleep and then protogate's own wait
    // for requests in flight before it kills the pod.
    let grace = seconds(
        manifests.one("Deployment"),
        "/spec/template/spec/terminationGracePeriodSeconds",
    );
    let pre_stop = container
        .pointer("/lifecycle/preStop/sleep/seconds")
        .map_or(Duration::ZERO, |_| {
            seconds(container, "/lifecycle/preStop/sleep/seconds")
        });
    assert!(
        grace > pre_stop + config.timeouts.shutdown,
        "terminationGracePeriodSeconds ({grace:?}) must be more than the preStop sleep ({pre_stop:?}) and timeouts.shutdown ({:?})",
        config.timeouts.shutdown
    );

    // Workers follow the CPU limit (rounded down): a whole number wastes
    // none of the quota.
    let cpu = millicores(at(container, "/resources/limits/cpu"));
    assert!(
        cpu >= 1000 && cpu.is_multiple_of(1000),
        "a CPU limit of whole CPUs, not {cpu}m"
    );
    let memory = bytes(at(container, "/resources/limits/memory"));
    let buffered = config.limits.max_buffered_body_bytes as u64;
    assert!(
        buffered < memory / 2,
        "limits.max_buffered_body_bytes ({buffered}) leaves too little of the memory limit ({memory})"
    );

    // Locked down, as the image allows.
    let pod = at(
        manifests.one("Deployment"),
        "/spec/template/spec/securityContext",
    );
    assert_eq!(at(pod, "/runAsNonRoot"), true);
    let security = at(container, "/securityContext");
    assert_eq!(at(security, "/readOnlyRootFilesystem"), true);
    assert_eq!(at(security, "/allowPrivilegeEscalation"), false);
    assert_eq!(strings(security, "/capabilities/drop"), ["ALL"]);
    let image = text(container, "/image");
    assert!(
        image.ends_with(&format!(":{}", env!("CARGO_PKG_VERSION"))),
        "{image}: the image tag is the crate's version"
    );
}

#[test]
fn services_and_the_budget_select_the_pods_and_their_ports() {
    let manifests = Manifests::load();
    let deployment = manifests.one("Deployment");
    let labels = at(deployment, "/spec/template/metadata/labels")
        .as_object()
        .expect("pod labels");
    let selects_pods = |selector: &serde_json::Value, what: &str| {
        let selector = selector.as_object().expect("a selector map");
        assert!(!selector.is_empty(), "{what} selects everything");
        for (key, value) in selector {
            assert_eq!(labels.get(key), Some(value), "{what} selector {key}");
        }
    };
    selects_pods(
        at(deployment, "/spec/selector/matchLabels"),
        "the Deployment",
    );
    selects_pods(
        at(
            manifests.one("PodDisruptionBudget"),
            "/spec/selector/matchLabels",
        ),
        "the PodDisruptionBudget",
    );
    let config = deployed_config(&manifests);
    let mut served = BTreeSet::new();
    for service in manifests.all("Service") {
        selects_pods(at(service, "/spec/selector"), "a Service");
        for port in array(service, "/spec/ports") {
            let target = port.get("targetPort").unwrap_or(at(port, "/port"));
            served.insert(manifests.container_port(target));
        }
    }
    let admin = admin_listen(&config).port();
    assert_eq!(served, BTreeSet::from([config.listen.port(), admin]));
    // The admin port (no authentication) is not on the clients' Service.
    for service in manifests.all("Service") {
        let ports: BTreeSet<u16> = array(service, "/spec/ports")
            .iter()
            .map(|p| manifests.container_port(p.get("targetPort").unwrap_or(&p["port"])))
            .collect();
        assert!(
            !(ports.contains(&admin) && ports.contains(&config.listen.port())),
            "{}: the admin port shares a Service with the clients' port",
            text(service, "/metadata/name")
        );
    }
}

#[test]
fn the_dockerfile_agrees_with_the_deployment() {
    let manifests = Manifests::load();
    let config = deployed_config(&manifests);
    let stages = dockerfile::stages();
    assert!(stages.len() >= 2, "a build stage and a runtime stage");
    let (build, runtime) = (&stages[0], stages.last().unwrap());

    // The toolchain the crate declares, on the Debian the runtime is.
    let rust = format!("rust:{}-bookworm", env!("CARGO_PKG_RUST_VERSION"));
    assert_eq!(build.image, rust, "the build stage's image");
    assert!(
        runtime.image.contains("debian12") || runtime.image.contains("bookworm"),
        "{}: the runtime is Debian 12 (bookworm), whose glibc the binary is built against",
        runtime.image
    );
    assert!(
        build
            .all("RUN")
            .iter()
            .any(|run| run.args.contains("cargo build --release --locked")),
        "the build stage runs `cargo build --release --locked`"
    );

    // The ports, the command and the user the Deployment relies on.
    let exposed: BTreeSet<u16> = runtime
        .all("EXPOSE")
        .iter()
        .flat_map(|e| e.args.split_whitespace())
        .map(|p| p.trim_end_matches("/tcp").parse().expect("EXPOSE port"))
        .collect();
    let admin = admin_listen(&config).port();
    assert_eq!(
        exposed,
        BTreeSet::from([config.listen.port(), admin]),
        "EXPOSE"
    );
    let entrypoint = runtime.exec_form("ENTRYPOINT");
    assert_eq!(entrypoint, ["protogate"], "ENTRYPOINT");
    let binary = runtime
        .all("COPY")
        .into_iter()
        .map(dockerfile::copy)
        .find(|c| c.from.as_deref() == build.name.as_deref() && c.from.is_some())
        .expect("the runtime stage copies the binary from the build stage");
    let dest = std::path::Path::new(&binary.dest);
    assert_eq!(dest.file_name().unwrap(), "protogate", "the binary's name");
    assert!(
        ["/usr/local/bin", "/usr/bin", "/bin"].contains(&dest.parent().unwrap().to_str().unwrap()),
        "{}: the ENTRYPOINT finds the binary on PATH",
        binary.dest
    );
    // The Deployment spells out the image's default command, config path
    // included (`config_text` checks that the ConfigMap is mounted there).
    let cmd = runtime.exec_form("CMD");
    assert_eq!(cmd, manifests.args(), "CMD against the Deployment's args");
    assert_eq!(
        manifests::config_flag(&cmd),
        manifests.config_path(),
        "the default config path"
    );
    let user = &runtime.last("USER").args;
    let (uid, gid) = user.split_once(':').unwrap_or((user, user));
    let pod = at(
        manifests.one("Deployment"),
        "/spec/template/spec/securityContext",
    );
    let uid: u64 = uid
        .parse()
        .expect("USER is numeric (runAsNonRoot cannot check a name)");
    assert_ne!(uid, 0, "USER is not root");
    assert_eq!(uid, uint(pod, "/runAsUser"), "USER against runAsUser");
    assert_eq!(
        gid.parse::<u64>().ok(),
        Some(uint(pod, "/runAsGroup")),
        "USER's group"
    );
    assert_eq!(runtime.last("STOPSIGNAL").args, "SIGTERM");
}

#[test]
fn the_image_build_copies_what_the_build_reads() {
    let stages = dockerfile::stages();
    let copied: Vec<String> = stages[0]
        .all("COPY")
        .into_iter()
        .map(dockerfile::copy)
        .filter(|c| c.from.is_none())
        .flat_map(|c| c.sources)
        .collect();
    for source in &copied {
        assert!(
            support::repo().join(source).exists(),
            "COPY {source}: no such file in the repository"
        );
        assert!(
            !dockerfile::ignored(source),
            "COPY {source}: .dockerignore keeps it out of the build context"
        );
    }
    let covered = |path: &str| {
        copied
            .iter()
            .any(|c| path == c || path.starts_with(&format!("{}/", c.trim_end_matches('/'))))
    };
    for needed in ["Cargo.toml", "Cargo.lock", "build.rs", "src"] {
        assert!(covered(needed), "the build stage does not copy {needed}");
    }
    for input in dockerfile::build_script_inputs() {
        assert!(
            covered(&input),
            "build.rs reads {input}, which the build stage does not copy"
        );
    }
}
