use super::*;

/// A channel to a loopback port, not connected.
fn channel(port: u16) -> Channel {
    let uri: http::Uri = format!("http://127.0.0.1:{port}").parse().unwrap();
    let user_agent = http::HeaderValue::from_static("test");
    crate::upstream::channel::Dial::new(&uri, Duration::from_secs(1), user_agent, None)
        .unwrap()
        .connect_lazy()
}

fn member(port: u16, weight: u32, zone: Option<&str>) -> Arc<Member> {
    Arc::new(Member::new(
        SocketAddr::from(([127, 0, 0, 1], port)),
        channel(port),
        weight,
        zone.map(Into::into),
    ))
}

fn balancer(policy: BalancePolicy, members: Vec<Arc<Member>>, zone: Option<&str>) -> Balancer {
    Balancer::new(
        "test",
        policy,
        OutlierDetection::default(),
        Rotation::new(members, zone),
    )
}

fn counts(
    balancer: &Balancer,
    calls: usize,
    hash: impl Fn(usize) -> Option<u64>,
) -> Vec<(u16, usize)> {
    let mut counts = std::collections::BTreeMap::new();
    for i in 0..calls {
        let lease = balancer.pick(hash(i), &[]).unwrap();
        *counts.entry(lease.address().unwrap().port()).or_insert(0) += 1;
    }
    counts.into_iter().collect()
}

#[tokio::test]
async fn round_robin_takes_turns() {
    let b = balancer(
        BalancePolicy::RoundRobin,
        vec![member(1, 5, None), member(2, 1, None), member(3, 1, None)],
        None,
    );
    let order: Vec<u16> = (0..6)
        .map(|_| b.pick(None, &[]).unwrap().address().unwrap().port())
        .collect();
    assert_eq!(order, [1, 2, 3, 1, 2, 3]);
}

#[tokio::test]
async fn smooth_weighted_round_robin_interleaves() {
    let b = balancer(
        BalancePolicy::WeightedRoundRobin,
        vec![member(1, 5, None), member(2, 1, None), member(3, 1, None)],
        None,
    );
    let order: Vec<u16> = (0..7)
        .map(|_| b.pick(None, &[]).unwrap().address().unwrap().port())
        .collect();
    // Five of seven to the heavy one, never all in a row.
    assert_eq!(order, [1, 1, 2, 1, 3, 1, 1]);
}

#[tokio::test]
async fn least_request_avoids_the_busy_member() {
    let b = balancer(
        BalancePolicy::LeastRequest,
        vec![member(1, 1, None), member(2, 1, None)],
        None,
    );
    let held: Vec<Lease> = (0..10).map(|_| b.pick(None, &[]).unwrap()).collect();
    let busy = held
        .iter()
        .filter(|l| l.address().unwrap().port() == 1)
        .count();
    // With two members, p2c always compares both: loads stay level.
    assert_eq!(busy, 5);
}

#[tokio::test]
async fn consistent_hash_is_sticky_and_moves_only_the_lost_share() {
    let members = vec![member(1, 1, None), member(2, 1, None), member(3, 1, None)];
    let b = balancer(BalancePolicy::ConsistentHash, members.clone(), None);
    let keys: Vec<u64> = (0..300)
        .map(|i| fnv(format!("user-{i}").as_bytes()))
        .collect();
    let before: Vec<u16> = keys
        .iter()
        .map(|k| b.pick(Some(*k), &[]).unwrap().address().unwrap().port())
        .collect();
    let again: Vec<u16> = keys
        .iter()
        .map(|k| b.pick(Some(*k), &[]).unwrap().address().unwrap().port())
        .collect();
    assert_eq!(before, again);
    for port in [1, 2, 3] {
        let share = before.iter().filter(|p| **p == port).count();
        assert!(
            (60..=140).contains(&share),
            "port {port} took {share} of 300"
        );
    }
    b.publish(Rotation::new(
        vec![members[0].clone(), members[1].clone()],
        None,
    ));
    for (key, old) in keys.iter().zip(&before) {
        let now = b.pick(Some(*key), &[]).unwrap().address().unwrap().port();
        if *old != 3 {
            assert_eq!(now, *old, "a key on a member that stayed moved");
        }
    }
}

#[tokio::test]
async fn zone_first_then_failover() {
    let near = member(1, 1, Some("a"));
    let far = member(2, 1, Some("b"));
    let b = balancer(
        BalancePolicy::LeastRequest,
        vec![near.clone(), far.clone()],
        Some("a"),
    );
    assert_eq!(counts(&b, 20, |_| None), [(1, 20)]);
    b.publish(Rotation::new(vec![far], Some("a")));
    assert_eq!(counts(&b, 5, |_| None), [(2, 5)]);
}

#[tokio::test]
async fn failing_member_is_ejected_but_never_the_last() {
    let b = balancer(
        BalancePolicy::RoundRobin,
        vec![member(1, 1, None), member(2, 1, None)],
        None,
    );
    for _ in 0..5 {
        let lease = b.pick(None, &[]).unwrap();
        let outcome = if lease.address().unwrap().port() == 1 {
            Outcome::Failed
        } else {
            Outcome::Answered
        };
        b.record(&lease, outcome);
        let _ = b.pick(None, &[]);
    }
    // Five calls reached port 1 and failed: it is out.
    assert_eq!(counts(&b, 10, |_| None), [(2, 10)]);
    // The last member standing is kept, failing or not.
    for _ in 0..10 {
        let lease = b.pick(None, &[]).unwrap();
        b.record(&lease, Outcome::Failed);
    }
    assert_eq!(counts(&b, 4, |_| None), [(2, 4)]);
}

#[tokio::test]
async fn a_retry_skips_the_endpoints_it_tried() {
    let members: Vec<Arc<Member>> = (1..=2)
        .map(|port| {
            Arc::new(Member::new(
                SocketAddr::from(([127, 0, 0, 1], port)),
                channel(port),
                1,
                None,
            ))
        })
        .collect();
    let b = Balancer::new(
        "test",
        BalancePolicy::LeastRequest,
        OutlierDetection::default(),
        Rotation::new(members, None),
    );
    let tried = [SocketAddr::from(([127, 0, 0, 1], 1))];
    for _ in 0..20 {
        let lease = b.pick(None, &tried).unwrap();
        assert_eq!(lease.address().unwrap().port(), 2);
    }
    // Everything tried: better one of them than nothing.
    let all = [tried[0], SocketAddr::from(([127, 0, 0, 1], 2))];
    assert!(b.pick(None, &all).is_some());
}
