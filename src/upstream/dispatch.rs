//! Making calls on an upstream: the breaker's admission, an endpoint
//! from the balancer, a unary call's tries within its deadline and retry
//! budget, and calls of any shape opened or passed through.

use std::time::Duration;

use bytes::Bytes;
use http::uri::PathAndQuery;
use tokio::time::Instant;
use tokio_stream::Stream;
use tonic::codec::{CompressionEncoding, Streaming};
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Status};

use super::balance::{Lease, Outcome};
use super::breaker::{InFlight, Pending};
use super::call::Hold;
use super::causes::{broken, caused_by, causes};
use super::codec::{CallCodec, Outgoing};
use super::retry::Failure;
use super::{
    Call, CallError, Channel, Hints, Opened, Passage, Reply, Responses, Upstream, Way, metadata,
};

/// How a call's exchange (or a unary call's tries) ended without a reply.
#[derive(Debug)]
enum Ended {
    /// A status, from the backend or the channel.
    Status(Status),
    /// The backend's status after its response headers, kept for the
    /// client.
    Answered(Status, MetadataMap),
    /// The deadline passed, after `last` failed (the try before, if any):
    /// the reason a call that failed to connect and ran out of time while
    /// trying again is not only "deadline exceeded". Told apart from a
    /// backend's own `DEADLINE_EXCEEDED`.
    Expired { last: Option<Status> },
}

impl From<Status> for Ended {
    fn from(status: Status) -> Ended {
        Ended::Status(status)
    }
}

impl Upstream {
    /// Makes a unary call, keeping response headers and trailers apart.
    /// The deadline covers the whole call, retries included.
    pub async fn unary(&self, call: Call) -> Result<Reply, CallError> {
        let upstream = self.target(call.hints);
        let timeout = call.timeout;
        // Taken before `within` starts its timer, so that the try's own
        // timer (which records the endpoint's failure) fires first.
        let deadline = timeout.map(|t| Instant::now() + t);
        // Boxed once here: the tries' state runs to KiBs, and every layer
        // that awaits it (this one, the timeout, the REST handler) would
        // otherwise copy it along.
        let tries = Box::pin(upstream.unary_tries(call, deadline));
        upstream.within(timeout, tries).await
    }

    /// A unary call's tries: on another endpoint when one could not be
    /// reached, again when an idempotent call failed as the policy names,
    /// within the retry budget.
    async fn unary_tries(&self, call: Call, deadline: Option<Instant>) -> Result<Reply, Ended> {
        let Call {
            path,
            message,
            metadata,
            timeout: _,
            client_deadline,
            hints,
            idempotent,
        } = call;
        // A deadline already gone (`grpc-timeout: 0S`) sends nothing: the
        // backend could not answer in time, but could act on it.
        if deadline.is_some_and(|d| d <= Instant::now()) {
            return Err(Ended::Expired { last: None });
        }
        // A try cut short by the deadline counts against its endpoint only
        // when the deadline is the gateway's own.
        let expired = |lease: &Lease| {
            if !client_deadline {
                self.record(lease, Outcome::Failed);
            }
        };
        let _admitted = self.admit()?;
        self.retry.deposit();
        let mut attempt = 1;
        let mut tried = Vec::new();
        let mut last: Option<Status> = None;
        loop {
            let lease = self.lease(hints.hash, &tried).await?;
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let exchange = self.exchange(
                &lease,
                path.clone(),
                metadata.clone(),
                left,
                message.clone(),
            );
            let result = match deadline {
                Some(deadline) => match tokio::time::timeout_at(deadline, exchange).await {
                    Ok(result) => result,
                    Err(_) => {
                        // No answer in time: a hung backend looks like
                        // this.
                        expired(&lease);
                        return Err(Ended::Expired { last });
                    }
                },
                None => exchange.await,
            };
            let failed = match result {
                Ok(reply) => {
                    self.record(&lease, Outcome::Answered);
                    return Ok(reply);
                }
                Err(failed) => failed,
            };
            let (status, headers) = failed;
            let failure = if caused_by::<tonic::ConnectError>(&status) {
                // Known shortcoming (README, Limits): with no other
                // endpoint left, the try goes to the same one again, so an
                // endpoint that accepts and never speaks costs each try
                // its whole `timeouts.connect`.
                self.record(&lease, Outcome::Failed);
                Failure::NotSent
            } else if broken(&status) {
                self.record(&lease, Outcome::Failed);
                Failure::Broken
            } else if caused_by::<tonic::TimeoutExpired>(&status) {
                // The channel's own timer for the `grpc-timeout` sent: the
                // same deadline.
                expired(&lease);
                return Err(Ended::Expired { last });
            } else {
                // A backend holds calls to the deadline it is sent, and
                // may say it passed before our own timer does: with the
                // client's deadline, that is the client's too.
                if !(client_deadline && status.code() == Code::DeadlineExceeded) {
                    self.record(&lease, Outcome::of(status.code()));
                }
                Failure::Answered(status.code())
            };
            tried.extend(lease.address());
            drop(lease);
            let Some(wait) = self.retry.next(attempt, failure, idempotent) else {
                return Err(match headers {
                    Some(headers) => Ended::Answered(status, headers),
                    None => Ended::Status(status),
                });
            };
            tracing::debug!(upstream = %self.name, attempt, ?failure, ?wait, "Trying the call again");
            match deadline {
                // The deadline passes before the next try could start.
                Some(deadline) if Instant::now() + wait >= deadline => {
                    tokio::time::sleep_until(deadline).await;
                    return Err(Ended::Expired { last: Some(status) });
                }
                _ => tokio::time::sleep(wait).await,
            }
            last = Some(status);
            attempt += 1;
        }
    }

    /// One unary exchange on `lease`'s endpoint.
    async fn exchange(
        &self,
        lease: &Lease,
        path: PathAndQuery,
        metadata: MetadataMap,
        timeout: Option<Duration>,
        message: Bytes,
    ) -> Result<Reply, (Status, Option<MetadataMap>)> {
        let request = tokio_stream::once(Outgoing::Message(message));
        let (headers, mut stream) = self
            .start(lease.channel(), path, metadata, timeout, request)
            .await
            .map_err(|status| (status, None))?;
        Reply::read(headers, &mut stream).await
    }

    /// Opens a call of any shape: `requests` are sent as they come (the
    /// call half-closes when they end); the response headers are awaited
    /// (within the deadline) and the response messages left to the caller.
    /// A streamed call is not tried again, as its requests are gone once
    /// sent; an endpoint that cannot be reached is left for another
    /// before anything is sent (`reached`).
    pub async fn open<S>(
        &self,
        path: PathAndQuery,
        metadata: MetadataMap,
        timeout: Option<Duration>,
        hints: Hints,
        requests: S,
    ) -> Result<Opened, CallError>
    where
        S: Stream<Item = Outgoing> + Send + 'static,
    {
        let upstream = self.target(hints);
        let deadline = timeout.map(|t| Instant::now() + t);
        upstream
            .within(
                timeout,
                upstream.open_here(path, metadata, deadline, hints, requests),
            )
            .await
    }

    async fn open_here<S>(
        &self,
        path: PathAndQuery,
        metadata: MetadataMap,
        deadline: Option<Instant>,
        hints: Hints,
        requests: S,
    ) -> Result<Opened, Ended>
    where
        S: Stream<Item = Outgoing> + Send + 'static,
    {
        let (in_flight, mut pending) = self.admit()?;
        self.retry.deposit();
        let lease = self.reached(hints.hash, deadline).await?;
        // As for unary calls: nothing is sent once the deadline is gone.
        let now = Instant::now();
        if deadline.is_some_and(|d| d <= now) {
            return Err(Ended::Expired { last: None });
        }
        let timeout = deadline.map(|d| d - now);
        let opened = self
            .start(lease.channel(), path, metadata, timeout, requests)
            .await;
        pending.answered();
        match opened {
            Ok((headers, stream)) => {
                self.record(&lease, Outcome::Answered);
                Ok(Opened {
                    headers,
                    stream: Responses {
                        inner: stream,
                        _hold: Hold {
                            _lease: lease,
                            _in_flight: in_flight,
                        },
                    },
                })
            }
            Err(status) => {
                let outcome = if caused_by::<tonic::ConnectError>(&status) {
                    Outcome::Failed
                } else {
                    Outcome::of(status.code())
                };
                self.record(&lease, outcome);
                Err(status.into())
            }
        }
    }

    /// A way for one call passed through as it is (a gRPC client's own
    /// call): an endpoint, held with the breaker's count until the
    /// returned [`Passage`] is dropped.
    ///
    /// The endpoint's connection is made first, and one that cannot be
    /// reached is left for another as the retry policy allows: the
    /// request body has not been touched yet. A failure to reach any keeps
    /// the channel's error as the status's source; a `deadline` that
    /// passes meanwhile is `DEADLINE_EXCEEDED`.
    pub async fn passage(
        &self,
        hints: Hints,
        deadline: Option<Instant>,
    ) -> Result<Passage, Status> {
        let (in_flight, pending) = self.admit()?;
        self.retry.deposit();
        let lease = self
            .reached(hints.hash, deadline)
            .await
            .map_err(|ended| match ended {
                Ended::Status(status) | Ended::Answered(status, _) => status,
                Ended::Expired { last } => Status::deadline_exceeded(format!(
                    "deadline exceeded: upstream `{}` could not be reached within the call's grpc-timeout{}",
                    self.name,
                    last.map_or_else(String::new, |s| format!(" ({})", causes(&s)))
                )),
            })?;
        Ok(Passage {
            upstream: self.clone(),
            pending,
            hold: Hold {
                _lease: lease,
                _in_flight: in_flight,
            },
        })
    }

    /// An endpoint whose connection is made, for a call whose requests
    /// cannot be sent twice (streamed, or passed through as they come):
    /// one that cannot be reached is left for another endpoint (or the
    /// same one after the backoff, in a pool of one) as the retry policy
    /// and budget allow, since nothing went to it; the call itself is
    /// then never tried again.
    async fn reached(&self, hash: Option<u64>, deadline: Option<Instant>) -> Result<Lease, Ended> {
        let mut attempt = 1;
        let mut tried = Vec::new();
        loop {
            let lease = self.lease(hash, &tried).await?;
            let channel = lease.channel();
            let connected = channel.connected();
            let result = match deadline {
                Some(deadline) => match tokio::time::timeout_at(deadline, connected).await {
                    Ok(result) => result,
                    Err(_) => return Err(Ended::Expired { last: None }),
                },
                None => connected.await,
            };
            let Err(err) = result else {
                return Ok(lease);
            };
            self.record(&lease, Outcome::Failed);
            let status = Status::from_error(err);
            // Another failure to connect (a peer that closed the
            // handshake, or spoke another protocol) is the endpoint's
            // answer, as it would be to the call.
            if !caused_by::<tonic::ConnectError>(&status) {
                return Err(Ended::Status(status));
            }
            tried.extend(lease.address());
            drop(lease);
            let Some(wait) = self.retry.next(attempt, Failure::NotSent, false) else {
                return Err(Ended::Status(status));
            };
            tracing::debug!(upstream = %self.name, attempt, ?wait, "Connecting to another endpoint");
            match deadline {
                Some(deadline) if Instant::now() + wait >= deadline => {
                    tokio::time::sleep_until(deadline).await;
                    return Err(Ended::Expired { last: Some(status) });
                }
                _ => tokio::time::sleep(wait).await,
            }
            attempt += 1;
        }
    }

    /// A channel to one endpoint, for the gateway's own calls (reflection),
    /// waiting for a pool's first round.
    pub async fn any_channel(&self) -> Result<Channel, Status> {
        Ok(self.lease(None, &[]).await?.channel())
    }

    /// The breaker's admission of one call (nothing to count without one).
    fn admit(&self) -> Result<(Option<InFlight>, Pending), Status> {
        match &self.breaker {
            Some(breaker) => breaker
                .admit(&self.name)
                .map(|(in_flight, pending)| (Some(in_flight), pending)),
            None => Ok((None, Pending::default())),
        }
    }

    /// An endpoint for one call: a pool with no endpoint in the rotation
    /// fails it at once.
    async fn lease(
        &self,
        hash: Option<u64>,
        avoid: &[std::net::SocketAddr],
    ) -> Result<Lease, Status> {
        let (balancer, pool) = match &self.way {
            Way::One(channel) => return Ok(Lease::single(channel.clone())),
            Way::Pool(balancer, pool) => (balancer, pool),
        };
        if !pool.is_settled() {
            pool.settled().await;
        }
        balancer.pick(hash, avoid).ok_or_else(|| {
            let known = pool.shown.known.load(std::sync::atomic::Ordering::Relaxed);
            let why = if known == 0 {
                match &pool.registry {
                    Some(registry)
                        if !pool
                            .shown
                            .registry_answered
                            .load(std::sync::atomic::Ordering::Relaxed) =>
                    {
                        format!("{registry} has not answered yet")
                    }
                    Some(registry) => format!("{registry} lists no instance"),
                    None => match &*pool.shown.unresolved.lock() {
                        Some(failed) => format!("its host name does not resolve: {failed}"),
                        None => "its host names resolve to no address".to_owned(),
                    },
                }
            } else {
                format!("{known} known, none passing its checks")
            };
            Status::unavailable(format!(
                "upstream `{}` has no endpoint in the rotation ({why})",
                self.name
            ))
        })
    }

    /// Tells the balancer how a call on `lease` went.
    pub(super) fn record(&self, lease: &Lease, outcome: Outcome) {
        // Read first: a store on every call would bounce the cache line
        // between cores.
        if outcome == Outcome::Answered && !self.answered.load(std::sync::atomic::Ordering::Relaxed)
        {
            self.answered
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        if let Way::Pool(balancer, _) = &self.way {
            balancer.record(lease, outcome);
        }
    }

    async fn start<S>(
        &self,
        channel: Channel,
        path: PathAndQuery,
        mut metadata: MetadataMap,
        timeout: Option<Duration>,
        requests: S,
    ) -> Result<(MetadataMap, Streaming<Bytes>), Status>
    where
        S: Stream<Item = Outgoing> + Send + 'static,
    {
        if let Some(timeout) = timeout
            && let Ok(mut value) = MetadataValue::try_from(metadata::format_grpc_timeout(timeout))
        {
            // The time left differs on every call: indexed, each value
            // would take a new slot in both sides' HPACK tables and push
            // out the headers that do repeat.
            value.set_sensitive(true);
            metadata.insert("grpc-timeout", value);
        }
        let request = tonic::Request::from_parts(metadata, Default::default(), requests);
        let mut grpc = tonic::client::Grpc::new(channel)
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd)
            .max_decoding_message_size(self.max_message_bytes);
        if let Some(encoding) = self.send_compressed {
            grpc = grpc.send_compressed(encoding);
        }
        grpc.ready()
            .await
            .map_err(|e| Status::unavailable(format!("upstream is not ready: {e}")))?;
        // The streaming call keeps headers and trailers apart (tonic's
        // unary call merges them); on the wire every shape is the same.
        let response = grpc.streaming(request, path, CallCodec).await?;
        let (headers, stream, _) = response.into_parts();
        Ok((headers, stream))
    }

    /// Runs `exchange` within `timeout`, classifying its failure.
    async fn within<T, E: Into<Ended>>(
        &self,
        timeout: Option<Duration>,
        exchange: impl Future<Output = Result<T, E>>,
    ) -> Result<T, CallError> {
        let expired = |last: Option<Status>| {
            CallError::DeadlineExceeded(
                timeout.unwrap_or_default(),
                last.map(|s| match s.message() {
                    "" => format!("{:?} without a message", s.code()),
                    message => message.to_owned(),
                }),
            )
        };
        let start = Instant::now();
        let result = match timeout {
            Some(timeout) => match tokio::time::timeout(timeout, exchange).await {
                Ok(result) => result,
                Err(_) => return Err(expired(None)),
            },
            None => exchange.await,
        };
        result.map_err(|ended| match ended.into() {
            Ended::Expired { last } => expired(last),
            // tonic reports its own expiry of `grpc-timeout` as CANCELLED.
            Ended::Status(status)
                if status.code() == Code::Cancelled
                    && timeout.is_some_and(|t| start.elapsed() >= t) =>
            {
                expired(None)
            }
            Ended::Status(status) => self.classify(status),
            Ended::Answered(status, headers) => match self.classify(status) {
                CallError::Status(status) => CallError::Answered(status, headers),
                other => other,
            },
        })
    }
}
