//! protogate inside your own program: a tonic gRPC service and its REST
//! face in one process, no binary or config file.
//!
//!     cargo run --example embedded
//!     curl -s http://127.0.0.1:8080/v1/shelves
//!
//! The service here is the demo bookshop (`proto/protogate/demo/v1/`); put
//! yours in its place. The gateway needs the service's descriptors with
//! their `google.api.http` options: have `tonic-prost-build` write a
//! descriptor set (`file_descriptor_set_path`) next to the generated code
//! and include it with `include_bytes!`, as the demo's `build.rs` does.

use std::net::SocketAddr;

use bytes::Bytes;
use protogate::demo::pb::bookshop_server::BookshopServer;
use protogate::demo::{Bookshop, DESCRIPTOR_SET};
use protogate::{Config, UpstreamConfig};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;

/// The gRPC service, on `addr` (port 0: any free port); returns where it
/// listens. Your tonic server, as you already run it.
pub(crate) async fn start_service(
    addr: SocketAddr,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let service = BookshopServer::new(Bookshop::with_sample_books());
    let task = tokio::spawn(async move {
        let served = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpIncoming::from(listener))
            .await;
        if let Err(err) = served {
            eprintln!("bookshop service stopped: {err}");
        }
    });
    Ok((addr, task))
}

/// The gateway in front of the service at `service`, listening on
/// `listen`: the descriptors from memory, one upstream for the service.
pub(crate) async fn start_gateway(
    listen: SocketAddr,
    service: SocketAddr,
) -> Result<protogate::Server, protogate::StartError> {
    let mut config = Config {
        listen,
        embedded_descriptors: vec![Bytes::from_static(DESCRIPTOR_SET)],
        ..Config::default()
    };
    config.upstreams.insert(
        "bookshop".to_owned(),
        UpstreamConfig::new(format!("http://{service}")),
    );
    protogate::start(&config).await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned())
        .parse()?;
    let (service, task) = start_service("127.0.0.1:0".parse()?).await?;
    let gateway = start_gateway(listen, service).await?;
    println!(
        "gRPC service on {service}, its REST routes on http://{}",
        gateway.local_addr()
    );
    println!("try: curl -s http://{}/v1/shelves", gateway.local_addr());
    tokio::signal::ctrl_c().await?;
    // In-flight requests finish first.
    gateway.shutdown().await;
    task.abort();
    Ok(())
}
