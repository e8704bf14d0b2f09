//! Following etcd: read the prefix, watch it from the next revision, and
//! start over (after a backoff delay) whenever the watch ends.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_stream::StreamExt as _;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Request, Status};

use super::super::{Backoff, Instance, Trouble};
use super::Etcd;
use super::keys::Keys;
use super::pb::{
    KeyValue, RangeRequest, WatchCreateRequest, WatchRequest, WatchResponse,
    kv_client::KvClient,
    range_request::{SortOrder, SortTarget},
    watch_client::WatchClient,
    watch_request::RequestUnion,
};

/// Longest wait for etcd to answer a read or to confirm a new watch.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Keys read per `Range` call.
const PAGE: i64 = 1000;

/// Largest message accepted from etcd (a page of keys, or all events of
/// one revision).
const MAX_MESSAGE: usize = 64 << 20;

/// Resolve the host names of instances again this often.
const RESOLVE_EVERY: Duration = Duration::from_secs(30);

/// Why following etcd stopped.
#[derive(Debug, thiserror::Error)]
pub(super) enum Failure {
    /// No connection within the dial timeout.
    #[error("cannot connect: {0}")]
    Connect(#[source] tonic::transport::Error),
    /// No answer in time.
    #[error("{0} timed out")]
    Timeout(&'static str),
    /// etcd (or the connection) failed a call.
    #[error("{call} failed: {}: {}", .status.code(), .status.message())]
    Call {
        /// `range` or `watch`.
        call: &'static str,
        /// The error.
        #[source]
        status: Status,
    },
    /// The watch stream ended without an error.
    #[error("etcd ended the watch stream")]
    Ended,
    /// etcd canceled the watch.
    #[error("etcd canceled the watch: {0}")]
    Canceled(String),
    /// etcd answered a paged read inconsistently.
    #[error("range read said more keys follow but returned none")]
    EmptyPage,
}

/// How one session ended.
#[derive(Debug)]
pub(super) enum End {
    /// The watch's start revision was compacted away: read again.
    Compacted(i64),
    /// The endpoint failed.
    Failed(Failure),
}

/// The task that follows one prefix.
pub(super) struct Runner {
    source: Etcd,
    keys: Keys,
    /// The endpoint to try first.
    next: usize,
    /// Whether the last session failed (an outage goes on).
    outage: bool,
    backoff: Backoff,
}

impl Runner {
    pub(super) fn new(source: Etcd) -> Runner {
        Runner {
            keys: Keys::new(source.prefix.clone()),
            source,
            next: 0,
            outage: false,
            backoff: Backoff::new(),
        }
    }

    /// Follows etcd until every receiver of `out` is gone.
    pub(super) async fn run(mut self, out: watch::Sender<Option<Vec<Instance>>>, trouble: Trouble) {
        loop {
            let (endpoint, end) = tokio::select! {
                ended = self.session(&out, &trouble) => ended,
                () = out.closed() => return,
            };
            let prefix = &self.source.prefix;
            if let End::Failed(err) = &end {
                trouble.set(format!("{endpoint}: {err}"));
            }
            match end {
                End::Compacted(revision) => {
                    tracing::debug!(%prefix, %endpoint, revision, "Revision to watch from was compacted by etcd; reading the prefix again");
                }
                End::Failed(err) if !self.outage => {
                    self.outage = true;
                    tracing::warn!(%prefix, %endpoint, error = %err, "Lost etcd; keeping the last instances and retrying");
                }
                End::Failed(err) => {
                    tracing::debug!(%prefix, %endpoint, error = %err, "Still cannot reach etcd");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(self.backoff.delay()) => {}
                () = out.closed() => return,
            }
        }
    }

    /// Reads the prefix from the first endpoint that answers, publishes
    /// it, then watches it until the watch ends. Returns the endpoint it
    /// ended on (the last one tried when none answered).
    async fn session(
        &mut self,
        out: &watch::Sender<Option<Vec<Instance>>>,
        trouble: &Trouble,
    ) -> (Arc<str>, End) {
        let (channel, kvs, revision) = match self.read_any().await {
            Ok(read) => read,
            Err(failed) => return failed,
        };
        self.keys.replace(kvs).await;
        publish(out, &self.keys);
        trouble.clear();
        let endpoint = self.source.endpoints[self.next].0.clone();
        let end = self.watch(channel, revision, out).await;
        if let End::Failed(_) = end {
            self.next = (self.next + 1) % self.source.endpoints.len();
        }
        (endpoint, end)
    }

    /// Connects and reads the prefix, trying each endpoint once from
    /// `next`; on success `next` is the endpoint that answered.
    async fn read_any(&mut self) -> Result<(Channel, Vec<KeyValue>, i64), (Arc<str>, End)> {
        let count = self.source.endpoints.len();
        let mut last = None;
        for i in 0..count {
            let at = (self.next + i) % count;
            let (url, _) = &self.source.endpoints[at];
            match self.read(at).await {
                Ok(read) => {
                    self.next = at;
                    return Ok(read);
                }
                Err(err) => {
                    tracing::debug!(prefix = %self.source.prefix, endpoint = %url, error = %err, "An etcd endpoint failed; trying the next");
                    last = Some((url.clone(), End::Failed(err)));
                }
            }
        }
        Err(last.expect("at least one endpoint"))
    }

    /// Connects to endpoint `at` and reads every key under the prefix, a
    /// page at a time, all pages at the revision of the first.
    async fn read(&self, at: usize) -> Result<(Channel, Vec<KeyValue>, i64), Failure> {
        let endpoint = &self.source.endpoints[at].1;
        let channel = tokio::time::timeout(self.source.dial_timeout, endpoint.connect())
            .await
            .map_err(|_| Failure::Timeout("connect"))?
            .map_err(Failure::Connect)?;
        let mut client = KvClient::new(channel.clone()).max_decoding_message_size(MAX_MESSAGE);
        let mut kvs = Vec::new();
        let mut key = self.source.prefix.as_bytes().to_vec();
        let mut revision = 0;
        loop {
            let mut request = Request::new(RangeRequest {
                key: key.clone(),
                range_end: self.source.range_end.clone(),
                limit: PAGE,
                revision,
                sort_order: SortOrder::Ascend.into(),
                sort_target: SortTarget::Key.into(),
            });
            require_leader(&mut request);
            request.set_timeout(CALL_TIMEOUT);
            let page = tokio::time::timeout(CALL_TIMEOUT, client.range(request))
                .await
                .map_err(|_| Failure::Timeout("range"))?
                .map_err(|status| Failure::Call {
                    call: "range",
                    status,
                })?
                .into_inner();
            if revision == 0 {
                revision = page.header.map_or(0, |h| h.revision);
            }
            let more = page.more;
            kvs.extend(page.kvs);
            if !more {
                return Ok((channel, kvs, revision));
            }
            // The next page starts just after the last key read.
            let last = kvs.last().ok_or(Failure::EmptyPage)?;
            key = last.key.iter().copied().chain([0]).collect();
        }
    }

    /// Watches the prefix from `revision + 1`, applying and publishing
    /// every change, and resolving host names again now and then.
    async fn watch(
        &mut self,
        channel: Channel,
        revision: i64,
        out: &watch::Sender<Option<Vec<Instance>>>,
    ) -> End {
        let mut client = WatchClient::new(channel).max_decoding_message_size(MAX_MESSAGE);
        let create = WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: self.source.prefix.as_bytes().to_vec(),
                range_end: self.source.range_end.clone(),
                start_revision: revision + 1,
            })),
        };
        // The request side stays open while the watch lives.
        let mut request = Request::new(tokio_stream::once(create).chain(tokio_stream::pending()));
        require_leader(&mut request);
        let mut stream = match tokio::time::timeout(CALL_TIMEOUT, client.watch(request)).await {
            Err(_) => return End::Failed(Failure::Timeout("watch")),
            Ok(Err(status)) => {
                return End::Failed(Failure::Call {
                    call: "watch",
                    status,
                });
            }
            Ok(Ok(response)) => response.into_inner(),
        };
        // The first answer confirms the watch (or refuses it).
        let first = match tokio::time::timeout(CALL_TIMEOUT, next(&mut stream)).await {
            Err(_) => return End::Failed(Failure::Timeout("watch")),
            Ok(Err(err)) => return End::Failed(err),
            Ok(Ok(response)) => response,
        };
        if let Some(end) = self.apply(first, out).await {
            return end;
        }
        self.backoff.reset();
        if std::mem::take(&mut self.outage) {
            tracing::info!(prefix = %self.source.prefix, "Reached etcd again; instances are current");
        }
        let mut refresh = tokio::time::interval_at(Instant::now() + RESOLVE_EVERY, RESOLVE_EVERY);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                response = next(&mut stream) => match response {
                    Ok(response) => {
                        if let Some(end) = self.apply(response, out).await {
                            return end;
                        }
                    }
                    Err(err) => return End::Failed(err),
                },
                _ = refresh.tick(), if self.keys.has_names() => {
                    self.keys.refresh().await;
                    publish(out, &self.keys);
                }
            }
        }
    }

    /// Applies one watch response; `Some` when it ends the watch.
    pub(super) async fn apply(
        &mut self,
        response: WatchResponse,
        out: &watch::Sender<Option<Vec<Instance>>>,
    ) -> Option<End> {
        if response.compact_revision != 0 {
            return Some(End::Compacted(response.compact_revision));
        }
        if response.canceled {
            return Some(End::Failed(Failure::Canceled(response.cancel_reason)));
        }
        if !response.events.is_empty() {
            self.keys.apply(response.events).await;
            publish(out, &self.keys);
        }
        None
    }
}

/// The next response of a watch stream.
async fn next(stream: &mut tonic::Streaming<WatchResponse>) -> Result<WatchResponse, Failure> {
    match stream.message().await {
        Ok(Some(response)) => Ok(response),
        Ok(None) => Err(Failure::Ended),
        Err(status) => Err(Failure::Call {
            call: "watch",
            status,
        }),
    }
}

/// Asks etcd to fail the call, or end the watch, when the member has no
/// leader (its data may be stale then), so another member is tried.
fn require_leader<T>(request: &mut Request<T>) {
    request
        .metadata_mut()
        .insert("hasleader", MetadataValue::from_static("true"));
}

/// Sends the instances of `keys` if they differ from those last sent.
fn publish(out: &watch::Sender<Option<Vec<Instance>>>, keys: &Keys) {
    let set = keys.instances();
    out.send_if_modified(|current| {
        if current.as_ref() == Some(&set) {
            return false;
        }
        tracing::debug!(prefix = %keys.prefix(), instances = set.len(), "Instances from etcd changed");
        *current = Some(set);
        true
    });
}
