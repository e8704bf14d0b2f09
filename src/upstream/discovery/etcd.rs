//! Instances registered in etcd: every key under a prefix is one instance.
//!
//! A value is either the bare text `host:port` or a JSON object
//!
//! ```json
//! {"address": "orders-1.internal:50051", "weight": 2, "zone": "eu-1a"}
//! ```
//!
//! with `weight` (at least 1, default 1) and `zone` optional and other
//! members ignored. IPv6 literals are written `[addr]:port`. A host name
//! gives one instance per address it resolves to, each with the name as
//! its TLS server name; names are resolved when their key is read and
//! again every 30 s (a failed resolution keeps the addresses it had).
//! A value that is not an instance is skipped, with a warning naming the
//! key (once per revision of the key); the other keys still count. When
//! two keys give the same address, the first key (in key order) wins.
//!
//! How it follows etcd (v3 gRPC API): a `Range` read of the prefix gives
//! the current set and its store revision; a `Watch` of the prefix from
//! the next revision then reports every change, applied to the set, which
//! is published after each watch response that changed it. There is no
//! polling. When the watch fails, when etcd says the revision it starts
//! from was compacted away, or when the member loses its leader (asked for
//! with etcd's `hasleader` metadata), it reads the prefix again and
//! watches anew, after a backoff delay (100 ms doubling to 5 s,
//! jittered), trying the listed endpoints in turn from the one after the
//! member that failed. The last set stays in place meanwhile.
//!
// Limitation: only `http://` endpoints without authentication: etcd with
// client TLS or user/password auth cannot be used yet; such an endpoint is
// refused when the source is built.

mod keys;
mod session;
#[cfg(test)]
mod tests;
mod value;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tonic::transport::Endpoint;

use super::{Discovery, Instance, Trouble};
use crate::config::EtcdDiscovery;

/// The gRPC client of etcd's `KV.Range` and `Watch.Watch`, generated from
/// `proto/etcd/discovery.proto`.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
mod pb {
    tonic::include_proto!("etcdserverpb");
}

/// Pings on the connection to etcd this often, to notice a member that
/// went away without closing it (etcd refuses pings more often than 5 s).
const KEEPALIVE: Duration = Duration::from_secs(10);

/// An etcd discovery source that cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// No endpoint is listed.
    #[error("etcd discovery needs at least one endpoint")]
    NoEndpoints,
    /// The prefix is empty (it would take every key in etcd).
    #[error("etcd discovery needs a non-empty key prefix")]
    EmptyPrefix,
    /// An endpoint is not a usable `http://host:port` URL.
    #[error("etcd endpoint `{url}`: {reason}")]
    Endpoint {
        /// The endpoint as configured.
        url: String,
        /// What is wrong.
        reason: String,
    },
}

/// Discovery from etcd: the instances registered under a key prefix.
///
/// # Examples
///
/// ```no_run
/// use protogate::config::EtcdDiscovery;
/// use protogate::upstream::discovery::Discovery;
/// use protogate::upstream::discovery::etcd::Etcd;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let config = EtcdDiscovery::new(vec!["http://127.0.0.1:2379".into()], "/services/orders/");
/// let source = Box::new(Etcd::new(&config)?);
/// let (out, mut instances) = tokio::sync::watch::channel(None);
/// tokio::spawn(source.run(out, Default::default()));
/// instances.changed().await?;
/// println!("{:?}", *instances.borrow());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Etcd {
    /// Each endpoint as configured, with its connection settings.
    endpoints: Vec<(Arc<str>, Endpoint)>,
    prefix: Arc<str>,
    /// The first key after every key under the prefix.
    range_end: Vec<u8>,
    dial_timeout: Duration,
}

impl Etcd {
    /// The source `config` describes. Fails on an empty endpoint list or
    /// prefix, and on an endpoint that is not an `http://` URL.
    pub fn new(config: &EtcdDiscovery) -> Result<Etcd, EtcdError> {
        if config.endpoints.is_empty() {
            return Err(EtcdError::NoEndpoints);
        }
        if config.prefix.is_empty() {
            return Err(EtcdError::EmptyPrefix);
        }
        let endpoints = config
            .endpoints
            .iter()
            .map(|url| Ok((Arc::from(url.as_str()), endpoint(url, config.dial_timeout)?)))
            .collect::<Result<_, EtcdError>>()?;
        Ok(Etcd {
            endpoints,
            prefix: Arc::from(config.prefix.as_str()),
            range_end: prefix_end(config.prefix.as_bytes()),
            dial_timeout: config.dial_timeout,
        })
    }
}

impl Discovery for Etcd {
    fn run(
        self: Box<Self>,
        out: watch::Sender<Option<Vec<Instance>>>,
        trouble: Trouble,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(session::Runner::new(*self).run(out, trouble))
    }

    fn describe(&self) -> String {
        let urls: Vec<&str> = self.endpoints.iter().map(|(url, _)| &**url).collect();
        format!("etcd {} prefix {}", urls.join(","), self.prefix)
    }
}

/// The connection settings of one etcd endpoint.
fn endpoint(url: &str, dial_timeout: Duration) -> Result<Endpoint, EtcdError> {
    let bad = |reason: String| EtcdError::Endpoint {
        url: url.to_owned(),
        reason,
    };
    let uri: http::Uri = url.parse().map_err(|e| bad(format!("not a URL: {e}")))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => return Err(bad("TLS to etcd is not supported yet".to_owned())),
        _ => return Err(bad("expected http://host:port".to_owned())),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("no host".to_owned()));
    }
    Ok(Endpoint::from(uri)
        .connect_timeout(dial_timeout)
        .http2_keep_alive_interval(KEEPALIVE)
        .keep_alive_timeout(dial_timeout.max(Duration::from_secs(1))))
}

/// The end of the key range that holds exactly the keys starting with
/// `prefix`: the prefix with its last byte below 0xff incremented (and the
/// bytes after it dropped); `\0`, meaning no end, when there is none.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}
