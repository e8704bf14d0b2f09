//! Pools resolving host names through the DNS servers in `dns.servers`:
//! a real DNS server on loopback (hickory-server) serves `svc.test.`, and
//! its records change under a running gateway. The backends share one
//! port on several loopback addresses (Linux routes all of 127/8 to `lo`),
//! so that each A record is one backend.

mod support;

/// The longest wait for calls to spread as a test wants.
const SETTLE: Duration = Duration::from_secs(5);

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_server::Server;
use hickory_server::proto::rr::rdata::{A, AAAA, SOA};
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordSet, RecordType, RrKey};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};
use protogate::upstream::{ResolveError, Resolver};
use protogate::{Config, UpstreamConfig};
use support::spread::{spread, until_spread};
use support::{EchoBackend, TestGateway};

/// How often the gateway resolves the name again.
const REFRESH: Duration = Duration::from_millis(200);

/// The records' TTL, and the SOA's for negative answers: far longer than
/// [`REFRESH`] and the whole test, so that a change is seen only because
/// the gateway keeps no answer longer than its refresh.
const TTL: u32 = 600;

/// A DNS server on a free UDP port of 127.0.0.1, authoritative for
/// `svc.test.`, whose records the test sets.
struct Dns {
    addr: SocketAddr,
    zone: Arc<InMemoryZoneHandler>,
    /// Serves until dropped.
    _server: Server<Catalog>,
}

impl Dns {
    async fn start() -> Dns {
        let origin = Name::from_ascii("svc.test.").unwrap();
        let zone: InMemoryZoneHandler =
            InMemoryZoneHandler::empty(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);
        let soa = SOA::new(
            Name::from_ascii("ns.svc.test.").unwrap(),
            Name::from_ascii("admin.svc.test.").unwrap(),
            1,
            60,
            60,
            600,
            TTL,
        );
        assert!(
            zone.upsert(Record::from_rdata(origin.clone(), TTL, RData::SOA(soa)), 1)
                .await
        );
        let zone = Arc::new(zone);
        let mut catalog = Catalog::new();
        let handler: Arc<dyn ZoneHandler> = zone.clone();
        catalog.upsert(LowerName::new(&origin), vec![handler]);
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let mut server = Server::new(catalog);
        server.register_socket(socket);
        Dns {
            addr,
            zone,
            _server: server,
        }
    }

    /// Makes `ips` the A and AAAA records of `label`.svc.test; none: the
    /// name is gone (NXDOMAIN).
    async fn set(&self, label: &str, ips: &[IpAddr]) {
        let name = Name::from_ascii(format!("{label}.svc.test.")).unwrap();
        let mut records = self.zone.records_mut().await;
        for record_type in [RecordType::A, RecordType::AAAA] {
            let key = RrKey::new(LowerName::new(&name), record_type);
            let mut set = RecordSet::with_ttl(name.clone(), record_type, TTL);
            for ip in ips {
                match (ip, record_type) {
                    (IpAddr::V4(v4), RecordType::A) => set.add_rdata(RData::A(A(*v4))),
                    (IpAddr::V6(v6), RecordType::AAAA) => set.add_rdata(RData::AAAA(AAAA(*v6))),
                    _ => continue,
                };
            }
            if set.is_empty() {
                records.remove(&key);
            } else {
                records.insert(key, Arc::new(set));
            }
        }
    }

    /// What a client asking this server directly gets for `label`.
    async fn ask(&self, label: &str) -> Result<Vec<SocketAddr>, ResolveError> {
        Resolver::new(&[self.addr], Duration::from_millis(1))
            .lookup(&format!("{label}.svc.test"), 1)
            .await
    }
}

fn v4(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// Echo backends for the kitchen API on one port of each of `ips`.
async fn backends(ips: &[IpAddr]) -> (u16, Vec<EchoBackend>) {
    let pool = support::pool(&support::kitchen());
    // A port free on the first address, checked on the others.
    let mut free = None;
    for _ in 0..20 {
        let first = std::net::TcpListener::bind((ips[0], 0)).unwrap();
        let port = first.local_addr().unwrap().port();
        let others: Result<Vec<_>, _> = ips[1..]
            .iter()
            .map(|ip| std::net::TcpListener::bind((*ip, port)))
            .collect();
        if others.is_ok() {
            free = Some(port);
            break;
        }
    }
    let port = free.expect("a port free on every address");
    let mut started = Vec::new();
    for ip in ips {
        started.push(EchoBackend::start_on(pool.clone(), SocketAddr::new(*ip, port)).await);
    }
    (port, started)
}

/// The gateway with one pool at `orders.svc.test:port`, resolved through
/// `dns` every [`REFRESH`].
async fn gateway(dns: &Dns, port: u16) -> TestGateway {
    let mut config = Config {
        embedded_descriptors: vec![support::kitchen()],
        ..Config::default()
    };
    config.dns.servers = vec![dns.addr];
    let mut upstream = UpstreamConfig::new(format!("http://orders.svc.test:{port}"));
    upstream.dns_refresh = Some(REFRESH);
    config.upstreams.insert("default".to_owned(), upstream);
    TestGateway::start(config).await
}

#[tokio::test]
async fn calls_are_balanced_over_every_a_record() {
    let dns = Dns::start().await;
    let (port, backends) = backends(&[v4(2), v4(3)]).await;
    dns.set("orders", &[v4(2), v4(3)]).await;
    let gateway = gateway(&dns, port).await;
    let got = spread(&gateway, &backends, 60).await;
    assert!(got.iter().all(|n| *n >= 10), "both records serve: {got:?}");
    assert_eq!(got.iter().sum::<usize>(), 60);
}

#[tokio::test]
async fn aaaa_records_are_endpoints_too() {
    let dns = Dns::start().await;
    let (port, backends) = backends(&[v4(2), IpAddr::V6(Ipv6Addr::LOCALHOST)]).await;
    dns.set("orders", &[v4(2), IpAddr::V6(Ipv6Addr::LOCALHOST)])
        .await;
    let gateway = gateway(&dns, port).await;
    let got = spread(&gateway, &backends, 60).await;
    assert!(got.iter().all(|n| *n >= 10), "A and AAAA serve: {got:?}");
}

#[tokio::test]
async fn records_that_come_and_go_are_followed_live() {
    let dns = Dns::start().await;
    let (port, backends) = backends(&[v4(2), v4(3), v4(4)]).await;
    dns.set("orders", &[v4(2), v4(3)]).await;
    let gateway = gateway(&dns, port).await;
    let got = spread(&gateway, &backends, 40).await;
    assert_eq!(got[2], 0, "no record, no calls: {got:?}");
    assert!(got[0] > 0 && got[1] > 0, "{got:?}");

    // A record added: its backend gets calls.
    dns.set("orders", &[v4(2), v4(3), v4(4)]).await;
    until_spread(&gateway, &backends, SETTLE, |got| got[2] > 0).await;

    // A record removed: its backend gets none, and no call fails (every
    // call in `spread` must succeed).
    dns.set("orders", &[v4(3), v4(4)]).await;
    until_spread(&gateway, &backends, SETTLE, |got| got[0] == 0).await;
    let got = spread(&gateway, &backends, 40).await;
    assert_eq!(got[0], 0, "{got:?}");
    assert!(got[1] > 0 && got[2] > 0, "{got:?}");
}

#[tokio::test]
async fn a_name_gone_from_dns_keeps_its_last_addresses() {
    let dns = Dns::start().await;
    let (port, backends) = backends(&[v4(2), v4(3), v4(4)]).await;
    dns.set("orders", &[v4(2), v4(3)]).await;
    let gateway = gateway(&dns, port).await;
    until_spread(&gateway, &backends, SETTLE, |got| got[0] > 0 && got[1] > 0).await;

    // The name is gone: the server says NXDOMAIN.
    dns.set("orders", &[]).await;
    match dns.ask("orders").await {
        Err(ResolveError::Dns { source, .. }) if source.is_nx_domain() => {}
        other => panic!("expected NXDOMAIN, got {other:?}"),
    }
    // Several refreshes later the pool still calls both addresses.
    tokio::time::sleep(REFRESH * 5).await;
    let got = spread(&gateway, &backends, 40).await;
    assert!(got[0] > 0 && got[1] > 0, "{got:?}");

    // And it kept asking: a new answer replaces the old addresses.
    dns.set("orders", &[v4(4)]).await;
    assert_eq!(
        dns.ask("orders").await.unwrap(),
        [SocketAddr::new(v4(4), 1)]
    );
    until_spread(&gateway, &backends, SETTLE, |got| got == [0, 0, 20]).await;
}

/// A name that never resolved leaves the pool empty, and its calls say
/// why: the lookup's error, not only "no address".
#[tokio::test]
async fn a_name_that_never_resolved_says_why() {
    let dns = Dns::start().await;
    let gateway = gateway(&dns, 1).await;
    let response = support::http1()
        .get(gateway.url("/v1/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("does not resolve") && message.contains("orders.svc.test"),
        "{message}"
    );
}
