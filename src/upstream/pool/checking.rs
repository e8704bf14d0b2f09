//! Checking a pool's endpoints, and moving them in or out of the rotation.
//!
//! With `health_check`, an endpoint passes when it answers
//! `grpc.health.v1.Health/Check` with `SERVING` on its own connection;
//! without, when a TCP connection to it opens. The thresholds say how
//! many passes or failures in a row move it in or out.

use std::net::SocketAddr;
use std::time::Duration;

use super::Keeper;
use crate::config::HealthCheck;
use crate::upstream::Channel;

/// Without `health_check`, endpoints are probed by opening a TCP
/// connection: one that is refused or times out leaves the rotation until
/// a probe connects again.
pub(super) fn connect_probe() -> HealthCheck {
    HealthCheck {
        service: String::new(),
        interval: Duration::from_secs(5),
        timeout: Duration::from_secs(1),
        unhealthy_threshold: 1,
        healthy_threshold: 1,
    }
}

impl Keeper {
    /// Checks every endpoint at once and moves them in or out of the
    /// rotation by the thresholds.
    pub(super) async fn check_all(&mut self) {
        let check = self.check.clone().unwrap_or_else(connect_probe);
        let checks = self.endpoints.iter().map(|(address, state)| {
            let checker = state.checker.clone();
            let check = &check;
            async move {
                let passed = match checker {
                    Some(channel) => health(channel, check).await,
                    None => probe(*address, check.timeout).await,
                };
                (*address, passed)
            }
        });
        let results = futures_util::future::join_all(checks).await;
        for (address, passed) in results {
            let Some(state) = self.endpoints.get_mut(&address) else {
                continue;
            };
            match passed {
                Ok(()) => {
                    state.failures = 0;
                    state.passes = state.passes.saturating_add(1);
                    if !state.in_rotation && state.passes >= check.healthy_threshold {
                        state.in_rotation = true;
                        tracing::info!(upstream = %self.name, %address, "Endpoint passes its health check; in the rotation");
                    }
                }
                Err(why) => {
                    state.passes = 0;
                    state.failures = state.failures.saturating_add(1);
                    let what = if self.check.is_some() {
                        "health check"
                    } else {
                        "connection probe"
                    };
                    if state.in_rotation && state.failures >= check.unhealthy_threshold {
                        state.in_rotation = false;
                        tracing::warn!(upstream = %self.name, %address, check = what, reason = %why, "Endpoint fails its checks; out of the rotation");
                    } else if !state.in_rotation && state.failures == 1 {
                        // Once per time out: an endpoint that never passes
                        // (a backend without grpc.health.v1) says why.
                        tracing::warn!(upstream = %self.name, %address, check = what, reason = %why, "Endpoint does not pass its checks; not in the rotation");
                    }
                }
            }
        }
    }
}

/// One connection probe: a TCP connection within the timeout passes.
async fn probe(address: SocketAddr, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(address)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) => Err(format!("cannot connect: {err}")),
        Err(_) => Err(format!("no connection within {timeout:?}")),
    }
}

/// One health check: `SERVING` within the timeout passes.
async fn health(channel: Channel, check: &HealthCheck) -> Result<(), String> {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    let mut client = HealthClient::new(channel);
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: check.service.clone(),
    });
    request.set_timeout(check.timeout);
    match tokio::time::timeout(check.timeout, client.check(request)).await {
        Ok(Ok(answer)) if answer.get_ref().status == ServingStatus::Serving as i32 => Ok(()),
        Ok(Ok(answer)) => Err(format!(
            "answered {:?}",
            ServingStatus::try_from(answer.get_ref().status).unwrap_or(ServingStatus::Unknown)
        )),
        // A status alone (NOT_FOUND for a service the backend does not
        // know, with no message) says little without its code.
        Ok(Err(status)) if std::error::Error::source(&status).is_none() => {
            Err(match status.message() {
                "" => format!("answered {:?}", status.code()),
                message => format!("answered {:?}: {message}", status.code()),
            })
            .map_err(|why| match status.code() {
                tonic::Code::NotFound => format!(
                    "{why} (the backend does not know health_check.service `{}`)",
                    check.service
                ),
                tonic::Code::Unimplemented => {
                    format!("{why} (the backend does not serve grpc.health.v1)")
                }
                _ => why,
            })
        }
        Ok(Err(status)) => Err(crate::upstream::causes(&status)),
        Err(_) => Err(format!("no answer within {:?}", check.timeout)),
    }
}
