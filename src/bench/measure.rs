//! One run with the gateway watched: the load, and what `/proc` says
//! about the gateway (and etcd) before, during and after it.

use std::time::Duration;

use tokio::time::Instant;

use super::load::{self, Budget, Call, Outcome};
use super::process;

/// The processes a run reads from `/proc`.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Watched {
    /// The gateway: CPU time and memory.
    pub(super) gateway: Option<u32>,
    /// What the gateway calls (etcd): CPU time.
    pub(super) upstream: Option<u32>,
}

impl Watched {
    pub(super) fn none() -> Watched {
        Watched::default()
    }

    pub(super) fn gateway(pid: u32) -> Watched {
        Watched {
            gateway: Some(pid),
            upstream: None,
        }
    }

    /// What `/proc` says about them now.
    fn read(&self) -> Reading {
        let cpu = |pid: Option<u32>| pid.and_then(|pid| process::cpu_time(pid).ok());
        Reading {
            gateway_cpu: cpu(self.gateway),
            gateway_rss: self.gateway.and_then(|pid| process::rss_bytes(pid).ok()),
            upstream_cpu: cpu(self.upstream),
        }
    }
}

/// What `/proc` says about the watched processes at one moment.
#[derive(Debug, Clone, Copy, Default)]
struct Reading {
    gateway_cpu: Option<Duration>,
    gateway_rss: Option<u64>,
    upstream_cpu: Option<Duration>,
}

/// A run's outcome with what `/proc` said about the watched processes.
#[derive(Debug)]
pub(super) struct Measured {
    pub(super) outcome: Outcome,
    /// The gateway's CPU time during the measured part.
    pub(super) gateway_cpu: Option<Duration>,
    /// The gateway's largest resident size seen during the run.
    pub(super) gateway_rss: Option<u64>,
    /// How much the gateway's resident size grew from the end of the
    /// measured part's first sixth ([`SETTLING`]) to its end (negative: it
    /// shrank); unknown without a reading in between.
    pub(super) gateway_rss_growth: Option<i64>,
    /// The upstream's CPU time during the measured part.
    pub(super) upstream_cpu: Option<Duration>,
}

/// How often the gateway's memory is read during a run.
const RSS_EVERY: Duration = Duration::from_millis(50);

/// The share of the measured part that growth is not judged over. A run
/// starts with its connections fresh: their buffers and the allocator's
/// pages reach their working size in the first seconds (a 60 s soak at
/// concurrency 256 over HTTP/1.1 went from 21 to 33 MiB in its first 5 s,
/// then stayed within 0.4 MiB), and that is not growth.
const SETTLING: u32 = 6;

/// Runs `calls` against `budget` with CPU time and memory read when the
/// measured part starts and ends, and the gateway's memory every
/// `RSS_EVERY` in between: its peak, and its size once settled.
pub(super) async fn measure<C: Call>(calls: Vec<C>, budget: Budget, watched: Watched) -> Measured {
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let sampler = watched.gateway.map(|pid| {
        tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut every = tokio::time::interval(RSS_EVERY);
            loop {
                if let Ok(rss) = process::rss_bytes(pid) {
                    samples.push((Instant::now(), rss));
                }
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = every.tick() => {}
                }
            }
            samples
        })
    });
    let mut before = (Instant::now(), Reading::default());
    let mut after = (Instant::now(), Reading::default());
    let outcome = load::run(
        calls,
        budget,
        || before = (Instant::now(), watched.read()),
        || after = (Instant::now(), watched.read()),
    )
    .await;
    let _ = stop.send(());
    let samples = match sampler {
        Some(task) => task.await.unwrap_or_default(),
        None => Vec::new(),
    };
    let (started, before) = before;
    let (ended, after) = after;
    let peak = samples.iter().map(|&(_, rss)| rss).max();
    let settled_at = started + ended.saturating_duration_since(started) / SETTLING;
    let settled = samples
        .iter()
        .find(|&&(at, _)| at >= settled_at && at <= ended)
        .map(|&(_, rss)| rss);
    let spent = |a: Option<Duration>, b: Option<Duration>| Some(a?.saturating_sub(b?));
    let growth =
        |a: Option<u64>, b: Option<u64>| Some(i64::try_from(a?).ok()? - i64::try_from(b?).ok()?);
    Measured {
        outcome,
        gateway_cpu: spent(after.gateway_cpu, before.gateway_cpu),
        gateway_rss: peak.max(after.gateway_rss),
        gateway_rss_growth: growth(after.gateway_rss, settled),
        upstream_cpu: spent(after.upstream_cpu, before.upstream_cpu),
    }
}
