//! Table-driven tests of request mapping (path variables and query) against
//! the demo service's messages.

use bytes::Bytes;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions};

use super::*;
use crate::http_rule::{Matcher, Template, path};
use crate::transcode::test_protos;

fn pool() -> DescriptorPool {
    crate::descriptor::load(&crate::descriptor::Sources {
        embedded: vec![Bytes::from_static(crate::demo::DESCRIPTOR_SET)],
        ..Default::default()
    })
    .unwrap()
}

fn message(pool: &DescriptorPool, name: &str) -> MessageDescriptor {
    pool.get_message_by_name(&format!("protogate.demo.v1.{name}"))
        .unwrap()
}

/// Maps `uri` through a route `template` (body `body`) into `input`, and
/// writes the result as JSON with proto names.
fn map(
    input: &MessageDescriptor,
    template: &str,
    body: &str,
    uri: &str,
    json: &str,
) -> Result<String, String> {
    let template = Template::parse(template).unwrap();
    let plan = RequestPlan::new(input, &template, body).map_err(|e| e.to_string())?;
    let mut matcher = Matcher::new();
    matcher.insert(http::Method::GET, &template, 0).unwrap();
    let (raw_path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let normalized = path::normalize(raw_path).map_err(|e| e.to_string())?;
    let found = matcher
        .find(&http::Method::GET, &normalized)
        .map_err(|e| format!("{e:?}"))?;
    let message: DynamicMessage = plan
        .decode(
            RawRequest {
                path: &normalized,
                found: &found,
                query: Some(query),
                content_type: "application/json",
                body: Bytes::copy_from_slice(json.as_bytes()),
            },
            &Codec::default(),
        )
        .map_err(|e| e.to_string())?;
    let options = SerializeOptions::new().use_proto_field_name(true);
    Ok(serde_json::to_string(
        &message
            .serialize_with_options(serde_json::value::Serializer, &options)
            .unwrap(),
    )
    .unwrap())
}

#[test]
fn query_mapping() {
    let pool = pool();
    let list = message(&pool, "ListBooksRequest");
    let t = "/v1/{parent=shelves/*}/books";
    let table: &[(&str, Result<&str, &str>)] = &[
        ("/v1/shelves/s1/books", Ok(r#"{"parent":"shelves/s1"}"#)),
        (
            "/v1/shelves/s1/books?page_size=5",
            Ok(r#"{"parent":"shelves/s1","page_size":5}"#),
        ),
        (
            "/v1/shelves/s1/books?pageSize=5",
            Ok(r#"{"parent":"shelves/s1","page_size":5}"#),
        ),
        (
            "/v1/shelves/s1/books?genre=SCIENCE",
            Ok(r#"{"parent":"shelves/s1","genre":"SCIENCE"}"#),
        ),
        (
            "/v1/shelves/s1/books?genre=2",
            Ok(r#"{"parent":"shelves/s1","genre":"SCIENCE"}"#),
        ),
        (
            "/v1/shelves/s1/books?genre=99",
            Ok(r#"{"parent":"shelves/s1","genre":99}"#),
        ),
        (
            "/v1/shelves/s1/books?page_token=a+b%2Bc",
            Ok(r#"{"parent":"shelves/s1","page_token":"a b+c"}"#),
        ),
        (
            "/v1/shelves/s1/books?page_token=",
            Ok(r#"{"parent":"shelves/s1"}"#),
        ),
        (
            "/v1/shelves/s1/books?page_token",
            Ok(r#"{"parent":"shelves/s1"}"#),
        ),
        (
            "/v1/shelves/s1/books?&&page_size=1&",
            Ok(r#"{"parent":"shelves/s1","page_size":1}"#),
        ),
        (
            "/v1/shelves/s1/books?page_size=x",
            Err("query parameter `page_size`: `x` is not a valid i32 integer"),
        ),
        (
            "/v1/shelves/s1/books?genre=science",
            Err("query parameter `genre`"),
        ),
        (
            "/v1/shelves/s1/books?page_size=1&page_size=2",
            Err("`page_size` is given more than once"),
        ),
        (
            "/v1/shelves/s1/books?parent=x",
            Err("`parent` sets a field that this route binds"),
        ),
        (
            "/v1/shelves/s1/books?nope=1",
            Err("unknown query parameter `nope`"),
        ),
        (
            "/v1/shelves/s1/books?page_size.x=1",
            Err("`page_size` is not a singular message field"),
        ),
        (
            "/v1/shelves/s1%2Fx/books",
            Ok(r#"{"parent":"shelves/s1%2Fx"}"#),
        ),
    ];
    for (uri, expected) in table {
        let got = map(&list, t, "", uri, "");
        match (expected, &got) {
            (Ok(want), Ok(got)) => assert_eq!(got, want, "{uri}"),
            (Err(needle), Err(got)) => assert!(
                got.contains(needle),
                "{uri}: {got:?} should contain {needle:?}"
            ),
            _ => panic!("{uri}: expected {expected:?}, got {got:?}"),
        }
    }
}

#[test]
fn nested_path_variables_and_body_fields() {
    let pool = pool();
    let update = message(&pool, "UpdateBookRequest");
    let t = "/v1/{book.name=shelves/*/books/*}";
    assert_eq!(
        map(
            &update,
            t,
            "book",
            "/v1/shelves/a/books/b?update_mask=title,pageCount",
            r#"{"title":"T"}"#
        )
        .unwrap(),
        // FieldMask JSON is always lowerCamelCase; the backend got page_count.
        r#"{"book":{"name":"shelves/a/books/b","title":"T"},"update_mask":"title,pageCount"}"#
    );
    // The path wins over the body for a field both set.
    assert_eq!(
        map(
            &update,
            t,
            "book",
            "/v1/shelves/a/books/b",
            r#"{"name":"other"}"#
        )
        .unwrap(),
        r#"{"book":{"name":"shelves/a/books/b"}}"#
    );
    // The query cannot reach into the body field.
    let err = map(
        &update,
        t,
        "book",
        "/v1/shelves/a/books/b?book.title=x",
        "{}",
    )
    .unwrap_err();
    assert!(
        err.contains("`book.title` sets a field that this route binds"),
        "{err}"
    );
}

/// Oneof conflicts name both members as the client spelt them: keys as
/// the query wrote them (the earlier parameter's for the member already
/// set), body keys as the body wrote them, a path variable as its
/// template writes it.
#[test]
fn oneof_conflicts_are_named_as_the_client_spelt_them() {
    let everything = test_protos::descriptor("wire.v1.Everything");
    let decode = |template: &str, body: &str, uri: &str, json: &str| {
        let template = Template::parse(template).unwrap();
        let plan = RequestPlan::new(&everything, &template, body).unwrap();
        let mut matcher = Matcher::new();
        matcher.insert(http::Method::GET, &template, 0).unwrap();
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        let found = matcher.find(&http::Method::GET, path).unwrap();
        let request = RawRequest {
            path,
            found: &found,
            query: Some(query),
            content_type: "application/json",
            body: Bytes::copy_from_slice(json.as_bytes()),
        };
        plan.decode(request, &Codec::default())
            .unwrap_err()
            .to_string()
    };
    let pick =
        |a: &str, b: &str| format!("`{a}` and `{b}` are members of oneof `pick`; set at most one");
    for (template, body, uri, json, expected) in [
        (
            "/t",
            "",
            "/t?choice.a=x&choice.node.name=y",
            "",
            pick("choice.node", "choice.a"),
        ),
        (
            "/t",
            "",
            "/t?choice.node.name=y&choice.x=YQ&choice.b=1",
            "",
            pick("choice.b", "choice.node"),
        ),
        (
            "/t/{choice.a}",
            "",
            "/t/q?choice.b=1",
            "",
            pick("choice.b", "choice.a"),
        ),
        (
            "/t/{choice.a}",
            "*",
            "/t/q",
            r#"{"choice": {"b": 1}}"#,
            pick("choice.a", "choice.b"),
        ),
        (
            "/t/{choice.a}",
            "choice",
            "/t/q",
            r#"{"b": null, "when": "2020-01-01T00:00:00Z"}"#,
            pick("choice.a", "choice.when"),
        ),
    ] {
        assert_eq!(decode(template, body, uri, json), expected, "{uri} {json}");
    }
}

#[test]
fn plans_reject_annotations_that_do_not_fit() {
    let pool = pool();
    let get = message(&pool, "GetBookRequest");
    let list = message(&pool, "ListBooksResponse");
    let create = message(&pool, "CreateBookRequest");
    let cases = [
        (
            &get,
            "/v1/{nope}",
            "",
            "path variable `nope`: `protogate.demo.v1.GetBookRequest` has no field `nope`",
        ),
        (
            &get,
            "/v1/{name.x}",
            "",
            "path variable `name.x`: `name` is not a singular message field, so it has no subfields",
        ),
        (
            &list,
            "/v1/{books}",
            "",
            "path variable `books`: field `books` is not a singular scalar",
        ),
        (
            &create,
            "/v1/{book}",
            "",
            "path variable `book`: field `book` is not a singular scalar",
        ),
        (
            &get,
            "/v1/x",
            "nope",
            "body field `nope` is not a top-level field",
        ),
        (
            &create,
            "/v1/x",
            "book.title",
            "body field `book.title` is not a top-level field",
        ),
    ];
    for (input, template, body, message) in cases {
        let err = RequestPlan::new(input, &Template::parse(template).unwrap(), body).unwrap_err();
        assert!(
            err.to_string().starts_with(message),
            "{err} should start with {message}"
        );
    }
    let book = message(&pool, "Book");
    let err = ResponsePlan::new(&book, "nope").unwrap_err();
    assert_eq!(
        err.to_string(),
        "response_body field `nope` is not a top-level field of the response message"
    );
}

/// `null` leaves a list or map unset, also one of `NullValue`, whose single
/// values read `null` as a value; as the whole body of a `body` field too.
/// (The message library read it as one `NULL_VALUE` element.)
#[test]
fn null_leaves_lists_and_maps_of_null_values_unset() {
    let written = |name: &str, body: &str, json: &str| {
        map(&test_protos::descriptor(name), "/v1/x", body, "/v1/x", json)
    };
    for (name, json) in [
        ("Lists", r#"{"nothing": null}"#),
        ("Lists", r#"{"nothing": null, "i32": null}"#),
        ("Maps", r#"{"nothing": null}"#),
        ("Lists", "null"),
    ] {
        assert_eq!(written(name, "*", json).unwrap(), "{}", "{name} {json}");
    }
    assert_eq!(written("Lists", "nothing", "null").unwrap(), "{}");
    assert_eq!(written("Maps", "nothing", " null ").unwrap(), "{}");
    // An element that is `null` is a value.
    assert_eq!(
        written("Lists", "*", r#"{"nothing": [null]}"#).unwrap(),
        r#"{"nothing":[null]}"#
    );
    assert_eq!(
        written("Lists", "nothing", "[null, null]").unwrap(),
        r#"{"nothing":[null,null]}"#
    );
}

/// A `NullValue` given as its number, `0`, is `null`, as Go and Python
/// read it; other numbers are no NullValue. (The message library took only
/// `null` and `"NULL_VALUE"`.)
#[test]
fn null_value_takes_its_number() {
    let written = |json: &str| {
        map(
            &test_protos::descriptor("Lists"),
            "/v1/x",
            "*",
            "/v1/x",
            json,
        )
    };
    assert_eq!(
        written(r#"{"nothing": [0, null, "NULL_VALUE"]}"#).unwrap(),
        r#"{"nothing":[null,null,null]}"#
    );
    assert!(written(r#"{"nothing": [1]}"#).is_err());
    assert!(written(r#"{"i32": [0]}"#).is_ok());
    let single = |json: &str| {
        map(
            &test_protos::descriptor("Optionals"),
            "/v1/x",
            "*",
            "/v1/x",
            json,
        )
    };
    assert_eq!(single(r#"{"nothing": 0}"#).unwrap(), r#"{"nothing":null}"#);
}
