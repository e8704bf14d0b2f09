//! Path templates: matching, percent-decoding, verbs, trailing slashes,
//! precedence, and 404/405.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::fixture::{assert_bad_request, assert_error, fixture, fixture_with};

/// The methods of an `Allow` header, sorted.
fn allow_set(value: Option<&str>) -> Vec<String> {
    let mut methods: Vec<String> = value
        .expect("an Allow header")
        .split(',')
        .map(|m| m.trim().to_owned())
        .collect();
    methods.sort();
    methods
}

// ---------------------------------------------------------------- templates

/// http.proto: a variable binds a non-repeated primitive field (here every
/// kind, wrappers, Timestamp, Duration and a nested `{inner.label}`), read
/// from its text form.
#[tokio::test]
async fn path_variables_of_every_kind() {
    let f = fixture().await;
    let (status, body) = f
        .get("/v1/path/a%2Fb%20c/AAE/true/-3/-9007199254740993/18446744073709551615/0.25/-Infinity/RED/w/7/lbl/2024-01-02T03:04:05.5Z/3s")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({
            "s": "a/b c", "b": "AAE=", "flag": true, "i32": -3, "i64": "-9007199254740993",
            "u64": "18446744073709551615", "fl": 0.25, "db": "-Infinity", "color": "RED",
            "inner": {"label": "lbl"}, "at": "2024-01-02T03:04:05.500Z", "ttl": "3s",
            "nameWrapper": "w", "big": "7"
        })
    );
}

/// http.proto: a variable's text must fit its field; anything else is a
/// client error (400) that names the variable.
#[tokio::test]
async fn bad_path_values_name_the_variable() {
    let f = fixture().await;
    let good = [
        "x",
        "AAE",
        "true",
        "1",
        "1",
        "1",
        "1",
        "1",
        "RED",
        "w",
        "1",
        "l",
        "2024-01-02T03:04:05Z",
        "1s",
    ];
    for (i, bad) in [
        (3, "x"),
        (2, "maybe"),
        (8, "BLUE"),
        (12, "noon"),
        (1, "%%%"),
    ] {
        let mut parts = good.to_vec();
        parts[i] = bad;
        let path = format!("/v1/path/{}", parts.join("/"));
        let (status, body) = f.get(&path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
    }
    assert_bad_request(
        f.get("/v1/names/a%zzb:peek").await,
        "invalid percent-escape",
    );
    assert_bad_request(f.get("/v1/names/%FF:peek").await, "not valid UTF-8");
    // A dot segment is refused also where a verb follows it: the variable
    // would be `names/..`.
    for dots in [
        "/v1/names/..:peek",
        "/v1/names/.:peek",
        "/v1/names/%2E%2e:peek",
    ] {
        assert_bad_request(f.get(dots).await, "`.` or `..` segment");
    }
    // The message names the variable.
    let mut parts = good.to_vec();
    parts[3] = "x";
    assert_bad_request(
        f.get(&format!("/v1/path/{}", parts.join("/"))).await,
        "path variable `i32`",
    );
    assert!(f.backend.records().is_empty());
}

/// http.proto: `custom` binds any HTTP method token; DECISIONS.md: methods
/// without annotations are served at `POST /pkg.Service/Method`, annotated
/// ones only at their templates.
#[tokio::test]
async fn custom_method_kinds_and_fallback_routes() {
    let f = fixture().await;
    let (status, body) = f.send("SEARCH", "/v1/search?s=x", None, "").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"s": "x"})));
    let (status, body) = f
        .post("/kitchen.v1.Kitchen/Plain", r#"{"s": "plain"}"#)
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"s": "plain"})));
    assert_eq!(f.backend.last().method, "/kitchen.v1.Kitchen/Plain");
    // Annotated methods are not also served at their RPC path.
    let (status, _) = f.post("/kitchen.v1.Kitchen/Echo", "{}").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// DECISIONS.md: the fallback `POST /pkg.Service/Method` routes are a
/// config choice (`fallback_routes: false` turns them off).
#[tokio::test]
async fn fallback_routes_can_be_turned_off() {
    let f = fixture_with(|c| c.fallback_routes = false).await;
    let (status, body) = f.post("/kitchen.v1.Kitchen/Plain", "{}").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

/// http.proto: templates are matched the same whatever the HTTP version;
/// HTTP/2 cleartext (prior knowledge) clients are served too.
#[tokio::test]
async fn http2_clients_are_served_too() {
    let f = fixture().await;
    let client = crate::support::http2();
    let response = client
        .get(f.gateway.url("/v1/echo?s=h2"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"s": "h2"}));
}

/// DECISIONS.md: `**` followed by more segments is accepted (an extension
/// googleapis relies on); the variable takes the segments before the tail.
#[tokio::test]
async fn multi_segment_wildcard_followed_by_a_literal() {
    let f = fixture().await;
    let (status, body) = f.get("/v1/files/a/b/c/meta").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"s": "a/b/c"})));
    assert_eq!(f.last_method(), "/kitchen.v1.Routes/Multi");
    let (status, body) = f.get("/v1/files/x/meta").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"s": "x"})));
    let (status, _) = f.get("/v1/files/a/b").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the literal tail is required"
    );
}

// ---------------------------------------------------------------- precedence

/// DECISIONS.md: among templates that match, a literal segment beats a
/// variable and a single `*` beats `**`.
#[tokio::test]
async fn literal_beats_single_beats_multi() {
    let f = fixture().await;
    for (path, method, s) in [
        ("/v1/prec/fixed", "Fixed", None),
        ("/v1/prec/other", "Single", Some("other")),
        ("/v1/prec/a/b", "Multi", Some("a/b")),
        ("/v1/prec/a/tail", "Single", Some("a")),
        ("/v1/prec/a/b/tail", "Multi", Some("a/b/tail")),
    ] {
        let (status, body) = f.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(
            f.last_method(),
            format!("/kitchen.v1.Routes/{method}"),
            "{path}"
        );
        let expected = s.map_or(json!({}), |s| json!({"s": s}));
        assert_eq!(body, expected, "{path}");
    }
}

/// DECISIONS.md: precedence backtracks: when the literal branch cannot
/// match the rest of the path, a variable branch still can.
#[tokio::test]
async fn a_failed_literal_branch_backtracks_to_a_variable() {
    let f = fixture().await;
    let (status, body) = f.get("/v1/prec/fixed/tail").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"s": "fixed"})));
    assert_eq!(f.last_method(), "/kitchen.v1.Routes/Single");
    let (status, body) = f.get("/v1/prec/fixed/x/y").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"s": "fixed/x/y"})));
    assert_eq!(f.last_method(), "/kitchen.v1.Routes/Multi");
}

// ---------------------------------------------------------------- decoding

/// DECISIONS.md: escapes of unreserved characters are decoded before
/// matching (RFC 3986 says they are equivalent), so `%65cho` is `echo`.
#[tokio::test]
async fn escaped_unreserved_characters_match_literals() {
    let f = fixture().await;
    let (status, body) = f.get("/v1/%65%63ho?s=x").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"s": "x"})));
    let (status, body) = f.get("/%76%31/prec/%66ixed").await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    assert_eq!(f.last_method(), "/kitchen.v1.Routes/Fixed");
}

/// DECISIONS.md: routing works on the raw path: an encoded `/` never
/// splits a segment, so it cannot stand in for a literal's separator.
#[tokio::test]
async fn encoded_slash_never_splits_a_literal() {
    let f = fixture().await;
    assert_error(
        f.get("/v1%2Fecho").await,
        404,
        5,
        "no route matches GET /v1%2Fecho",
    );
    assert_error(
        f.get("/v1/prec%2Ffixed").await,
        404,
        5,
        "no route matches GET /v1/prec%2Ffixed",
    );
    assert!(f.backend.records().is_empty());
}

// ---------------------------------------------------------------- trailing slash, empty segments

/// DECISIONS.md: a trailing slash is a different path, and empty segments
/// match nothing, not even `*` or `**`.
#[tokio::test]
async fn trailing_slashes_and_empty_segments_match_nothing() {
    let f = fixture().await;
    for path in [
        "/v1/prec/abc/",
        "/v1/prec//abc",
        "//v1/echo",
        "/v1//echo",
        "/v1/names/shelves/s1/books/a/",
        "/v1/things/t1/",
    ] {
        assert_error(
            f.get(path).await,
            404,
            5,
            &format!("no route matches GET {path}"),
        );
    }
    assert!(f.backend.records().is_empty());
}

// ---------------------------------------------------------------- 404 / 405

/// RFC 9110 §15.5.5 and §15.5.6: an unknown path is 404; a path served
/// only for other methods is 405 with `Allow`. DECISIONS.md: both carry a
/// `google.rpc.Status` body (codes 5 and 12).
#[tokio::test]
async fn unknown_paths_and_wrong_methods_get_json_errors() {
    let f = fixture().await;
    let (status, body) = f.get("/v1/nothing/here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"code": 5, "message": "no route matches GET /v1/nothing/here", "details": []})
    );

    let response = f
        .client
        .delete(f.gateway.url("/v1/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "GET, POST, HEAD, OPTIONS");
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], 12);

    let (status, _) = f.get("/v1/echo/").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a trailing slash is another path"
    );
    assert!(f.backend.records().is_empty());
}

/// RFC 9110 §15.5.6: a 405 lists every method the target supports in
/// `Allow` (here GET, DELETE, PATCH, a custom LOCK, and OPTIONS, which
/// every routed path answers); the backend is never called.
#[tokio::test]
async fn hc25_neighbour_allow_lists_every_method_of_the_path() {
    let f = fixture().await;
    let reply = f.call("PUT", "/v1/notes/n1", None, &[], Vec::new()).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        allow_set(reply.header("allow")),
        ["DELETE", "GET", "HEAD", "LOCK", "OPTIONS", "PATCH"]
    );
    assert_eq!(
        reply.json(),
        json!({"code": 12, "message": "method PUT is not allowed for /v1/notes/n1", "details": []})
    );
    // Each listed method really is served there.
    for method in ["GET", "DELETE", "PATCH", "LOCK"] {
        let reply = f
            .call(
                method,
                "/v1/notes/n1",
                Some("application/json"),
                &[],
                Vec::new(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{method}: {}", reply.text);
        assert_eq!(reply.json(), json!({"s": "n1"}), "{method}");
    }
    assert_eq!(f.backend.records().len(), 4);
}

/// RFC 9110 §15.6.2: a method no route uses and HTTP does not define is
/// not implemented for any resource: 501 (code 12). A method some route
/// uses (`SEARCH`) is known, so elsewhere it is 405 with `Allow`.
#[tokio::test]
async fn hc25_neighbour_unknown_method_is_501_known_one_405() {
    let f = fixture().await;
    for method in ["FOO", "PROPFIND"] {
        let reply = f.call(method, "/v1/notes/n1", None, &[], Vec::new()).await;
        assert_eq!(reply.status, StatusCode::NOT_IMPLEMENTED, "{method}");
        assert_eq!(reply.json()["code"], 12, "{method}");
        assert!(reply.header("allow").is_none(), "{method}");
    }
    let reply = f
        .call("SEARCH", "/v1/notes/n1", None, &[], Vec::new())
        .await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        allow_set(reply.header("allow")),
        ["DELETE", "GET", "HEAD", "LOCK", "OPTIONS", "PATCH"]
    );
    assert_eq!(reply.json()["code"], 12);
    assert!(f.backend.records().is_empty());
}

/// RFC 9110 §9.3.7: `OPTIONS *` asks about the server, answered with the
/// methods its routes take; CONNECT asks for a tunnel the gateway does not
/// make: 501, as for a method it does not know.
#[tokio::test]
async fn options_star_and_connect() {
    let f = fixture().await;
    let exchange = |request: &'static str| {
        let addr = f.gateway.addr();
        async move {
            let answer = crate::support::client::raw_exchange(addr, request.as_bytes()).await;
            String::from_utf8_lossy(&answer).into_owned()
        }
    };
    let answer = exchange("OPTIONS * HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");
    let allow = answer
        .lines()
        .find_map(|l| l.strip_prefix("allow: "))
        .unwrap_or_else(|| panic!("no Allow: {answer}"));
    for method in [
        "GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS", "SEARCH",
    ] {
        assert!(
            allow.split(", ").any(|m| m == method),
            "{method} in {allow}"
        );
    }
    let answer =
        exchange("CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\nConnection: close\r\n\r\n")
            .await;
    assert!(answer.starts_with("HTTP/1.1 501"), "{answer}");
    assert!(
        answer.contains("method CONNECT is not implemented"),
        "{answer}"
    );
    assert!(f.backend.records().is_empty());
}

/// RFC 9110 §15.5.6: a custom-method route (`SEARCH /v1/search`) answers
/// other methods with 405 and `Allow: SEARCH`; a known method on an
/// unknown path is 404, not 405.
#[tokio::test]
async fn hc25_neighbour_custom_kind_only_path_and_unknown_path() {
    let f = fixture().await;
    let reply = f.call("GET", "/v1/search", None, &[], Vec::new()).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.header("allow"), Some("SEARCH, OPTIONS"));
    assert_error(
        f.send("PUT", "/v1/notes", None, "").await,
        404,
        5,
        "no route matches PUT /v1/notes",
    );
    assert!(f.backend.records().is_empty());
}

/// RFC 9110 §15.5.6: a verb route served only for GET answers POST with
/// 405 and `Allow: GET`.
#[tokio::test]
async fn hc25_neighbour_verb_route_wrong_method() {
    let f = fixture().await;
    let reply = f
        .call(
            "POST",
            "/v1/names/x:peek",
            Some("application/json"),
            &[],
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.header("allow"), Some("GET, HEAD, OPTIONS"));
    assert_eq!(
        reply.json(),
        json!({"code": 12, "message": "method POST is not allowed for /v1/names/x:peek", "details": []})
    );
    assert!(f.backend.records().is_empty());
}

/// RFC 9110 §9.3.2: HEAD is GET without the body: it reaches the GET
/// route (the backend is called) and answers its status and headers only.
#[tokio::test]
async fn hc25_neighbour_head_is_get_without_a_body() {
    let f = fixture().await;
    let response = f
        .client
        .head(f.gateway.url("/v1/notes/n1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert!(response.bytes().await.unwrap().is_empty());
    assert_eq!(f.backend.records().len(), 1);
    // Not found stays not found.
    let response = f
        .client
        .head(f.gateway.url("/v1/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

/// RFC 9110 §9.3.7: OPTIONS on a path that exists answers which methods it
/// takes (204 with `Allow`), without calling the backend; on an unknown
/// path it is 404.
#[tokio::test]
async fn options_lists_the_methods_of_a_path() {
    let f = fixture().await;
    let reply = f
        .call("OPTIONS", "/v1/notes/n1", None, &[], Vec::new())
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(
        allow_set(reply.header("allow")),
        ["DELETE", "GET", "HEAD", "LOCK", "OPTIONS", "PATCH"]
    );
    let reply = f.call("OPTIONS", "/v1/nope", None, &[], Vec::new()).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(f.backend.records().is_empty());
}

// ---------------------------------------------------------------- verbs

/// http.proto: `Verb = ":" LITERAL` is not part of the last segment; a
/// template with a verb and the same template without one are two routes.
#[tokio::test]
async fn hc03_neighbour_plain_and_verb_routes_stay_apart() {
    let f = fixture().await;
    let (status, body) = f.get("/v1/things/t1").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"s": "things/t1"})));
    assert_eq!(f.last_method(), "/kitchen.v1.Routes/GetThing");
    let (status, body) = f.get("/v1/things/t1:watch").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"s": "things/t1"})));
    assert_eq!(f.last_method(), "/kitchen.v1.Routes/WatchThing");
}

/// DECISIONS.md: an unknown `:verb` stays part of the last segment, so the
/// plain route gets it inside its variable.
#[tokio::test]
async fn hc03_neighbour_unknown_verb_stays_in_the_segment() {
    let f = fixture().await;
    for (path, s) in [
        ("/v1/things/t1:unwatch", "things/t1:unwatch"),
        ("/v1/things/t1:", "things/t1:"),
        ("/v1/things/t1:peek:x", "things/t1:peek:x"),
    ] {
        let (status, body) = f.get(path).await;
        assert_eq!((status, body), (StatusCode::OK, json!({"s": s})), "{path}");
        assert_eq!(f.last_method(), "/kitchen.v1.Routes/GetThing", "{path}");
    }
}

/// DECISIONS.md: an encoded `:` (`%3A`) never starts a verb; it is decoded
/// into the variable.
#[tokio::test]
async fn hc03_neighbour_encoded_colon_is_not_a_verb() {
    let f = fixture().await;
    let (status, body) = f.get("/v1/things/t1%3Awatch").await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"s": "things/t1:watch"}))
    );
    assert_eq!(f.last_method(), "/kitchen.v1.Routes/GetThing");
    // Nor can it complete a verb route that requires the verb.
    assert_error(
        f.get("/v1/names/x%3Apeek").await,
        404,
        5,
        "no route matches GET /v1/names/x%3Apeek",
    );
}

/// http.proto: the verb is what follows the last `:` of the last segment;
/// earlier colons belong to the variable.
#[tokio::test]
async fn hc03_neighbour_last_colon_starts_the_verb() {
    let f = fixture().await;
    let (status, body) = f.get("/v1/things/a:b:watch").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"s": "things/a:b"})));
    assert_eq!(f.last_method(), "/kitchen.v1.Routes/WatchThing");
}

/// http.proto: a verb may follow a `**` variable (`{s=things/**}:peek`);
/// the variable takes every segment before it.
#[tokio::test]
async fn hc03_neighbour_verb_after_a_multi_segment_variable() {
    let f = fixture().await;
    let (status, body) = f.get("/v1/things/a/b/c:peek").await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"s": "things/a/b/c"}))
    );
    assert_eq!(f.last_method(), "/kitchen.v1.Routes/PeekThing");
}

/// http.proto: a template with a verb matches only with that verb; without
/// it there is no route.
#[tokio::test]
async fn hc03_neighbour_verb_route_needs_its_verb() {
    let f = fixture().await;
    assert_error(
        f.get("/v1/names/x").await,
        404,
        5,
        "no route matches GET /v1/names/x",
    );
    let (status, body) = f.get("/v1/names/x:peek").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"s": "x"})));
}

/// http.proto: the verb route's other bindings (here `POST ... body: "*"`)
/// are routed by verb too, and the body fills the message.
#[tokio::test]
async fn hc03_neighbour_verb_route_with_a_body() {
    let f = fixture().await;
    let (status, body) = f.post("/v1/things/t1:watch", r#"{"tags": ["x"]}"#).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"s": "things/t1", "tags": ["x"]}))
    );
    assert_eq!(f.last_method(), "/kitchen.v1.Routes/WatchThing");
}

// ---------------------------------------------------------------- percent-decoding of variables

/// DECISIONS.md: a multi-segment variable is decoded except `%2F`/`%2f`,
/// which stay encoded (their case kept); `+` in a path is a plus.
#[tokio::test]
async fn multi_segment_variables_keep_encoded_slashes() {
    let f = fixture().await;
    let (_, body) = f.get("/v1/names/shelves/s%201/books/a/b%2Fc").await;
    assert_eq!(body["s"], "shelves/s 1/books/a/b%2Fc");
    // A `+` in a path is a plus.
    let (_, body) = f.get("/v1/names/a+b:peek").await;
    assert_eq!(body["s"], "a+b");
}

/// DECISIONS.md: in a multi-segment variable `%2F` stays encoded (upper or
/// lower case as sent) while the segments' real slashes stay slashes.
#[tokio::test]
async fn hc02_neighbour_multi_segment_keeps_encoded_slash() {
    let f = fixture().await;
    for (path, s) in [
        ("/v1/names/shelves/s%2F1/books/x", "shelves/s%2F1/books/x"),
        ("/v1/names/shelves/s1/books/a%2fb", "shelves/s1/books/a%2fb"),
        ("/v1/files/dir%2Fsub/leaf/meta", "dir%2Fsub/leaf"),
        ("/v1/things/a%2Fb:peek", "things/a%2Fb"),
    ] {
        let (status, body) = f.get(path).await;
        assert_eq!((status, body), (StatusCode::OK, json!({"s": s})), "{path}");
    }
}

/// http.proto: a single-segment variable is fully decoded, `%2F` included,
/// in every variable of the template (not just the last).
#[tokio::test]
async fn hc02_neighbour_encoded_slash_in_every_single_segment_variable() {
    let f = fixture().await;
    let (status, body) = f.get("/v1/objects/a%2Fb/c%2F%2Fd%2f").await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"s": "a/b", "nameWrapper": "c//d/"}))
    );
}

/// http.proto: values are decoded exactly once: `%25` is `%`, and `%252F`
/// is the text `%2F`, not a slash.
#[tokio::test]
async fn hc02_neighbour_percent_25_decodes_to_percent() {
    let f = fixture().await;
    let (status, body) = f.get("/v1/objects/100%25/%252F").await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"s": "100%", "nameWrapper": "%2F"}))
    );
    let (status, body) = f.get("/v1/names/shelves/a%25b/books/%252F").await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"s": "shelves/a%b/books/%2F"}))
    );
}

/// http.proto: percent-escapes are UTF-8 bytes; non-ASCII text decodes in
/// single- and multi-segment variables alike.
#[tokio::test]
async fn hc02_neighbour_non_ascii_escapes_decode_as_utf8() {
    let f = fixture().await;
    let (status, body) = f.get("/v1/objects/caf%C3%A9/%E2%9C%93%20ok").await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"s": "café", "nameWrapper": "✓ ok"}))
    );
    let (status, body) = f.get("/v1/names/shelves/%C3%85/books/%F0%9F%93%9A").await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"s": "shelves/Å/books/📚"}))
    );
    // A truncated UTF-8 sequence is a client error.
    assert_bad_request(f.get("/v1/objects/caf%C3/x").await, "not valid UTF-8");
}

/// DECISIONS.md: `+` in a path is a literal plus (only the query is form
/// encoded); `%2B` is a plus as well and `%20` a space.
#[tokio::test]
async fn hc02_neighbour_plus_in_the_path_is_a_plus() {
    let f = fixture().await;
    let (status, body) = f.get("/v1/objects/a+b/c%2Bd%20e").await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"s": "a+b", "nameWrapper": "c+d e"}))
    );
    let (status, body) = f.get("/v1/names/shelves/a+b/books/c+d").await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"s": "shelves/a+b/books/c+d"}))
    );
}

/// http.proto: variables are percent-decoded, so a malformed escape (`%`
/// without two hex digits, RFC 3986 §2.1) is a 400 naming its position.
#[tokio::test]
async fn hc02_neighbour_malformed_escapes_are_400() {
    let f = fixture().await;
    assert_error(
        f.get("/v1/objects/a%2/b").await,
        400,
        3,
        "invalid percent-escape at byte 13 of the path",
    );
    assert_error(
        f.get("/v1/objects/a/b%").await,
        400,
        3,
        "invalid percent-escape at byte 15 of the path",
    );
    assert!(f.backend.records().is_empty());
}

// ---------------------------------------------------------------- additional bindings

/// http.proto: every `additional_bindings` entry is a full rule for the
/// same method; each reaches `kitchen.v1.Kitchen/Echo`.
#[tokio::test]
async fn hc19_neighbour_every_additional_binding_reaches_the_method() {
    let f = fixture().await;
    for (method, path, body) in [
        ("GET", "/v1/echo", ""),
        ("POST", "/v1/echo", "{}"),
        ("PUT", "/v1/echo/x/1/RED", "{}"),
        ("POST", "/v1/echo/tags", "[]"),
        ("POST", "/v1/echo/attrs", "{}"),
        ("POST", "/v1/echo/value", "1"),
        ("POST", "/v1/echo/labels", "{}"),
        ("POST", "/v1/echo/at", "\"2024-01-01T00:00:00Z\""),
        ("POST", "/v1/echo/s", "\"x\""),
        ("POST", "/v1/echo/items", "[]"),
        ("POST", "/v1/echo/inner", "{}"),
        ("POST", "/v1/echo/colors", "[]"),
        ("POST", "/v1/echo/mask", "\"a\""),
        ("POST", "/v1/echo/i64", "1"),
        ("POST", "/v1/echo/wrapper", "1"),
    ] {
        let reply = f
            .call(method, path, Some("application/json"), &[], body.into())
            .await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{method} {path}: {}",
            reply.text
        );
        assert_eq!(
            f.last_method(),
            "/kitchen.v1.Kitchen/Echo",
            "{method} {path}"
        );
    }
}

/// http.proto: each binding has its own `body`: the same JSON fills
/// `inner` on the PUT binding but is an unknown field on the `body: "*"`
/// binding.
#[tokio::test]
async fn hc19_neighbour_each_binding_has_its_own_body() {
    let f = fixture().await;
    let (status, body) = f
        .send(
            "PUT",
            "/v1/echo/x/1/RED",
            Some("application/json"),
            r#"{"label": "l"}"#,
        )
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"s": "x", "i64": "1", "color": "RED", "inner": {"label": "l"}})
        )
    );
    assert_bad_request(
        f.post("/v1/echo", r#"{"label": "l"}"#).await,
        "unknown field `label`",
    );
}

/// http.proto: a binding's path variables and query apply to that binding
/// only: the GET binding takes `s` from the query, the PUT binding from
/// the path (and refuses it in the query).
#[tokio::test]
async fn hc19_neighbour_bindings_differ_in_what_the_query_may_set() {
    let f = fixture().await;
    let (status, body) = f.get("/v1/echo?s=q&i64=2").await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"s": "q", "i64": "2"}))
    );
    assert_bad_request(
        f.send(
            "PUT",
            "/v1/echo/x/1/RED?s=q",
            Some("application/json"),
            "{}",
        )
        .await,
        "`s` sets a field that this route binds",
    );
}

/// An annotated method's `/package.Service/Method` path (where the
/// fallback route of an unannotated one would be) is a 404 that says where
/// the method is served and why, not a bare "no route".
#[tokio::test]
async fn an_annotated_method_at_its_grpc_path_is_told_where_it_is() {
    let f = fixture().await;
    let (status, body) = f.post("/kitchen.v1.Kitchen/Echo", "{}").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("kitchen.v1.Kitchen/Echo is served at POST /v1/echo"),
        "{message}"
    );
    // Another path: the plain answer.
    let (status, body) = f.post("/kitchen.v1.Kitchen/Nothing", "{}").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        !body["message"].as_str().unwrap().contains("served at"),
        "{body}"
    );
}
