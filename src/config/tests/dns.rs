//! DNS servers that resolve upstream names: socket addresses with a port.

use super::*;

#[test]
fn dns_servers_are_addresses() {
    let config = parse("dns:\n  servers: [\"127.0.0.1:8600\", \"[::1]:53\"]\n");
    assert_eq!(
        config.dns.servers,
        [
            SocketAddr::from(([127, 0, 0, 1], 8600)),
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 53)),
        ]
    );
    assert!(parse("listen: 127.0.0.1:0\n").dns.servers.is_empty());
}

#[test]
fn bad_dns_server_is_named_with_its_line() {
    let err = error("dns:\n  servers:\n    - 127.0.0.1:8600\n    - consul.local:8600\n");
    assert_at(&err, "dns.servers[1]", 4);
    assert!(err.message.contains("`consul.local:8600`"), "{err}");
    let err = error("dns:\n  servers: [10.0.0.2]\n");
    assert!(err.key.starts_with("dns.servers"), "{err}");
    assert!(err.message.contains("no port"), "{err}");
    let err = error("dns:\n  server: [127.0.0.1:53]\n");
    assert_eq!(err.key, "dns.server", "{err}");
}

#[test]
fn dns_server_without_a_port_fails_validation() {
    let mut config = Config::default();
    config.dns.servers = vec![SocketAddr::from(([127, 0, 0, 1], 0))];
    let err = config.validate().unwrap_err().to_string();
    assert!(
        err.contains("dns.servers: `127.0.0.1:0` has port 0"),
        "{err}"
    );
}
