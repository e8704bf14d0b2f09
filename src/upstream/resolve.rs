//! Resolving pools' host names: through the system resolver, or through
//! the DNS servers in `dns.servers` (Consul's DNS interface, say) and only
//! them.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;

/// Longest wait for one answer from a DNS server; a lookup holds up its
/// pool's round of health checks, so it must not hang for long.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// Finds every address of a host name, as the pools' keepers ask every
/// `dns_refresh`. Cheap to clone: the pools of a snapshot share one (and
/// with it one answer cache and one set of server connections).
///
/// # Examples
///
/// ```
/// # use std::time::Duration;
/// # use protogate::upstream::Resolver;
/// # async fn run() -> Result<(), protogate::upstream::ResolveError> {
/// let consul = Resolver::new(&["127.0.0.1:8600".parse().unwrap()], Duration::from_secs(5));
/// let found = consul.lookup("orders.service.consul", 50051).await?;
/// // An address is not looked up at all.
/// let fixed = consul.lookup("10.0.0.7", 50051).await?;
/// assert_eq!(fixed, ["10.0.0.7:50051".parse().unwrap()]);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Resolver {
    way: Way,
}

#[derive(Clone)]
enum Way {
    /// `getaddrinfo`: the system's DNS settings and `/etc/hosts`.
    System,
    /// The configured servers.
    Servers(Arc<Servers>),
}

struct Servers {
    addrs: Vec<SocketAddr>,
    /// The client, or why it could not be made (then every lookup fails
    /// with that).
    client: Result<TokioResolver, String>,
}

/// A host name that did not resolve.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The system resolver failed.
    #[error("system resolver: {0}")]
    System(#[source] std::io::Error),
    /// The configured DNS servers failed, or have no address for the name.
    #[error("DNS servers {servers}: {source}")]
    Dns {
        /// The servers asked.
        servers: String,
        /// What went wrong.
        #[source]
        source: NetError,
    },
    /// The DNS client could not be set up.
    #[error("DNS servers {servers}: cannot set up a client: {reason}")]
    Setup {
        /// The servers.
        servers: String,
        /// Why.
        reason: String,
    },
    /// The name resolved to no address.
    #[error("no address found")]
    NoAddress,
}

impl Resolver {
    /// The system resolver (what an empty `dns.servers` means).
    pub fn system() -> Resolver {
        Resolver { way: Way::System }
    }

    /// A resolver asking only `servers` (the system resolver when there
    /// are none), over UDP, then TCP when an answer is truncated or UDP
    /// fails. `/etc/hosts` is not read. Answers are cached for their
    /// records' TTL, but never longer than `fresh_for`: give the shortest
    /// `dns_refresh` of the pools that use it, so each sees a change
    /// within its own interval.
    pub fn new(servers: &[SocketAddr], fresh_for: Duration) -> Resolver {
        if servers.is_empty() {
            return Resolver::system();
        }
        let config = ResolverConfig::from_name_servers(
            servers
                .iter()
                .map(|addr| {
                    let mut server = NameServerConfig::udp_and_tcp(addr.ip());
                    for connection in &mut server.connections {
                        connection.port = addr.port();
                    }
                    server
                })
                .collect(),
        );
        let mut options = ResolverOpts::default();
        options.timeout = QUERY_TIMEOUT;
        options.try_tcp_on_error = true;
        options.use_hosts_file = ResolveHosts::Never;
        options.cache_size = 1024;
        options.positive_max_ttl = Some(fresh_for);
        options.negative_max_ttl = Some(fresh_for);
        let client = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(options)
            .build()
            .map_err(|err| err.to_string());
        Resolver {
            way: Way::Servers(Arc::new(Servers {
                addrs: servers.to_vec(),
                client,
            })),
        }
    }

    /// Every address (A and AAAA records) of `host`, with `port`. An IP
    /// address is returned as it is, without a lookup. A name with no
    /// address at all (`NXDOMAIN`, or no A or AAAA record) is an error.
    pub async fn lookup(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, ResolveError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let found: Vec<SocketAddr> = match &self.way {
            Way::System => tokio::net::lookup_host((host, port))
                .await
                .map_err(ResolveError::System)?
                .collect(),
            Way::Servers(servers) => servers
                .lookup(host)
                .await?
                .into_iter()
                .map(|ip| SocketAddr::new(ip, port))
                .collect(),
        };
        if found.is_empty() {
            return Err(ResolveError::NoAddress);
        }
        Ok(found)
    }
}

impl Servers {
    /// The A and AAAA records of `host`, asked for at once. A type the
    /// name has no records of adds none; any other failure fails the
    /// whole lookup (so that the pool keeps its addresses rather than
    /// losing half of them to a lost answer).
    async fn lookup(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError> {
        let client = self.client.as_ref().map_err(|reason| ResolveError::Setup {
            servers: self.names(),
            reason: reason.clone(),
        })?;
        let (v4, v6) = tokio::join!(client.ipv4_lookup(host), client.ipv6_lookup(host));
        let mut ips = Vec::new();
        let mut none = None;
        for found in [v4, v6] {
            match found {
                Ok(lookup) => ips.extend(lookup.answers().iter().filter_map(|r| r.data.ip_addr())),
                Err(err) if err.is_no_records_found() => none = Some(err),
                Err(source) => {
                    return Err(ResolveError::Dns {
                        servers: self.names(),
                        source,
                    });
                }
            }
        }
        match none {
            Some(source) if ips.is_empty() => Err(ResolveError::Dns {
                servers: self.names(),
                source,
            }),
            _ => Ok(ips),
        }
    }

    fn names(&self) -> String {
        let names: Vec<String> = self.addrs.iter().map(ToString::to_string).collect();
        names.join(", ")
    }
}

/// The servers asked, not the client's state: upstreams compare their
/// settings' `Debug` text to tell whether a reload may keep them.
impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.way {
            Way::System => f.write_str("Resolver(system)"),
            Way::Servers(servers) => f.debug_tuple("Resolver").field(&servers.addrs).finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn addresses_are_not_looked_up() {
        // A DNS server that must hear nothing.
        let server = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let resolver = Resolver::new(&[server.local_addr().unwrap()], Duration::from_secs(1));
        let found = resolver.lookup("10.1.2.3", 80).await.unwrap();
        assert_eq!(found, ["10.1.2.3:80".parse().unwrap()]);
        let found = resolver.lookup("::1", 443).await.unwrap();
        assert_eq!(found, ["[::1]:443".parse().unwrap()]);
        let mut buf = [0; 512];
        let asked = tokio::time::timeout(Duration::from_millis(100), server.recv(&mut buf)).await;
        assert!(asked.is_err(), "the server was asked: {asked:?}");
    }

    #[test]
    fn debug_names_the_servers_only() {
        let servers = [
            "127.0.0.1:8600".parse().unwrap(),
            "[::1]:53".parse().unwrap(),
        ];
        let resolver = Resolver::new(&servers, Duration::from_secs(1));
        assert_eq!(
            format!("{resolver:?}"),
            "Resolver([127.0.0.1:8600, [::1]:53])"
        );
        // The cache's bound is not part of it.
        let other = Resolver::new(&servers, Duration::from_secs(30));
        assert_eq!(format!("{resolver:?}"), format!("{other:?}"));
        assert_eq!(
            format!("{:?}", Resolver::new(&[], Duration::from_secs(1))),
            "Resolver(system)"
        );
    }
}
