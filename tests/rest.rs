//! REST to gRPC end to end: routing, path/query/body mapping, response
//! writing and errors, with a real tonic backend and real HTTP clients.
//! Uses `tests/protos/kitchen/v1/kitchen.proto` (every field kind and every
//! binding shape).

mod support;

use bytes::Bytes;
use protogate::Config;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{EchoBackend, Script, TestGateway};

struct Fixture {
    backend: EchoBackend,
    gateway: TestGateway,
    client: reqwest::Client,
}

fn kitchen() -> Bytes {
    support::compile(
        &support::repo().join("tests/protos"),
        &["kitchen/v1/kitchen.proto"],
    )
}

async fn fixture() -> Fixture {
    fixture_with(|_| {}).await
}

async fn fixture_with(tweak: impl FnOnce(&mut Config)) -> Fixture {
    let set = kitchen();
    let backend = EchoBackend::start(support::pool(&set)).await;
    let mut config = support::gateway::config(&set, &backend.url());
    tweak(&mut config);
    let gateway = TestGateway::start(config).await;
    Fixture {
        backend,
        gateway,
        client: support::http1(),
    }
}

impl Fixture {
    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .get(self.gateway.url(path))
            .send()
            .await
            .unwrap();
        read(response).await
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &str,
    ) -> (StatusCode, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .client
            .request(method, self.gateway.url(path))
            .body(body.to_owned());
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        read(request.send().await.unwrap()).await
    }

    async fn post(&self, path: &str, body: &str) -> (StatusCode, Value) {
        self.send("POST", path, Some("application/json"), body)
            .await
    }
}

async fn read(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let bytes = response.bytes().await.unwrap();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("not JSON ({status}): {}", String::from_utf8_lossy(&bytes)));
    (status, value)
}

/// A 400 whose google.rpc.Status message contains `needle`.
fn assert_bad_request(got: (StatusCode, Value), needle: &str) {
    let (status, body) = got;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], 3, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains(needle),
        "message {message:?} should contain {needle:?}"
    );
    assert_eq!(body["details"], json!([]));
}

// ---------------------------------------------------------------- query

#[tokio::test]
async fn query_fills_every_scalar_kind() {
    let f = fixture().await;
    let query = "s=a+b%2Bc&b=AAECA_8&flag=true&i32=-5&i64=9007199254740993&u32=7&u64=18446744073709551615\
        &si32=-1&si64=-2&f32=3&f64=4&sf32=-5&sf64=-6&fl=1.5&db=NaN&color=GREEN&tags=x&tags=y&ids=1&ids=2\
        &colors=RED&colors=2&inner.label=L&inner.child.count=3&at=2024-01-02T03:04:05Z&ttl=1.5s\
        &mask=a.bC,d&name_wrapper=w&big=12&on=false&ratio=0.5&blob=AAE&small=4&choice_a=z&customJSON=c";
    let (status, body) = f.get(&format!("/v1/echo?{query}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({
            "s": "a b+c", "b": "AAECA/8=", "flag": true, "i32": -5, "i64": "9007199254740993", "u32": 7,
            "u64": "18446744073709551615", "si32": -1, "si64": "-2", "f32": 3, "f64": "4", "sf32": -5,
            "sf64": "-6", "fl": 1.5, "db": "NaN", "color": "GREEN", "tags": ["x", "y"], "ids": ["1", "2"],
            "colors": ["RED", "GREEN"], "inner": {"label": "L", "child": {"count": 3}},
            "at": "2024-01-02T03:04:05Z", "ttl": "1.500s", "mask": "a.bC,d", "nameWrapper": "w", "big": "12",
            "on": false, "ratio": 0.5, "blob": "AAE=", "small": 4, "choiceA": "z", "customJSON": "c"
        })
    );
    // The backend got the values, not text: int64 beyond 2^53 exact.
    let sent = f.backend.last().json;
    assert_eq!(sent["i64"], "9007199254740993");
    assert_eq!(sent["mask"], "a.bC,d");
    assert_eq!(sent["inner"]["child"]["count"], 3);
}

#[tokio::test]
async fn query_keys_take_proto_or_json_names() {
    let f = fixture().await;
    let (status, body) = f
        .get("/v1/echo?name_wrapper=a&customJSON=b&custom_json_unused=1")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = f.get("/v1/echo?nameWrapper=a&custom_json=b").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"nameWrapper": "a", "customJSON": "b"}));
}

#[tokio::test]
async fn wrappers_have_presence() {
    let f = fixture().await;
    let (_, body) = f.get("/v1/echo?on=false&big=0").await;
    assert_eq!(body, json!({"big": "0", "on": false}));
}

#[tokio::test]
async fn field_mask_query_accepts_camel_and_snake_case() {
    let f = fixture().await;
    f.get("/v1/echo?mask=inner.childCount,name_wrapper").await;
    let sent = f.backend.last().message;
    let mask = sent.get_field_by_name("mask").unwrap();
    let paths = mask
        .as_message()
        .unwrap()
        .get_field_by_name("paths")
        .unwrap();
    assert_eq!(
        format!("{paths:?}"),
        r#"List([String("inner.child_count"), String("name_wrapper")])"#
    );
}

#[tokio::test]
async fn bad_query_values_name_the_parameter() {
    let f = fixture().await;
    for (query, needle) in [
        ("i32=x", "`i32`"),
        ("i32=2147483648", "`i32`"),
        ("u32=-1", "`u32`"),
        ("flag=yes", "`flag`"),
        ("color=BLUE", "`color`"),
        ("color=red", "`color`"),
        ("b=***", "`b`"),
        ("at=yesterday", "`at`"),
        ("ttl=5", "`ttl`"),
        ("fl=1e39", "`fl`"),
        ("db=inf", "`db`"),
        ("inner=x", "`inner`"),
        ("inner.label.x=1", "`inner.label.x`"),
        ("attrs=x", "`attrs`"),
        ("labels=x", "`labels`"),
        ("nope=1", "unknown query parameter `nope`"),
        ("inner.nope=1", "unknown query parameter `inner.nope`"),
        ("s=1&s=2", "`s` is given more than once"),
        ("choice_a=x&choice_b=1", "oneof `choice`"),
        ("s=%ZZ", "not valid percent-encoded"),
        ("s=%FF", "not valid percent-encoded"),
    ] {
        assert_bad_request(f.get(&format!("/v1/echo?{query}")).await, needle);
    }
    assert!(
        f.backend.records().is_empty(),
        "bad requests never reach the backend"
    );
}

#[tokio::test]
async fn query_cannot_touch_fields_the_path_or_body_binds() {
    let f = fixture().await;
    assert_bad_request(
        f.send(
            "PUT",
            "/v1/echo/x/1/RED?s=y",
            Some("application/json"),
            "{}",
        )
        .await,
        "`s` sets a field that this route binds",
    );
    assert_bad_request(
        f.send(
            "PUT",
            "/v1/echo/x/1/RED?inner.label=y",
            Some("application/json"),
            "{}",
        )
        .await,
        "`inner.label` sets a field that this route binds",
    );
    assert_bad_request(
        f.post("/v1/echo?s=x", "{}").await,
        "this route's body binds the whole request message",
    );
}

#[tokio::test]
async fn unknown_query_parameters_can_be_ignored() {
    let f = fixture_with(|c| c.unknown_query_params = protogate::transcode::UnknownParams::Ignore)
        .await;
    let (status, body) = f.get("/v1/echo?api_key=1&s=x&callback=y").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"s": "x"}));
    // Values that do not fit are still errors.
    assert_bad_request(f.get("/v1/echo?i32=x").await, "`i32`");
}

// ---------------------------------------------------------------- path

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

#[tokio::test]
async fn multi_segment_variables_keep_encoded_slashes() {
    let f = fixture().await;
    let (_, body) = f.get("/v1/names/shelves/s%201/books/a/b%2Fc").await;
    assert_eq!(body["s"], "shelves/s 1/books/a/b%2Fc");
    // A `+` in a path is a plus.
    let (_, body) = f.get("/v1/names/a+b:peek").await;
    assert_eq!(body["s"], "a+b");
}

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
}

// ---------------------------------------------------------------- body

#[tokio::test]
async fn whole_body_json_with_proto_or_json_names() {
    let f = fixture().await;
    let (status, body) = f
        .post("/v1/echo", r#"{"name_wrapper": "n", "customJSON": "c", "inner": {"label": "x", "child": {"count": 2}}, "i64": 9007199254740993}"#)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"i64": "9007199254740993", "inner": {"label": "x", "child": {"count": 2}}, "nameWrapper": "n", "customJSON": "c"})
    );
}

#[tokio::test]
async fn well_known_types_in_the_body() {
    let f = fixture().await;
    let request = json!({
        "at": "2024-01-02T03:04:05Z", "ttl": "-1.5s", "mask": "inner.label,nameWrapper",
        "attrs": {"a": [1, "x", null, {"b": true}]}, "anyValue": null,
        "detail": {"@type": "type.googleapis.com/kitchen.v1.Inner", "label": "in any"},
        "big": "-12", "labels": {"k": "v"}, "fl": "Infinity", "db": 2.5e3
    });
    let (status, body) = f.post("/v1/echo", &request.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({
            "fl": "Infinity", "db": 2500.0, "labels": {"k": "v"}, "at": "2024-01-02T03:04:05Z", "ttl": "-1.500s",
            "mask": "inner.label,nameWrapper", "big": "-12", "attrs": {"a": [1.0, "x", null, {"b": true}]},
            "anyValue": null, "detail": {"@type": "type.googleapis.com/kitchen.v1.Inner", "label": "in any"}
        })
    );
}

#[tokio::test]
async fn body_field_binds_one_field_and_the_rest_comes_from_path_and_query() {
    let f = fixture().await;
    let (status, body) = f
        .send(
            "PUT",
            "/v1/echo/x/-5/GREEN?tags=a&tags=b",
            Some("application/json"),
            r#"{"label": "l", "count": 2}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"s": "x", "i64": "-5", "color": "GREEN", "tags": ["a", "b"], "inner": {"label": "l", "count": 2}})
    );
}

#[tokio::test]
async fn body_field_of_every_shape() {
    let f = fixture().await;
    for (path, body, expected) in [
        (
            "/v1/echo/tags",
            r#"["a", "b"]"#,
            json!({"tags": ["a", "b"]}),
        ),
        (
            "/v1/echo/attrs",
            r#"{"x": null}"#,
            json!({"attrs": {"x": null}}),
        ),
        ("/v1/echo/value", "null", json!({"anyValue": null})),
        ("/v1/echo/value", "[1, {}]", json!({"anyValue": [1.0, {}]})),
        (
            "/v1/echo/labels",
            r#"{"k": "v"}"#,
            json!({"labels": {"k": "v"}}),
        ),
        (
            "/v1/echo/at",
            r#""2024-01-02T03:04:05Z""#,
            json!({"at": "2024-01-02T03:04:05Z"}),
        ),
        ("/v1/echo/s", r#""text""#, json!({"s": "text"})),
        ("/v1/echo/s", "null", json!({})),
        ("/v1/echo/tags", "", json!({})),
    ] {
        let (status, got) = f.post(path, body).await;
        assert_eq!(status, StatusCode::OK, "{path} {body}: {got}");
        assert_eq!(got, expected, "{path} {body}");
    }
    // A body field cannot smuggle in other fields.
    assert_bad_request(
        f.post("/v1/echo/s", r#""a", "i32": 5"#).await,
        "invalid JSON body",
    );
    assert_bad_request(f.post("/v1/echo/tags", r#"["a", 1]"#).await, "at `[1]`");
}

#[tokio::test]
async fn null_means_unset_except_for_value() {
    let f = fixture().await;
    let (_, body) = f
        .post(
            "/v1/echo",
            r#"{"s": null, "inner": null, "tags": null, "anyValue": null, "attrs": {"n": null}}"#,
        )
        .await;
    assert_eq!(body, json!({"attrs": {"n": null}, "anyValue": null}));
}

#[tokio::test]
async fn json_errors_point_at_the_field() {
    let f = fixture().await;
    for (body, needle) in [
        (r#"{"inner": {"count": "many"}}"#, "at `inner.count`"),
        (r#"{"inner": {"nope": 1}}"#, "at `inner`"),
        (r#"{"nope": 1}"#, "unrecognized field name 'nope'"),
        (r#"{"tags": [1]}"#, "at `tags[0]`"),
        (r#"{"color": "BLUE"}"#, "at `color`"),
        (r#"{"i32": 1.5}"#, "at `i32`"),
        (r#"{"i32": 4294967296}"#, "at `i32`"),
        (
            r#"{"detail": {"@type": "type.googleapis.com/no.Such", "x": 1}}"#,
            "at `detail`",
        ),
        (r#"{"at": "tomorrow"}"#, "at `at`"),
        ("{", "invalid JSON body"),
        ("[]", "invalid JSON body"),
        (r#"{"s": "x"} trailing"#, "invalid JSON body"),
        ("\u{1}", "invalid JSON body"),
        (r#"{"s": "x", "s": "y"}"#, "duplicate key `s`"),
        (
            r#"{"inner": {"label": "x", "label": "y"}}"#,
            "at `inner`: duplicate key `label`",
        ),
        (r#"{"labels": {"k": "1", "k": "2"}}"#, "duplicate key `k`"),
    ] {
        assert_bad_request(f.post("/v1/echo", body).await, needle);
    }
    assert!(f.backend.records().is_empty());
}

#[tokio::test]
async fn unknown_body_fields_can_be_ignored() {
    let f = fixture_with(|c| c.json.ignore_unknown_fields = true).await;
    let (status, body) = f
        .post("/v1/echo", r#"{"nope": {"deep": [1]}, "s": "x"}"#)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"s": "x"}));
}

#[tokio::test]
async fn empty_body_is_an_empty_message() {
    let f = fixture().await;
    for content_type in [Some("application/json"), None] {
        let (status, body) = f.send("POST", "/v1/echo", content_type, "").await;
        assert_eq!((status, body), (StatusCode::OK, json!({})));
    }
    let (status, _) = f
        .send("POST", "/v1/echo", Some("application/json"), " \n ")
        .await;
    assert_eq!(status, StatusCode::OK);
}

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

#[tokio::test]
async fn limits_on_body_size_and_depth() {
    let f = fixture_with(|c| {
        c.limits.max_body_bytes = 1024;
        c.json.max_depth = 8;
    })
    .await;
    let big = format!(r#"{{"s": "{}"}}"#, "x".repeat(2000));
    let (status, body) = f.post("/v1/echo", &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["code"], 8);
    let deep = format!(
        "{}{}",
        r#"{"attrs": {"a": "#.to_owned() + &"[".repeat(10),
        "]".repeat(10) + "}}"
    );
    assert_bad_request(f.post("/v1/echo", &deep).await, "nests deeper than 8");
    // Chunked bodies (no Content-Length) are capped too.
    let chunks = futures_chunks(big.into_bytes());
    let response = f
        .client
        .post(f.gateway.url("/v1/echo"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

fn futures_chunks(
    bytes: Vec<u8>,
) -> impl futures_core::Stream<Item = Result<Bytes, std::io::Error>> {
    let chunks: Vec<Result<Bytes, std::io::Error>> = bytes
        .chunks(100)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    tokio_stream::iter(chunks)
}

// ---------------------------------------------------------------- HttpBody

#[tokio::test]
async fn http_body_response_is_raw() {
    let f = fixture().await;
    f.backend.script(Script {
        response: Some(
            json!({"content_type": "text/html; charset=utf-8", "data": "PGgxPmhpPC9oMT4="}),
        ),
        ..Script::default()
    });
    let response = f
        .client
        .get(f.gateway.url("/v1/docs/a/b.html"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    assert_eq!(response.text().await.unwrap(), "<h1>hi</h1>");
    assert_eq!(f.backend.last().json, json!({"name": "a/b.html"}));
}

#[tokio::test]
async fn http_body_request_takes_the_raw_body() {
    let f = fixture().await;
    let (status, _) = f
        .send(
            "POST",
            "/v1/upload",
            Some("image/png"),
            "\u{89}PNG not json",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let sent = f.backend.last().json;
    assert_eq!(sent["content_type"], "image/png");
    assert_eq!(sent["data"], "wolQTkcgbm90IGpzb24=");
}

// ---------------------------------------------------------------- response_body

#[tokio::test]
async fn response_body_writes_one_field() {
    let f = fixture().await;
    let (_, body) = f.get("/v1/tags?tags=a&tags=b").await;
    assert_eq!(body, json!(["a", "b"]));
    let (_, body) = f.get("/v1/tags").await;
    assert_eq!(body, json!([]), "an empty list is [], not nothing");
    let (_, body) = f.get("/v1/count?i64=5").await;
    assert_eq!(body, json!("5"));
    let (_, body) = f.get("/v1/count").await;
    assert_eq!(body, json!("0"));
    let (_, body) = f.get("/v1/inner?inner.label=x").await;
    assert_eq!(body, json!({"label": "x"}));
    let (_, body) = f.get("/v1/inner").await;
    assert_eq!(body, json!({}));
    let (_, body) = f.get("/v1/when?at=2024-01-02T03:04:05Z").await;
    assert_eq!(body, json!("2024-01-02T03:04:05Z"));
    let (_, body) = f.get("/v1/labels").await;
    assert_eq!(body, json!({}));
}

// ---------------------------------------------------------------- routing

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

#[tokio::test]
async fn fallback_routes_can_be_turned_off() {
    let f = fixture_with(|c| c.fallback_routes = false).await;
    let (status, body) = f.post("/kitchen.v1.Kitchen/Plain", "{}").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

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
    assert_eq!(response.headers()["allow"], "GET, POST");
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

#[tokio::test]
async fn streaming_methods_answer_501_for_now() {
    let f = fixture().await;
    let (status, body) = f.get("/v1/watch").await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED);
    assert_eq!(body["code"], 12);
}

#[tokio::test]
async fn http2_clients_are_served_too() {
    let f = fixture().await;
    let client = support::http2();
    let response = client
        .get(f.gateway.url("/v1/echo?s=h2"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"s": "h2"}));
}

// ---------------------------------------------------------------- output options

#[tokio::test]
async fn output_options() {
    let query = "/v1/echo?name_wrapper=n&color=GREEN&inner.label=x";
    let f = fixture_with(|c| c.json.use_proto_names = true).await;
    assert_eq!(
        f.get(query).await.1,
        json!({"color": "GREEN", "inner": {"label": "x"}, "name_wrapper": "n"})
    );

    let f = fixture_with(|c| c.json.enums_as_ints = true).await;
    assert_eq!(
        f.get(query).await.1,
        json!({"color": 2, "inner": {"label": "x"}, "nameWrapper": "n"})
    );

    let f = fixture_with(|c| c.json.emit_unpopulated = true).await;
    let body = f.get("/v1/echo?s=x").await.1;
    assert_eq!(body["i64"], "0");
    assert_eq!(body["flag"], false);
    assert_eq!(body["tags"], json!([]));
    assert_eq!(body["labels"], json!({}));
    assert_eq!(body["color"], "COLOR_UNSPECIFIED");
    assert_eq!(body["s"], "x");
}

#[tokio::test]
async fn fields_are_written_in_field_number_order() {
    let f = fixture().await;
    let response = f
        .client
        .get(
            f.gateway
                .url("/v1/echo?small=1&s=a&tags=t&i32=2&customJSON=z"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"s":"a","i32":2,"tags":["t"],"small":1,"customJSON":"z"}"#
    );
}

// ---------------------------------------------------------------- errors

#[tokio::test]
async fn upstream_errors_map_to_http_statuses_with_details() {
    let f = fixture().await;
    let table = [
        (1, 499),
        (2, 500),
        (3, 400),
        (4, 504),
        (5, 404),
        (6, 409),
        (7, 403),
        (8, 429),
        (9, 400),
        (10, 409),
        (11, 400),
        (12, 501),
        (13, 500),
        (14, 503),
        (15, 500),
        (16, 401),
    ];
    for (code, http) in table {
        let response = f
            .client
            .get(f.gateway.url("/v1/echo"))
            .header("grpc-metadata-x-echo-status", code.to_string())
            .header("grpc-metadata-x-echo-message", "it failed")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), http, "gRPC code {code}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body,
            json!({"code": code, "message": "it failed", "details": []})
        );
    }
    // Non-ASCII status messages (percent-encoded in grpc-message) survive.
    f.backend.script(Script {
        error: Some((
            tonic::Code::NotFound,
            "no “ünïcode” here".to_owned(),
            Vec::new(),
        )),
        ..Script::default()
    });
    let (status, body) = f.get("/v1/echo").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], "no “ünïcode” here");
}

#[tokio::test]
async fn rich_details_come_back_as_json_any() {
    let f = fixture().await;
    f.backend.script(Script {
        error: Some((
            tonic::Code::FailedPrecondition,
            "not yet".to_owned(),
            vec![
                json!({"@type": "type.googleapis.com/google.rpc.PreconditionFailure", "violations": [{"type": "TOS", "subject": "u1", "description": "accept first"}]}),
                json!({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"}),
                json!({"@type": "type.googleapis.com/kitchen.v1.Inner", "label": "custom detail"}),
                json!({"@type": "type.googleapis.com/google.protobuf.Duration", "value": "3s"}),
            ],
        )),
        ..Script::default()
    });
    let (status, body) = f.get("/v1/echo").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({
            "code": 9,
            "message": "not yet",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.PreconditionFailure", "violations": [{"type": "TOS", "subject": "u1", "description": "accept first"}]},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"},
                {"@type": "type.googleapis.com/kitchen.v1.Inner", "label": "custom detail"},
                {"@type": "type.googleapis.com/google.protobuf.Duration", "value": "3s"}
            ]
        })
    );
}

// ---------------------------------------------------------------- extensions

#[tokio::test]
async fn maps_and_repeated_messages_in_the_query() {
    let f = fixture().await;
    let (status, body) = f
        .get("/v1/echo?labels[a]=1&labels[b.c]=x+y&items[0].label=first&items[0].count=2&items[1].label=second&items[1].child.label=deep")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({
            "labels": {"a": "1", "b.c": "x y"},
            "items": [{"label": "first", "count": 2}, {"label": "second", "child": {"label": "deep"}}]
        })
    );
    for (query, needle) in [
        ("labels[a]=1&labels[a]=2", "given more than once"),
        (
            "items[1].label=x",
            "index 1 skips ahead; give `items[0]` first",
        ),
        ("items[0].label=x&items[0].label=y", "given more than once"),
        ("items[0]=x", "set its fields as `items[0].field`"),
        ("items[x].label=1", "`x` is not a list index"),
        ("tags[0]=x", "`tags` is not a map or a repeated message"),
        ("s[0]=x", "`s` is not a map or a repeated message"),
        ("labels=x", "a map is set one entry at a time"),
        ("items.label=x", "`items` is not a singular message field"),
        ("labels[a", "not a field path"),
        ("items[0].nope=1", "unknown query parameter `items[0].nope`"),
    ] {
        assert_bad_request(f.get(&format!("/v1/echo?{query}")).await, needle);
    }
}

#[tokio::test]
async fn ignored_query_parameters_globally_and_per_method() {
    let f = fixture_with(|c| {
        c.ignore_query_params
            .insert("*".into(), vec!["api_key".into()]);
        c.ignore_query_params.insert(
            "kitchen.v1.Kitchen/Echo".into(),
            vec!["callback".into(), "s".into()],
        );
    })
    .await;
    let (status, body) = f
        .get("/v1/echo?api_key=k&callback=cb&s=dropped&i32=1")
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"i32": 1})));
    // Other methods only ignore the global list.
    let (status, body) = f.get("/v1/tags?api_key=k&tags=a").await;
    assert_eq!((status, body), (StatusCode::OK, json!(["a"])));
    assert_bad_request(
        f.get("/v1/tags?callback=cb").await,
        "unknown query parameter `callback`",
    );
    // Even on a whole-body route, ignored names pass.
    let (status, _) = f.post("/v1/echo?api_key=k", "{}").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn case_insensitive_names_are_opt_in() {
    let f = fixture().await;
    assert_bad_request(f.get("/v1/echo?color=green").await, "`color`");
    assert_bad_request(f.post("/v1/echo", r#"{"COLOR": "GREEN"}"#).await, "COLOR");

    let f = fixture_with(|c| {
        c.json.case_insensitive_enums = true;
        c.json.case_insensitive_fields = true;
    })
    .await;
    let (status, body) = f.get("/v1/echo?Color=green&COLORS=red&Inner.LABEL=x").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"color": "GREEN", "colors": ["RED"], "inner": {"label": "x"}})
    );
    let (status, body) = f
        .post(
            "/v1/echo",
            r#"{"COLOR": "green", "Inner": {"Label": "y", "CHILD": {"count": 1}}, "items": [{"LABEL": "i"}], "nameWRAPPER": "w"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"color": "GREEN", "inner": {"label": "y", "child": {"count": 1}}, "nameWrapper": "w", "items": [{"label": "i"}]})
    );
    // One field under two names is an error here, duplicates too.
    assert_bad_request(
        f.post("/v1/echo", r#"{"color": "RED", "Color": "GREEN"}"#)
            .await,
        "given twice",
    );
    assert_bad_request(
        f.post("/v1/echo", r#"{"s": "a", "s": "b"}"#).await,
        "duplicate key",
    );
    // Unknown names still fail, and path variables take enum names too.
    assert_bad_request(f.post("/v1/echo", r#"{"nope": 1}"#).await, "nope");
    let (status, body) = f
        .send("PUT", "/v1/echo/x/1/green", Some("application/json"), "{}")
        .await;
    assert_eq!(
        (status, body["color"].clone()),
        (StatusCode::OK, json!("GREEN"))
    );
}
