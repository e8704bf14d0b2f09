//! protogate: a gRPC-to-REST gateway.
//!
//! Point it at protobuf descriptors (a descriptor set or `.proto` files); it
//! reads the `google.api.http` annotations, serves each annotated method as
//! a JSON REST route, transcodes JSON to protobuf and back, and forwards
//! the call to gRPC backends over pooled channels.
//!
//! ```no_run
//! # async fn run() -> Result<(), protogate::StartError> {
//! let mut config = protogate::Config::default();
//! config.descriptor_sets.push("api.pb".into());
//! config.upstreams.insert("default".into(), protogate::UpstreamConfig::new("http://127.0.0.1:50051"));
//! let server = protogate::start(&config).await?;
//! println!("serving on {}", server.local_addr());
//! server.wait().await;
//! # Ok(())
//! # }
//! ```

pub mod admin;
pub mod auth;
pub mod bench;
pub mod config;
pub mod demo;
pub mod descriptor;
pub mod error;
mod files;
pub mod http_rule;
pub mod metrics;
mod rate_limit;
pub mod reload;
pub mod route;
pub mod server;
pub mod snapshot;
mod throttle;
mod tls;
pub mod trace;
pub mod transcode;
pub mod upstream;

pub use config::{Config, UpstreamConfig};
pub use error::GatewayError;
pub use server::{Gateway, ListenerOptions, Server};
pub use snapshot::{Snapshot, SnapshotError};

/// The gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Config, descriptors or routes are unusable.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// The config cannot be read.
    #[error("{0}")]
    Config(String),
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Installs the process-wide TLS crypto provider (ring). Safe to call more
/// than once.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Builds the snapshot for `config` and starts listening on
/// `config.listen` (and `admin.listen`), with TLS when `config.tls` is
/// set. The config stays as given; reloads (`Server::reloader`) pick up
/// changed descriptor and certificate files and what reflecting upstreams
/// send.
pub async fn start(config: &Config) -> Result<Server, StartError> {
    let fixed = config.clone();
    start_with(Box::new(move || Ok(fixed.clone()))).await
}

/// [`start`] with a config that `source` reads again on every reload (the
/// config file, with flags applied).
pub async fn start_with(source: reload::ConfigSource) -> Result<Server, StartError> {
    install_crypto_provider();
    let config = source().map_err(StartError::Config)?;
    let (snapshot, first) = reload::Reloader::first_snapshot(&config).await?;
    // Unusable certificate files stop the start, as other bad files do.
    let tls = config
        .tls
        .as_ref()
        .map(tls::ServerTls::load)
        .transpose()
        .map_err(SnapshotError::ListenerTls)?
        .map(std::sync::Arc::new);
    let routes = snapshot.routes.routes().len();
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    tracing::info!(
        routes,
        upstreams = snapshot.upstreams.len(),
        "Descriptors loaded"
    );
    let options = ListenerOptions::of(&config);
    let gateway = Gateway::with_readiness(snapshot, false);
    let reloader = reload::Reloader::new(gateway.clone(), source);
    if let Some(tls) = &tls {
        reloader.reload_listener_tls(tls.clone());
    }
    reloader.started(&config, first);
    let mut tasks = Vec::new();
    let admin_addr = match config.admin.listen {
        Some(addr) => {
            let admin = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind { addr, source })?;
            let bound = admin
                .local_addr()
                .map_err(|source| StartError::Bind { addr, source })?;
            let router = admin::router(gateway.clone(), reloader.clone());
            tasks.push(tokio::spawn(async move {
                if let Err(err) = axum::serve(admin, router).await {
                    tracing::warn!(error = %err, "Admin listener stopped");
                }
            }));
            tracing::info!(addr = %bound, "Admin listening");
            Some(bound)
        }
        None => None,
    };
    // Cheap while idle, and a reload may add what they look after.
    tasks.push(tokio::spawn(reloader.clone().retry_missing()));
    tasks.push(tokio::spawn(reloader.clone().refresh()));
    match reloader.watch() {
        Ok(task) => tasks.push(task),
        Err(err) => {
            tracing::warn!(error = %err, "Cannot watch config and descriptor files; reload with SIGHUP or POST /admin/reload");
        }
    }
    let server = Server::start_with_tls(listener, gateway, options, tls).map_err(|source| {
        StartError::Bind {
            addr: config.listen,
            source,
        }
    })?;
    Ok(server.with_reloading(server::Reloading {
        reloader,
        admin_addr,
        tasks,
    }))
}
