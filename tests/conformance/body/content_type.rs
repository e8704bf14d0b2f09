//! Content types: which are read as JSON, which get a 415, hints for slips.

use reqwest::StatusCode;
use serde_json::json;

use crate::fixture::{assert_bad_request, assert_error, fixture};

/// DECISIONS.md: JSON whatever the declared type for application/json,
/// `*/*+json`, text/plain and form encoding (charset allowed); any other
/// declared type is 415 (code 3).
#[tokio::test]
async fn content_types() {
    let f = fixture().await;
    for ok in [
        "application/json",
        "application/json; charset=UTF-8",
        "Application/JSON",
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/merge-patch+json",
    ] {
        let (status, body) = f.send("POST", "/v1/echo", Some(ok), r#"{"s": "é"}"#).await;
        assert_eq!(status, StatusCode::OK, "{ok}: {body}");
        assert_eq!(body["s"], "é");
    }
    for bad in [
        "text/csv",
        "application/xml",
        "application/octet-stream",
        "multipart/form-data; boundary=x",
    ] {
        let (status, body) = f.send("POST", "/v1/echo", Some(bad), r#"{"s": "x"}"#).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{bad}");
        assert_eq!(body["code"], 3);
    }
}

/// RFC 9110 §10.1.1: a body the route will refuse for its type is not
/// asked for. A client that waits for `100 Continue` gets the 415 and
/// sends nothing; an empty body with a stray type is still an empty
/// message.
#[tokio::test]
async fn a_refused_type_gets_no_100_continue() {
    let f = fixture().await;
    for framing in ["content-length: 4", "transfer-encoding: chunked"] {
        let head = format!(
            "POST /v1/echo HTTP/1.1\r\nhost: x\r\ncontent-type: application/xml\r\n\
             {framing}\r\nexpect: 100-continue\r\n\r\n"
        );
        let answer = first_answer(f.gateway.addr(), head.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 415 "), "{framing}: {answer}");
    }
    assert!(f.backend.records().is_empty());
    let (status, body) = f
        .send("POST", "/v1/echo", Some("application/xml"), "")
        .await;
    assert_eq!((status, body), (StatusCode::OK, serde_json::json!({})));
}

/// What the gateway answers first to a request `head` sent alone.
async fn first_answer(addr: std::net::SocketAddr, head: &[u8]) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket.write_all(head).await.unwrap();
    let mut answer = vec![0; 512];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), socket.read(&mut answer))
        .await
        .expect("an answer without the body")
        .unwrap();
    String::from_utf8_lossy(&answer[..n]).into_owned()
}

/// RFC 9110 §8.3.1: a `Content-Type` that is present but whose media type
/// is not `type/subtype` (empty, `;;;`, a bare word) is a 415 naming it
/// as sent, never read as "no type" (JSON) — on unary routes and request
/// streams; a Connect call answers it as any type it does not take
/// (415 with `Accept-Post`, its code `invalid_argument`), naming it too.
/// Nothing reaches the backend.
#[tokio::test]
async fn malformed_content_types_are_415() {
    let f = fixture().await;
    let connect = [("connect-protocol-version", "1")];
    for bad in [
        ";;;",
        "",
        " ; charset=utf-8",
        "json",
        "application/",
        "/json",
    ] {
        for (path, headers, status) in [
            ("/v1/echo", &[][..], 415),
            ("/v1/echo/attrs", &[][..], 415),
            ("/v1/collect", &[][..], 415),
            ("/kitchen.v1.Kitchen/Echo", &connect[..], 415),
        ] {
            let body = br#"{"s": "x"}"#.to_vec();
            let reply = f.call("POST", path, Some(bad), headers, body).await;
            let json = reply.json();
            assert_eq!(reply.status, status, "{bad:?} on {path}: {json}");
            let message = json["message"].as_str().unwrap_or_default();
            assert!(
                // The HTTP layer drops a value's leading and trailing spaces.
                message.starts_with(&format!("unsupported content type `{}`", bad.trim())),
                "{bad:?} on {path}: {message}"
            );
        }
    }
    assert!(f.backend.records().is_empty());
}

/// RFC 9110 §8.3.1: the media type is the part before `;`; parameters
/// other than charset are allowed and ignored for JSON.
#[tokio::test]
async fn hc35_neighbour_other_parameters() {
    let f = fixture().await;
    for ct in [
        "application/json; charset=utf-8; profile=\"urn:x\"",
        "application/json;version=2",
        "application/json ; charset=utf-8",
        "application/json;charset=\"UTF-8\"",
        "text/plain;charset=UTF-8",
        "application/vnd.api+json; charset=utf-8",
    ] {
        let (status, body) = f
            .send(
                "POST",
                "/v1/echo",
                Some(ct),
                r#"{"s": "Café über Ångström ✓"}"#,
            )
            .await;
        assert_eq!(
            (status, body),
            (StatusCode::OK, json!({"s": "Café über Ångström ✓"})),
            "{ct}"
        );
    }
}

/// RFC 9110 §8.3.1: type, subtype and the charset name are
/// case-insensitive.
#[tokio::test]
async fn hc35_neighbour_uppercase_type_and_charset() {
    let f = fixture().await;
    for ct in [
        "APPLICATION/JSON; CHARSET=UTF-8",
        "Application/Json; Charset=Utf-8",
        "TEXT/PLAIN",
        "APPLICATION/PROBLEM+JSON",
    ] {
        let (status, body) = f
            .send("POST", "/v1/echo", Some(ct), r#"{"s": "ü", "tags": ["✓"]}"#)
            .await;
        assert_eq!(
            (status, body),
            (StatusCode::OK, json!({"s": "ü", "tags": ["✓"]})),
            "{ct}"
        );
    }
}

/// DECISIONS.md: a charset does not make a non-JSON type acceptable; the
/// 415 names the media type.
#[tokio::test]
async fn hc35_neighbour_unsupported_type_with_charset() {
    let f = fixture().await;
    assert_error(
        f.send(
            "POST",
            "/v1/echo",
            Some("text/csv; charset=utf-8"),
            r#"{"s": "x"}"#,
        )
        .await,
        415,
        3,
        "unsupported content type `text/csv`: this route takes JSON (application/json)",
    );
    assert!(f.backend.records().is_empty());
}

/// Two common slips get a hint in the 400: a form body (what `curl -d`
/// sends without `-H 'Content-Type: application/json'`), and a body-field
/// route's value wrapped in an object named after the field.
#[tokio::test]
async fn common_body_mistakes_get_a_hint() {
    let f = fixture().await;
    let reply = f
        .call(
            "POST",
            "/v1/echo",
            Some("application/x-www-form-urlencoded"),
            &[],
            b"s=x&i32=1".to_vec(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let message = reply.json()["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("sent as a form (as `curl -d` does)"),
        "{message}"
    );
    // Whatever letter the first key starts with (`t`, `f` and `n` start
    // JSON's literals too).
    for form in ["text=hello", "name=shelves/1", "flag=1", "n=5"] {
        let reply = f
            .call(
                "POST",
                "/v1/echo",
                Some("application/x-www-form-urlencoded"),
                &[],
                form.as_bytes().to_vec(),
            )
            .await;
        let message = reply.json()["message"].as_str().unwrap().to_owned();
        assert!(message.contains("sent as a form"), "{form}: {message}");
    }
    // A form-typed body that is JSON is read as JSON (curl's default type).
    let reply = f
        .call(
            "POST",
            "/v1/echo",
            Some("application/x-www-form-urlencoded"),
            &[],
            br#"{"s": "x"}"#.to_vec(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    // JSON that fails for another reason (an unknown field, a syntax
    // error) gets no hint about the type: changing it would not help.
    for (body, named) in [(&br#"{"nope": "x"}"#[..], "nope"), (b"{bad json", "line 1")] {
        let reply = f
            .call(
                "POST",
                "/v1/echo",
                Some("application/x-www-form-urlencoded"),
                &[],
                body.to_vec(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        let message = reply.json()["message"].as_str().unwrap().to_owned();
        assert!(message.contains(named), "{message}");
        assert!(!message.contains("sent as a form"), "{message}");
    }
    assert_bad_request(
        f.post("/v1/echo/inner", r#"{"inner": {"label": "x"}}"#)
            .await,
        "this route's body is the value of `inner` itself",
    );
}
