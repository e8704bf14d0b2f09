//! The no-op backend: `protogate.bench.v1.Catalogue` on loopback,
//! answering every call at once from messages built when it starts.

use std::net::SocketAddr;
use std::pin::Pin;

use tokio::net::TcpListener;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// Generated code of the bench service.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub(super) mod pb {
    tonic::include_proto!("protogate.bench.v1");
}

use pb::catalogue_server::{Catalogue, CatalogueServer};
use pb::{Item, Part, Size, Storage};

/// Most items a page holds.
const MAX_PAGE: usize = 1000;
/// Most items a stream carries.
const MAX_STREAM: usize = 1_000_000;

/// The prepared answers.
#[derive(Debug, Clone)]
struct NoOp {
    small: Item,
    page: Vec<Item>,
}

/// A small item: what a GET answers and what a stream carries.
fn small_item(id: String) -> Item {
    Item {
        id,
        title: "Lamp".to_owned(),
        stock: 12,
        price: 19.5,
        active: true,
        ..Item::default()
    }
}

/// An item with nested messages: what a page holds.
fn page_item(n: usize) -> Item {
    Item {
        id: format!("item-{n:04}"),
        title: format!("Item number {n}"),
        stock: 1_000 + n as i64,
        price: n as f64 * 0.5,
        active: n.is_multiple_of(2),
        tags: vec!["catalogue".to_owned(), format!("batch-{}", n / 10)],
        size: Some(Size {
            width: 30,
            height: 40 + n as i32 % 7,
            unit: "cm".to_owned(),
        }),
        storage: Storage::Shelf as i32,
        parts: vec![Part {
            name: "base".to_owned(),
            quantity: 2,
            weight: 1.25,
        }],
    }
}

type ItemStream = Pin<Box<dyn Stream<Item = Result<Item, Status>> + Send>>;

#[tonic::async_trait]
impl Catalogue for NoOp {
    async fn get_item(
        &self,
        request: Request<pb::GetItemRequest>,
    ) -> Result<Response<Item>, Status> {
        let mut item = self.small.clone();
        item.id = request.into_inner().id;
        Ok(Response::new(item))
    }

    async fn create_item(
        &self,
        _: Request<pb::CreateItemRequest>,
    ) -> Result<Response<pb::CreateItemResponse>, Status> {
        Ok(Response::new(pb::CreateItemResponse {
            id: "item-new".to_owned(),
        }))
    }

    async fn list_items(
        &self,
        request: Request<pb::ListItemsRequest>,
    ) -> Result<Response<pb::ListItemsResponse>, Status> {
        let size = usize::try_from(request.into_inner().page_size).unwrap_or(0);
        let items = self.page[..size.min(MAX_PAGE)].to_vec();
        Ok(Response::new(pb::ListItemsResponse { items }))
    }

    type WatchItemsStream = ItemStream;

    async fn watch_items(
        &self,
        request: Request<pb::WatchItemsRequest>,
    ) -> Result<Response<ItemStream>, Status> {
        let count = usize::try_from(request.into_inner().count).unwrap_or(0);
        let item = self.small.clone();
        let items = std::iter::repeat_n(item, count.min(MAX_STREAM)).map(Ok);
        Ok(Response::new(Box::pin(tokio_stream::iter(items))))
    }
}

/// The backend, serving until dropped.
#[derive(Debug)]
pub(super) struct Backend {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Backend {
    /// Starts the backend on a free loopback port.
    pub(super) async fn start() -> std::io::Result<Backend> {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let service = CatalogueServer::new(NoOp {
            small: small_item("item-0".to_owned()),
            page: (0..MAX_PAGE).map(page_item).collect(),
        })
        .max_decoding_message_size(16 << 20);
        let task = tokio::spawn(async move {
            if let Err(err) = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await
            {
                tracing::error!(error = %err, "Bench backend stopped");
            }
        });
        Ok(Backend { addr, task })
    }

    /// `http://` and the backend's address.
    pub(super) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}
