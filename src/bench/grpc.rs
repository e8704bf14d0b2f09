//! The floor: the same requests as gRPC calls straight to the backend,
//! with tonic, over a few HTTP/2 connections shared by the workers. The
//! requests are encoded once up front and the answers are counted, not
//! decoded, as the REST side reads its answers without parsing them.

use bytes::Bytes;
use http::uri::PathAndQuery;
use tonic::client::Grpc;
use tonic::transport::{Channel, Endpoint};

use super::http::{CONNECTION_WINDOW, STREAM_WINDOW};
use super::load::Call;
use crate::upstream::codec::RawCodec;

/// One gRPC call as sent, and what a right answer holds.
#[derive(Debug, Clone)]
pub(super) struct GrpcRequest {
    /// `/package.Service/Method`.
    pub(super) path: String,
    /// The encoded request message.
    pub(super) message: Bytes,
    /// For a server stream: how many messages the answer must carry.
    pub(super) messages: Option<u64>,
}

/// Opens `connections` channels (one HTTP/2 connection each) to `url`.
pub(super) async fn channels(url: &str, connections: usize) -> Result<Vec<Channel>, String> {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|e| format!("bad URL {url}: {e}"))?
        .tcp_nodelay(true)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW);
    let mut channels = Vec::with_capacity(connections);
    for _ in 0..connections.max(1) {
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {url}: {e}"))?;
        channels.push(channel);
    }
    Ok(channels)
}

/// A worker calling over one of the shared channels.
#[derive(Debug)]
pub(super) struct Direct {
    client: Grpc<Channel>,
    path: PathAndQuery,
    request: GrpcRequest,
}

impl Direct {
    /// Worker `index`'s caller: the workers take the channels in turn.
    pub(super) fn new(
        channels: &[Channel],
        index: usize,
        request: GrpcRequest,
    ) -> Result<Direct, String> {
        let path = PathAndQuery::try_from(request.path.as_str())
            .map_err(|e| format!("bad method path {}: {e}", request.path))?;
        Ok(Direct {
            client: Grpc::new(channels[index % channels.len()].clone()),
            path,
            request,
        })
    }
}

impl Call for Direct {
    async fn call(&mut self) -> Result<(), String> {
        self.client
            .ready()
            .await
            .map_err(|e| format!("the channel is not ready: {e}"))?;
        let request = tonic::Request::new(self.request.message.clone());
        let path = self.path.clone();
        let Some(want) = self.request.messages else {
            self.client
                .unary(request, path, RawCodec)
                .await
                .map_err(|status| format!("the call failed: {status}"))?;
            return Ok(());
        };
        let mut stream = self
            .client
            .server_streaming(request, path, RawCodec)
            .await
            .map_err(|status| format!("the call failed: {status}"))?
            .into_inner();
        let mut got = 0u64;
        while stream
            .message()
            .await
            .map_err(|status| format!("the stream failed: {status}"))?
            .is_some()
        {
            got += 1;
        }
        if got == want {
            Ok(())
        } else {
            Err(format!("the stream carried {got} messages, not {want}"))
        }
    }
}
