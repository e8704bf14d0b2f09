//! Connect calls to the gateway's own services: health `Check` answered
//! as over gRPC, the streaming ones refused as `unimplemented`.

use axum::body::Body;
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Response, header};

use crate::error::GatewayError;
use crate::snapshot::Snapshot;
use crate::transcode::RequestError;

use super::{Encoding, read_body, shortened};
use crate::server::own;

/// A Connect call to one of the gateway's own services: health `Check`
/// is answered as over gRPC; the others stream both ways or are server
/// streams of the gateway's state, served over gRPC and gRPC-Web only.
pub(super) async fn own(
    snapshot: &Snapshot,
    parts: &Parts,
    body: Body,
    streaming: bool,
    encoding: Encoding,
) -> Result<Response<Body>, GatewayError> {
    use prost::Message as _;
    const CHECK: &str = "/grpc.health.v1.Health/Check";
    if parts.uri.path() != CHECK || streaming {
        let what = if parts.uri.path() == CHECK {
            "grpc.health.v1.Health/Check is a unary method: call it with application/json or application/proto".to_owned()
        } else {
            format!(
                "{} is the gateway's own streaming service, served over gRPC and gRPC-Web, not Connect",
                shortened(parts.uri.path().trim_start_matches('/'))
            )
        };
        return Err(GatewayError::Upstream(
            tonic::Status::unimplemented(what),
            None,
        ));
    }
    let read = read_body(snapshot, parts, body).await?;
    let bad = |reason: String| GatewayError::BadRequest(RequestError::Json { at: None, reason });
    let service = match encoding {
        Encoding::Proto => {
            tonic_health::pb::HealthCheckRequest::decode(&read.bytes[..])
                .map_err(|e| bad(format!("not a grpc.health.v1.HealthCheckRequest: {e}")))?
                .service
        }
        Encoding::Json => health_service(&read.bytes).map_err(bad)?,
    };
    let status = own::check(&parts.extensions, &service)
        .map_err(|status| GatewayError::Upstream(status, None))?;
    let (content_type, body) = match encoding {
        Encoding::Json => {
            let json = serde_json::json!({"status": status.as_str_name()});
            ("application/json", Bytes::from(json.to_string()))
        }
        Encoding::Proto => {
            let reply = tonic_health::pb::HealthCheckResponse {
                status: status.into(),
            };
            ("application/proto", Bytes::from(reply.encode_to_vec()))
        }
    };
    let mut response = Response::new(Body::from(body));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(response)
}

/// The `service` of a `HealthCheckRequest` in proto3 JSON (empty or
/// `null` is the whole server).
fn health_service(json: &[u8]) -> Result<String, String> {
    if json.iter().all(u8::is_ascii_whitespace) {
        return Ok(String::new());
    }
    let value: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| format!("not JSON: {e}"))?;
    let object = match value {
        serde_json::Value::Null => return Ok(String::new()),
        serde_json::Value::Object(object) => object,
        _ => return Err("a grpc.health.v1.HealthCheckRequest is a JSON object".to_owned()),
    };
    let mut service = String::new();
    for (key, value) in object {
        match (key.as_str(), value) {
            ("service", serde_json::Value::String(name)) => service = name,
            ("service", serde_json::Value::Null) => {}
            ("service", _) => return Err("`service` is a string".to_owned()),
            (other, _) => return Err(format!("unknown field `{}`", shortened(other))),
        }
    }
    Ok(service)
}
