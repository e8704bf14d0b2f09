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

pub mod config;
pub mod demo;
pub mod descriptor;
pub mod error;
pub mod http_rule;
pub mod route;
pub mod server;
pub mod snapshot;
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
/// `config.listen`.
pub async fn start(config: &Config) -> Result<Server, StartError> {
    install_crypto_provider();
    let snapshot = Snapshot::build(config)?;
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
    let options = ListenerOptions {
        max_header_bytes: config.limits.max_header_bytes,
        max_headers: config.limits.max_headers,
        idle_timeout: config.timeouts.idle,
        max_connections: config.limits.max_connections,
        cors: config.cors.clone(),
        ..ListenerOptions::default()
    };
    Server::start(listener, Gateway::new(snapshot), options).map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })
}
