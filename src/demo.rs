//! `protogate demo`: an example bookshop gRPC service on loopback (with
//! server reflection) and the gateway in front of it, and curl lines that
//! work as pasted.

mod bookshop;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::Bytes;
use tokio::net::TcpListener;

use crate::config::{Config, UpstreamConfig};

pub use bookshop::Bookshop;

/// Generated code of the demo service and `google.rpc`.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod pb {
    /// `google.rpc`: status and error details.
    pub mod google {
        /// `google.rpc`.
        pub mod rpc {
            tonic::include_proto!("google.rpc");
        }
    }
    tonic::include_proto!("protogate.demo.v1");
}

/// Encoded `FileDescriptorSet` of the demo service (with imports).
pub const DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/demo.bin"));

/// A running demo backend.
#[derive(Debug)]
pub struct Backend {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Backend {
    /// Starts the bookshop on `addr` (use port 0 for any free port).
    pub async fn start(addr: SocketAddr) -> std::io::Result<Backend> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let service = pb::bookshop_server::BookshopServer::new(Bookshop::with_sample_books());
        // Server reflection too, so that a gateway can be pointed at the
        // bookshop without descriptor files (`--reflect`).
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(DESCRIPTOR_SET)
        };
        let v1 = reflection().build_v1().map_err(std::io::Error::other)?;
        let v1alpha = reflection()
            .build_v1alpha()
            .map_err(std::io::Error::other)?;
        // And grpc.health.v1, so that pools of demo backends can be
        // health-checked.
        let (health_reporter, health) = tonic_health::server::health_reporter();
        health_reporter
            .set_serving::<pb::bookshop_server::BookshopServer<Bookshop>>()
            .await;
        let task = tokio::spawn(async move {
            // Kept for as long as the server runs: it holds the statuses.
            let _health_reporter = health_reporter;
            if let Err(err) = tonic::transport::Server::builder()
                .add_service(service)
                .add_service(health)
                .add_service(v1)
                .add_service(v1alpha)
                .serve_with_incoming(incoming)
                .await
            {
                tracing::error!(error = %err, "Demo backend stopped");
            }
        });
        Ok(Backend { addr, task })
    }

    /// The backend's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The gateway config for the demo: the embedded descriptors and one
/// upstream at `backend`.
pub fn config(listen: SocketAddr, backend: SocketAddr) -> Config {
    let mut config = Config {
        listen,
        embedded_descriptors: vec![Bytes::from_static(DESCRIPTOR_SET)],
        ..Config::default()
    };
    config.upstreams.insert(
        "bookshop".to_owned(),
        UpstreamConfig::new(format!("http://{backend}")),
    );
    config
}

/// Example requests against a gateway at `addr`.
pub fn curl_lines(addr: SocketAddr) -> Vec<String> {
    let base = format!("http://{addr}");
    let json = "-H 'Content-Type: application/json'";
    vec![
        format!("curl -s {base}/v1/shelves"),
        format!("curl -s '{base}/v1/shelves/fiction/books?page_size=2'"),
        format!("curl -s '{base}/v1/shelves/fiction/books?page_size=2&page_token=2'"),
        format!("curl -s '{base}/v1/shelves/science/books?genre=SCIENCE'"),
        format!("curl -s {base}/v1/shelves/fiction/books/dune"),
        format!(
            "curl -s -X POST {base}/v1/shelves/science/books {json} -d '{{\"title\": \"A Brief History of Time\", \"author\": \"Stephen Hawking\", \"pages\": 212, \"genre\": \"SCIENCE\"}}'"
        ),
        format!(
            "curl -s -X PATCH '{base}/v1/shelves/fiction/books/emma?update_mask=pages' {json} -d '{{\"pages\": 480}}'"
        ),
        format!(
            "curl -s -X POST {base}/v1/shelves/fiction/books/odyssey:archive {json} -d '{{\"reason\": \"worn out\"}}'"
        ),
        // The book the POST above created: the sample books stay, so the
        // librarian's answers in the README hold after every line here.
        format!("curl -s -X DELETE {base}/v1/shelves/science/books/a-brief-history-of-time"),
        format!(
            "curl -s -X POST {base}/protogate.demo.v1.Bookshop/CountBooks {json} -d '{{\"parent\": \"shelves/fiction\"}}'"
        ),
        "# streams: a server stream as grpc-gateway's {\"result\": ...} lines, as Server-Sent Events, a client stream and a bidirectional one from concatenated JSON".to_owned(),
        format!("curl -sN {base}/v1/shelves/fiction:watch"),
        format!(
            "curl -sN -H 'Accept: text/event-stream' '{base}/v1/shelves/science:watch?interval_ms=100'"
        ),
        format!(
            "curl -s -X POST {base}/v1/shelves/science/books:import {json} -d '{{\"book\": {{\"title\": \"The Selfish Gene\", \"author\": \"Richard Dawkins\"}}}} {{\"book\": {{\"title\": \"Silent Spring\", \"author\": \"Rachel Carson\"}}}}'"
        ),
        format!(
            "curl -sN -X POST {base}/v1/librarian:ask {json} -d '{{\"text\": \"anything by Herbert?\"}} {{\"text\": \"what about Darwin?\"}}'"
        ),
        "# errors: a missing book (404 with details), a book without a title (400 with details), a bad query value (400)".to_owned(),
        format!("curl -s -i {base}/v1/shelves/fiction/books/missing"),
        format!("curl -s -i -X POST {base}/v1/shelves/fiction/books {json} -d '{{\"author\": \"Anonymous\"}}'"),
        format!("curl -s -i '{base}/v1/shelves/fiction/books?page_size=ten'"),
    ]
}

/// The lines that point a second gateway at the demo's `backend` by
/// server reflection, with an admin listener to see its routes. The second
/// gateway listens next to the demo's `gateway` (its port + 1 and + 2, or
/// the nearest ports free now), so the lines work as pasted.
pub fn reflect_lines(backend: SocketAddr, gateway: SocketAddr) -> Vec<String> {
    let ip = match gateway.ip() {
        ip if !ip.is_unspecified() => ip,
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
    };
    let [listen, admin] = spare_ports(ip, gateway.port(), backend.port());
    let (listen, admin) = (SocketAddr::new(ip, listen), SocketAddr::new(ip, admin));
    vec![
        "# no descriptor files: the bookshop serves reflection; a second gateway learns it:"
            .to_owned(),
        format!(
            "protogate serve --upstream http://{backend} --reflect --listen {listen} --admin-listen {admin}"
        ),
        format!("curl -s http://{admin}/admin/routes"),
    ]
}

/// How far from the gateway's port to look for free ones.
const NEARBY: u16 = 64;

/// Two ports near `gateway` on `ip` that are neither the gateway's nor
/// the backend's and can be bound now: above it first, then below.
fn spare_ports(ip: IpAddr, gateway: u16, backend: u16) -> [u16; 2] {
    let above = gateway.saturating_add(1)..=gateway.saturating_add(NEARBY);
    let below = (gateway.saturating_sub(NEARBY).max(1024)..gateway).rev();
    let mut free = above
        .chain(below)
        .filter(|&port| port != gateway && port != backend)
        .filter(|&port| std::net::TcpListener::bind((ip, port)).is_ok());
    match (free.next(), free.next()) {
        (Some(first), Some(second)) => [first, second],
        // Nothing free nearby: the plain guess, right for most machines.
        _ => [gateway.wrapping_add(1), gateway.wrapping_add(2)],
    }
}
