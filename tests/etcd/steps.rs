//! The scripted requests of the etcd interop test, one list per request
//! kind. Each list is built for one side (`etcd` or `pgw`, which names its
//! keys) and the store revision `base` read just before it runs.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

/// What a step is for.
pub(crate) enum Expect {
    /// Prepares state; sent to etcd's gateway on both sides, not compared.
    Setup,
    /// A 200 answer: compared after normalising, then these JSON pointers
    /// must hold these values (`None`: the member must be absent).
    Ok(Vec<(&'static str, Option<Value>)>),
    /// An error answer with this HTTP status and gRPC code; `same_message`
    /// says whether the message comes from etcd (so both sides carry it)
    /// or from the gateway itself (so each gateway words it its own way).
    Error {
        status: u16,
        code: i64,
        same_message: bool,
    },
}

pub(crate) struct Step {
    pub(crate) name: &'static str,
    pub(crate) path: &'static str,
    pub(crate) body: String,
    pub(crate) expect: Expect,
}

fn step(name: &'static str, path: &'static str, body: Value, expect: Expect) -> Step {
    Step {
        name,
        path,
        body: body.to_string(),
        expect,
    }
}

fn ok(checks: Vec<(&'static str, Option<Value>)>) -> Expect {
    Expect::Ok(checks)
}

fn b64(text: &str) -> String {
    B64.encode(text)
}

/// Keys of one request kind on one side: `/<kind>/<side>/<name>`.
struct Keys {
    kind: &'static str,
    side: &'static str,
}

impl Keys {
    fn key(&self, name: &str) -> String {
        b64(&format!("/{}/{}/{name}", self.kind, self.side))
    }

    /// The key as the normalised answers show it.
    fn shown(&self, name: &str) -> Value {
        json!(format!("/{}/SIDE/{name}", self.kind))
    }

    /// `range_end` covering every key of this kind and side.
    fn prefix_end(&self) -> String {
        // The prefix ends in '/', whose successor is '0'.
        b64(&format!("/{}/{}0", self.kind, self.side))
    }

    fn prefix(&self) -> String {
        b64(&format!("/{}/{}/", self.kind, self.side))
    }
}

/// `B+n` as the normalised answers show revision `base + n`.
fn rev(n: i64) -> Option<Value> {
    Some(json!(format!("B+{n}")))
}

fn put(keys: &Keys, name: &str, value: &str) -> Step {
    step(
        "setup put",
        "/v3/kv/put",
        json!({"key": keys.key(name), "value": b64(value)}),
        Expect::Setup,
    )
}

/// A value that is not UTF-8 and whose base64 needs padding.
const BINARY: &[u8] = &[0x00, 0xff, 0xfe, b'\n', 0x80];

/// Put: new and existing keys, with and without `prev_kv`, `ignore_value`,
/// an empty value, a binary value.
pub(crate) fn put_steps(side: &'static str, _base: i64) -> Vec<Step> {
    let k = Keys { kind: "put", side };
    vec![
        step(
            "put new key",
            "/v3/kv/put",
            json!({"key": k.key("a"), "value": b64("v1")}),
            ok(vec![("/header/revision", rev(1)), ("/prev_kv", None)]),
        ),
        step(
            "put existing key, prev_kv",
            "/v3/kv/put",
            json!({"key": k.key("a"), "value": b64("v2"), "prev_kv": true}),
            ok(vec![
                ("/header/revision", rev(2)),
                ("/prev_kv/key", Some(k.shown("a"))),
                ("/prev_kv/value", Some(json!(b64("v1")))),
                ("/prev_kv/version", Some(json!("1"))),
                ("/prev_kv/create_revision", rev(1)),
                ("/prev_kv/mod_revision", rev(1)),
                ("/prev_kv/lease", None),
            ]),
        ),
        step(
            "put new key, prev_kv (nothing before)",
            "/v3/kv/put",
            json!({"key": k.key("b"), "value": b64("v1"), "prev_kv": true}),
            ok(vec![("/header/revision", rev(3)), ("/prev_kv", None)]),
        ),
        step(
            "put ignore_value",
            "/v3/kv/put",
            json!({"key": k.key("a"), "ignore_value": true, "prev_kv": true}),
            ok(vec![
                ("/prev_kv/value", Some(json!(b64("v2")))),
                ("/prev_kv/version", Some(json!("2"))),
            ]),
        ),
        step(
            "put empty value",
            "/v3/kv/put",
            json!({"key": k.key("c")}),
            ok(vec![("/header/revision", rev(5))]),
        ),
        step(
            "put binary value",
            "/v3/kv/put",
            json!({"key": k.key("d"), "value": B64.encode(BINARY)}),
            ok(vec![("/header/revision", rev(6))]),
        ),
        step(
            "range after puts",
            "/v3/kv/range",
            json!({"key": k.prefix(), "range_end": k.prefix_end()}),
            ok(vec![
                ("/count", Some(json!("4"))),
                ("/kvs/0/key", Some(k.shown("a"))),
                ("/kvs/0/value", Some(json!(b64("v2")))),
                ("/kvs/0/version", Some(json!("3"))),
                ("/kvs/0/mod_revision", rev(4)),
                ("/kvs/2/key", Some(k.shown("c"))),
                ("/kvs/2/value", None),
                ("/kvs/3/value", Some(json!(B64.encode(BINARY)))),
            ]),
        ),
    ]
}

/// Range: one key linearizable and serializable, an old revision, limits,
/// sorting, keys/count only, revision filters, a missing key, camelCase and
/// unknown input fields.
pub(crate) fn range_steps(side: &'static str, base: i64) -> Vec<Step> {
    let k = Keys {
        kind: "range",
        side,
    };
    let all = |extra: Value| {
        let mut body = json!({"key": k.prefix(), "range_end": k.prefix_end()});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    vec![
        put(&k, "a", "v1"),  // B+1
        put(&k, "b", "v2"),  // B+2
        put(&k, "c", "v3"),  // B+3
        put(&k, "a", "v1b"), // B+4
        put(&k, "d", "v4"),  // B+5
        step(
            "range one key, linearizable",
            "/v3/kv/range",
            json!({"key": k.key("a")}),
            ok(vec![
                ("/header/revision", rev(5)),
                ("/kvs/0/key", Some(k.shown("a"))),
                ("/kvs/0/value", Some(json!(b64("v1b")))),
                ("/kvs/0/version", Some(json!("2"))),
                ("/kvs/0/create_revision", rev(1)),
                ("/kvs/0/mod_revision", rev(4)),
                ("/kvs/1", None),
                ("/count", Some(json!("1"))),
                ("/more", None),
            ]),
        ),
        step(
            "range one key, serializable",
            "/v3/kv/range",
            json!({"key": k.key("a"), "serializable": true}),
            ok(vec![
                ("/kvs/0/value", Some(json!(b64("v1b")))),
                ("/count", Some(json!("1"))),
            ]),
        ),
        step(
            "range at an older revision",
            "/v3/kv/range",
            json!({"key": k.key("a"), "revision": (base + 3).to_string()}),
            ok(vec![
                ("/kvs/0/value", Some(json!(b64("v1")))),
                ("/kvs/0/version", Some(json!("1"))),
                ("/kvs/0/mod_revision", rev(1)),
            ]),
        ),
        step(
            "range with limit",
            "/v3/kv/range",
            all(json!({"limit": 2})),
            ok(vec![
                ("/kvs/0/key", Some(k.shown("a"))),
                ("/kvs/1/key", Some(k.shown("b"))),
                ("/kvs/2", None),
                ("/more", Some(json!(true))),
                ("/count", Some(json!("4"))),
            ]),
        ),
        step(
            "range sorted by value, descending",
            "/v3/kv/range",
            all(json!({"sort_order": "DESCEND", "sort_target": "VALUE", "serializable": true})),
            ok(vec![
                ("/kvs/0/key", Some(k.shown("d"))),
                ("/kvs/1/key", Some(k.shown("c"))),
                ("/kvs/2/key", Some(k.shown("b"))),
                ("/kvs/3/key", Some(k.shown("a"))),
            ]),
        ),
        step(
            "range keys only, enums as numbers, camelCase input",
            "/v3/kv/range",
            all(json!({"keysOnly": true, "sortOrder": 2, "sortTarget": 3})),
            ok(vec![
                ("/kvs/0/key", Some(k.shown("d"))),
                ("/kvs/0/value", None),
                ("/kvs/0/version", Some(json!("1"))),
                ("/kvs/1/key", Some(k.shown("a"))),
                ("/count", Some(json!("4"))),
            ]),
        ),
        step(
            "range count only, serializable",
            "/v3/kv/range",
            all(json!({"count_only": true, "serializable": true})),
            ok(vec![("/kvs", None), ("/count", Some(json!("4")))]),
        ),
        step(
            "range filtered by mod revision",
            "/v3/kv/range",
            all(
                json!({"min_mod_revision": (base + 4).to_string(), "max_create_revision": base + 5}),
            ),
            ok(vec![
                ("/kvs/0/key", Some(k.shown("a"))),
                ("/kvs/1/key", Some(k.shown("d"))),
                ("/kvs/2", None),
                // etcd counts the range before filtering.
                ("/count", Some(json!("4"))),
            ]),
        ),
        step(
            "range missing key",
            "/v3/kv/range",
            json!({"key": k.key("zzz")}),
            ok(vec![
                ("/header/revision", rev(5)),
                ("/kvs", None),
                ("/count", None),
            ]),
        ),
        // etcd's gateway ignores JSON members that name no field; protogate
        // does with `json.ignore_unknown_fields` (set below to match).
        step(
            "range with an unknown JSON member",
            "/v3/kv/range",
            json!({"key": k.key("b"), "no_such_field": {"x": [1]}}),
            ok(vec![("/kvs/0/value", Some(json!(b64("v2"))))]),
        ),
    ]
}

/// DeleteRange: one key with `prev_kv`, a missing key, a range, then what
/// is left.
pub(crate) fn delete_steps(side: &'static str, _base: i64) -> Vec<Step> {
    let k = Keys {
        kind: "delete",
        side,
    };
    vec![
        put(&k, "a", "v1"), // B+1
        put(&k, "b", "v2"), // B+2
        put(&k, "c", "v3"), // B+3
        put(&k, "d", "v4"), // B+4
        step(
            "delete one key, prev_kv",
            "/v3/kv/deleterange",
            json!({"key": k.key("a"), "prev_kv": true}),
            ok(vec![
                ("/header/revision", rev(5)),
                ("/deleted", Some(json!("1"))),
                ("/prev_kvs/0/key", Some(k.shown("a"))),
                ("/prev_kvs/0/value", Some(json!(b64("v1")))),
                ("/prev_kvs/0/mod_revision", rev(1)),
                ("/prev_kvs/1", None),
            ]),
        ),
        step(
            "delete a missing key",
            "/v3/kv/deleterange",
            json!({"key": k.key("a"), "prev_kv": true}),
            ok(vec![
                ("/header/revision", rev(5)),
                ("/deleted", None),
                ("/prev_kvs", None),
            ]),
        ),
        step(
            "delete a range, no prev_kv",
            "/v3/kv/deleterange",
            json!({"key": k.key("b"), "range_end": k.key("d")}),
            ok(vec![
                ("/header/revision", rev(6)),
                ("/deleted", Some(json!("2"))),
                ("/prev_kvs", None),
            ]),
        ),
        step(
            "range what is left",
            "/v3/kv/range",
            json!({"key": k.prefix(), "range_end": k.prefix_end()}),
            ok(vec![
                ("/count", Some(json!("1"))),
                ("/kvs/0/key", Some(k.shown("d"))),
                ("/kvs/0/value", Some(json!(b64("v4")))),
            ]),
        ),
    ]
}

/// Txn: a compare that holds (success ops), one that fails (failure ops),
/// several compares with a nested txn, and an empty txn.
pub(crate) fn txn_steps(side: &'static str, base: i64) -> Vec<Step> {
    let k = Keys { kind: "txn", side };
    vec![
        put(&k, "x", "1"), // B+1
        step(
            "txn compare holds",
            "/v3/kv/txn",
            json!({
                "compare": [{"key": k.key("x"), "result": "EQUAL", "target": "VALUE", "value": b64("1")}],
                "success": [
                    {"request_put": {"key": k.key("y"), "value": b64("2")}},
                    {"request_range": {"key": k.key("x")}},
                ],
                "failure": [{"request_range": {"key": k.key("y")}}],
            }),
            ok(vec![
                ("/header/revision", rev(2)),
                ("/succeeded", Some(json!(true))),
                ("/responses/0/response_put/header/revision", rev(2)),
                ("/responses/0/response_put/prev_kv", None),
                ("/responses/1/response_range/kvs/0/key", Some(k.shown("x"))),
                (
                    "/responses/1/response_range/kvs/0/value",
                    Some(json!(b64("1"))),
                ),
                ("/responses/1/response_range/count", Some(json!("1"))),
                ("/responses/2", None),
            ]),
        ),
        step(
            "txn compare fails",
            "/v3/kv/txn",
            json!({
                "compare": [{"key": k.key("x"), "result": "GREATER", "target": "VERSION", "version": "5"}],
                "success": [{"request_put": {"key": k.key("never"), "value": b64("!")}}],
                "failure": [
                    {"request_delete_range": {"key": k.key("y"), "prev_kv": true}},
                    {"request_range": {"key": k.prefix(), "range_end": k.prefix_end(), "count_only": true}},
                ],
            }),
            ok(vec![
                ("/header/revision", rev(3)),
                ("/succeeded", None),
                (
                    "/responses/0/response_delete_range/deleted",
                    Some(json!("1")),
                ),
                (
                    "/responses/0/response_delete_range/prev_kvs/0/value",
                    Some(json!(b64("2"))),
                ),
                ("/responses/1/response_range/count", Some(json!("1"))),
                ("/responses/1/response_range/kvs", None),
            ]),
        ),
        step(
            "txn with several compares and a nested txn",
            "/v3/kv/txn",
            json!({
                "compare": [
                    {"key": k.key("x"), "result": "EQUAL", "target": "MOD", "mod_revision": (base + 1).to_string()},
                    {"key": k.prefix(), "range_end": k.prefix_end(), "result": "GREATER", "target": "CREATE", "create_revision": "0"},
                    {"key": k.key("x"), "result": "NOT_EQUAL", "target": "LEASE", "lease": "7"},
                ],
                "success": [{"request_txn": {
                    "compare": [{"key": k.key("y"), "result": "EQUAL", "target": "VERSION", "version": "0"}],
                    "success": [{"request_put": {"key": k.key("z"), "value": b64("3"), "prev_kv": true}}],
                }}],
            }),
            ok(vec![
                ("/succeeded", Some(json!(true))),
                ("/responses/0/response_txn/succeeded", Some(json!(true))),
                // etcd sets the nested txn's header but leaves it empty:
                // a present, empty message must stay `{}`, not vanish.
                ("/responses/0/response_txn/header", Some(json!({}))),
                (
                    "/responses/0/response_txn/responses/0/response_put/header/revision",
                    rev(4),
                ),
                (
                    "/responses/0/response_txn/responses/0/response_put/prev_kv",
                    None,
                ),
            ]),
        ),
        step(
            "empty txn",
            "/v3/kv/txn",
            json!({}),
            ok(vec![
                ("/header/revision", rev(4)),
                ("/succeeded", Some(json!(true))),
                ("/responses", None),
            ]),
        ),
    ]
}

/// Requests etcd rejects. etcd 3.4's gateway (grpc-gateway v1) writes
/// `{"error": msg, "message": msg, "code": n}`; protogate writes
/// `{"code": n, "message": msg, "details": []}` (the v2 / google.rpc.Status
/// shape). So only the HTTP status, the gRPC code and, for errors etcd
/// raises, the message are compared.
pub(crate) fn error_steps(side: &'static str, _base: i64) -> Vec<Step> {
    let k = Keys {
        kind: "error",
        side,
    };
    vec![
        step(
            "range at a future revision",
            "/v3/kv/range",
            json!({"key": k.key("a"), "revision": "999999999"}),
            Expect::Error {
                status: 400,
                code: 11,
                same_message: true,
            },
        ),
        step(
            "txn writing one key twice",
            "/v3/kv/txn",
            json!({"success": [
                {"request_put": {"key": k.key("a"), "value": b64("1")}},
                {"request_put": {"key": k.key("a"), "value": b64("2")}},
            ]}),
            Expect::Error {
                status: 400,
                code: 3,
                same_message: true,
            },
        ),
        step(
            "put without a key",
            "/v3/kv/put",
            json!({"value": b64("1")}),
            Expect::Error {
                status: 400,
                code: 3,
                same_message: true,
            },
        ),
        // An empty body is an empty RangeRequest for both gateways, so
        // the error is etcd's own.
        Step {
            name: "empty body",
            path: "/v3/kv/range",
            body: String::new(),
            expect: Expect::Error {
                status: 400,
                code: 3,
                same_message: true,
            },
        },
        Step {
            name: "malformed JSON body",
            path: "/v3/kv/range",
            body: "{not json".to_owned(),
            expect: Expect::Error {
                status: 400,
                code: 3,
                same_message: false,
            },
        },
    ]
}

/// Builds one side's steps from its name and base revision.
pub(crate) type Script = fn(&'static str, i64) -> Vec<Step>;
