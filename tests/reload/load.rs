//! Reloads under load: fifty of them, and no request fails.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_reloads_under_load_fail_no_request() {
    let backend = backend().await;
    let old = api(&["Old"]);
    let new = api(&["New"]);
    let current = Arc::new(Mutex::new(old.clone()));
    let mut base = config(&[("default", UpstreamConfig::new(backend.url()))]);
    base.admin.listen = None;
    let source = {
        let current = current.clone();
        Box::new(move || {
            let mut config = base.clone();
            config.embedded_descriptors = vec![current.lock().clone()];
            Ok(config)
        })
    };
    let gateway = Arc::new(Running::start_with(source).await);
    let reloader = gateway.server.reloader().expect("reloading").clone();

    // A bounded load on the route every version has, over HTTP/1.1 and
    // HTTP/2, until the reloads are done.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let mut load = Vec::new();
    for worker in 0..4 {
        let client = if worker % 2 == 0 {
            support::http1()
        } else {
            support::http2()
        };
        let url = gateway.url(&format!("/v1/stable/w{worker}"));
        let (stop, sent, failures) = (stop.clone(), sent.clone(), failures.clone());
        load.push(tokio::spawn(async move {
            for _ in 0..100_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                sent.fetch_add(1, Ordering::Relaxed);
                match client.get(&url).send().await {
                    Ok(response) if response.status() == 200 => {
                        let body: Value = response.json().await.unwrap();
                        if body["id"] != format!("w{worker}") {
                            failures.lock().push(format!("wrong answer {body}"));
                        }
                    }
                    Ok(response) => {
                        let status = response.status();
                        let body = response.text().await.unwrap_or_default();
                        failures.lock().push(format!("{status}: {body}"));
                    }
                    Err(err) => failures.lock().push(err.to_string()),
                }
            }
        }));
    }

    for round in 0..50 {
        let (now, added, removed) = if round % 2 == 0 {
            (&new, "/v1/new/x", "/v1/old/x")
        } else {
            (&old, "/v1/old/x", "/v1/new/x")
        };
        *current.lock() = now.clone();
        reloader.reload("test").await.expect("reload succeeds");
        assert_eq!(gateway.status_of(added).await, 200, "round {round}");
        assert_eq!(gateway.status_of(removed).await, 404, "round {round}");
    }
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let failures = failures.lock();
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    let sent = sent.load(Ordering::Relaxed);
    assert!(sent >= 100, "the load ran beside the reloads ({sent} sent)");
    // The first load and fifty reloads.
    assert_eq!(reloader.status().loads, 51);
}
