use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use super::keys::Keys;
use super::pb::{Event, KeyValue, event::EventType};
use super::value::{Host, Registration, ValueError};
use super::*;

fn parse(value: &str) -> Result<Registration, ValueError> {
    Registration::parse(value.as_bytes())
}

fn ip(value: &str) -> (IpAddr, u16, u32, Option<String>) {
    let r = parse(value).unwrap_or_else(|e| panic!("`{value}` parses: {e}"));
    let Host::Ip(ip) = r.host else {
        panic!("`{value}` is not an IP literal: {r:?}")
    };
    (ip, r.port, r.weight, r.zone.as_deref().map(str::to_owned))
}

const V4: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7));

#[test]
fn bare_and_json_values() {
    assert_eq!(ip("10.0.0.7:50051"), (V4, 50051, 1, None));
    assert_eq!(ip(" 10.0.0.7:50051\n"), (V4, 50051, 1, None));
    assert_eq!(ip(r#""10.0.0.7:50051""#), (V4, 50051, 1, None));
    assert_eq!(
        ip(r#"{"address": "10.0.0.7:50051", "weight": 3, "zone": "eu-1a"}"#),
        (V4, 50051, 3, Some("eu-1a".to_owned()))
    );
    assert_eq!(
        ip(r#"{"address": "10.0.0.7:1", "zone": "", "version": "v2", "meta": {}}"#),
        (V4, 1, 1, None)
    );
    assert_eq!(
        ip("[::1]:8080"),
        (IpAddr::V6(Ipv6Addr::LOCALHOST), 8080, 1, None)
    );
    let named = parse(r#"{"address": "orders-1.internal:50051", "weight": 2}"#).unwrap();
    assert_eq!(named.host, Host::Name(Arc::from("orders-1.internal")));
    assert_eq!((named.port, named.weight), (50051, 2));
}

#[test]
fn bad_values_are_refused() {
    for value in [
        "",
        "   ",
        "10.0.0.7",
        "10.0.0.7:",
        "10.0.0.7:0",
        "10.0.0.7:65536",
        "10.0.0.7:+80",
        "10.0.0.7:http",
        ":80",
        "::1:80",
        "[::1:80",
        "http://10.0.0.7:80",
        "bad host:80",
        ".x:80",
        "{\"address\": \"10.0.0.7:80\"",
        r#"{"weight": 2}"#,
        r#"{"address": "10.0.0.7:80", "weight": 0}"#,
        r#"{"address": "10.0.0.7:80", "weight": -1}"#,
        r#"{"address": "10.0.0.7:80", "weight": "2"}"#,
        r#"{"address": 80}"#,
        r#"["10.0.0.7:80"]"#,
    ] {
        assert!(parse(value).is_err(), "`{value}` should be refused");
    }
    assert!(matches!(
        Registration::parse(b"\xff\xfe:80"),
        Err(ValueError::NotText)
    ));
    let err = parse("10.0.0.7").unwrap_err().to_string();
    assert!(err.contains("`10.0.0.7`") && err.contains("port"), "{err}");
    // What a warning shows of a value is bounded, whatever its length; a
    // zone is a short label.
    let long = "x".repeat(3000);
    let err = parse(&format!("{long}:80x")).unwrap_err().to_string();
    assert!(err.len() < 300, "{err}");
    for zone in [long.as_str(), "eu\\n1a"] {
        let value = format!(r#"{{"address": "10.0.0.7:80", "zone": "{zone}"}}"#);
        let err = parse(&value).unwrap_err().to_string();
        assert!(err.contains("not a zone name") && err.len() < 300, "{err}");
    }
    assert!(
        parse(&format!(
            r#"{{"address": "10.0.0.7:80", "zone": "{}"}}"#,
            "z".repeat(64)
        ))
        .is_ok()
    );
    // A URL is named as one, not as a broken IPv6 address.
    let err = parse("http://10.0.0.7:80").unwrap_err().to_string();
    assert!(err.contains("a URL"), "{err}");
}

#[test]
fn prefix_ends() {
    assert_eq!(prefix_end(b"/services/orders/"), b"/services/orders0");
    assert_eq!(prefix_end(b"a\xff"), b"b");
    assert_eq!(prefix_end(b"\xff\xff"), b"\0");
}

fn config(endpoints: &[&str], prefix: &str) -> EtcdDiscovery {
    EtcdDiscovery::new(endpoints.iter().map(|e| (*e).to_owned()).collect(), prefix)
}

#[tokio::test]
async fn sources_are_checked_when_built() {
    let ok = Etcd::new(&config(
        &["http://127.0.0.1:2379", "http://etcd-2:2379"],
        "/s/",
    ))
    .unwrap();
    assert_eq!(
        ok.describe(),
        "etcd http://127.0.0.1:2379,http://etcd-2:2379 prefix /s/"
    );
    assert!(matches!(
        Etcd::new(&config(&[], "/s/")),
        Err(EtcdError::NoEndpoints)
    ));
    assert!(matches!(
        Etcd::new(&config(&["http://127.0.0.1:2379"], "")),
        Err(EtcdError::EmptyPrefix)
    ));
    for url in [
        "https://127.0.0.1:2379",
        "127.0.0.1:2379",
        "http://",
        "not a url",
    ] {
        let err = Etcd::new(&config(&[url], "/s/")).unwrap_err();
        assert!(
            matches!(&err, EtcdError::Endpoint { url: u, .. } if u == url),
            "{url}: {err}"
        );
    }
}

#[test]
fn config_from_yaml() {
    let parsed: EtcdDiscovery = serde_saphyr::from_str(
        "endpoints: [http://127.0.0.1:2379]\nprefix: /services/orders/\ndial_timeout: 2s\n",
    )
    .unwrap();
    assert_eq!(parsed.endpoints, ["http://127.0.0.1:2379"]);
    assert_eq!(parsed.prefix, "/services/orders/");
    assert_eq!(parsed.dial_timeout, std::time::Duration::from_secs(2));
    let defaulted: EtcdDiscovery =
        serde_saphyr::from_str("endpoints: [http://127.0.0.1:2379]\nprefix: /s/\n").unwrap();
    assert_eq!(defaulted.dial_timeout, std::time::Duration::from_secs(5));
    for bad in [
        "endpoints: [http://127.0.0.1:2379]\nprefix: /s/\nttl: 3\n",
        "endpoints: [ftp://127.0.0.1:2379]\nprefix: /s/\n",
        "endpoints: [http://127.0.0.1:2379]\n",
    ] {
        assert!(
            serde_saphyr::from_str::<EtcdDiscovery>(bad).is_err(),
            "{bad}"
        );
    }
}

fn kv(key: &str, value: &str, revision: i64) -> KeyValue {
    KeyValue {
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
        mod_revision: revision,
        ..KeyValue::default()
    }
}

fn put(key: &str, value: &str, revision: i64) -> Event {
    Event {
        r#type: EventType::Put.into(),
        kv: Some(kv(key, value, revision)),
        prev_kv: None,
    }
}

fn delete(key: &str, revision: i64) -> Event {
    Event {
        r#type: EventType::Delete.into(),
        kv: Some(kv(key, "", revision)),
        prev_kv: None,
    }
}

fn addresses(keys: &Keys) -> Vec<String> {
    keys.instances()
        .iter()
        .map(|i| format!("{}/{}", i.address, i.weight))
        .collect()
}

#[tokio::test]
async fn keys_follow_reads_and_events() {
    let mut keys = Keys::new(Arc::from("/s/"));
    keys.replace(vec![
        kv("/s/b", "10.0.0.2:80", 5),
        kv("/s/a", r#"{"address": "10.0.0.1:80", "weight": 4}"#, 3),
        kv("/s/bad", "nonsense", 4),
    ])
    .await;
    assert_eq!(addresses(&keys), ["10.0.0.1:80/4", "10.0.0.2:80/1"]);

    keys.apply(vec![
        put("/s/c", "10.0.0.3:80", 6),
        put("/s/a", "10.0.0.9:80", 7),
        delete("/s/b", 8),
    ])
    .await;
    assert_eq!(addresses(&keys), ["10.0.0.9:80/1", "10.0.0.3:80/1"]);

    // A put and a delete of the same key in one response: gone.
    keys.apply(vec![put("/s/d", "10.0.0.4:80", 9), delete("/s/d", 10)])
        .await;
    assert_eq!(addresses(&keys), ["10.0.0.9:80/1", "10.0.0.3:80/1"]);

    // The same address under two keys: the first key wins.
    keys.apply(vec![put(
        "/s/0",
        r#"{"address": "10.0.0.3:80", "weight": 2}"#,
        11,
    )])
    .await;
    assert_eq!(addresses(&keys), ["10.0.0.3:80/2", "10.0.0.9:80/1"]);

    // A fresh read replaces everything.
    keys.replace(vec![kv("/s/z", "10.0.0.5:80", 12)]).await;
    assert_eq!(addresses(&keys), ["10.0.0.5:80/1"]);
    // Even a value at the same revision (etcd restored from elsewhere).
    keys.replace(vec![kv("/s/z", "10.0.0.6:80", 12)]).await;
    assert_eq!(addresses(&keys), ["10.0.0.6:80/1"]);
}

#[tokio::test]
async fn names_resolve_to_every_address() {
    let mut keys = Keys::new(Arc::from("/s/"));
    keys.replace(vec![kv(
        "/s/a",
        r#"{"address": "localhost:7000", "zone": "z"}"#,
        2,
    )])
    .await;
    let expected: std::collections::BTreeSet<SocketAddr> =
        tokio::net::lookup_host("localhost:7000")
            .await
            .unwrap()
            .collect();
    let instances = keys.instances();
    let found: std::collections::BTreeSet<SocketAddr> =
        instances.iter().map(|i| i.address).collect();
    assert_eq!(found, expected);
    assert_eq!(found.len(), instances.len());
    assert!(
        instances.iter().all(
            |i| i.server_name.as_deref() == Some("localhost") && i.zone.as_deref() == Some("z")
        )
    );
    assert!(keys.has_names());
}

#[tokio::test]
async fn watch_responses_end_or_update_the_watch() {
    use super::pb::WatchResponse;
    use super::session::{End, Failure, Runner};

    let source = Etcd::new(&config(&["http://127.0.0.1:2379"], "/s/")).unwrap();
    let mut runner = Runner::new(source);
    let (out, instances) = tokio::sync::watch::channel(None);

    let created = WatchResponse {
        created: true,
        ..WatchResponse::default()
    };
    assert!(runner.apply(created, &out).await.is_none());
    assert_eq!(*instances.borrow(), None, "nothing learned from a creation");

    let events = WatchResponse {
        events: vec![put("/s/a", "10.0.0.1:80", 3)],
        ..WatchResponse::default()
    };
    assert!(runner.apply(events, &out).await.is_none());
    assert_eq!(
        instances.borrow().as_deref().map(|s| s.len()),
        Some(1),
        "an event is published"
    );

    let compacted = WatchResponse {
        canceled: true,
        compact_revision: 7,
        ..WatchResponse::default()
    };
    let end = runner.apply(compacted, &out).await;
    assert!(matches!(end, Some(End::Compacted(7))), "{end:?}");

    let canceled = WatchResponse {
        canceled: true,
        cancel_reason: "no leader".to_owned(),
        ..WatchResponse::default()
    };
    let end = runner.apply(canceled, &out).await;
    assert!(
        matches!(&end, Some(End::Failed(Failure::Canceled(why))) if why == "no leader"),
        "{end:?}"
    );
    assert_eq!(
        instances.borrow().as_deref().map(|s| s.len()),
        Some(1),
        "the set stays when the watch ends"
    );
}
