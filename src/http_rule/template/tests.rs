use super::*;

fn lit(s: &str) -> Segment {
    Segment::Literal(s.into())
}

fn var(path: &str, start: usize, end: usize) -> Variable {
    Variable {
        field_path: path.split('.').map(Into::into).collect(),
        start,
        end,
    }
}

/// Template text, segments, variables and verb.
type Parsed<'a> = (&'a str, Vec<Segment>, Vec<Variable>, Option<&'a str>);

#[test]
fn parses_the_http_proto_examples() {
    // Templates from the comments of google/api/http.proto.
    let table: &[Parsed<'_>] = &[
        (
            "/v1/{name=messages/*}",
            vec![lit("v1"), lit("messages"), Segment::Single],
            vec![var("name", 1, 3)],
            None,
        ),
        (
            "/v1/messages/{message_id}",
            vec![lit("v1"), lit("messages"), Segment::Single],
            vec![var("message_id", 2, 3)],
            None,
        ),
        (
            "/v1/messages/{message_id}/{sub.subfield}",
            vec![lit("v1"), lit("messages"), Segment::Single, Segment::Single],
            vec![var("message_id", 2, 3), var("sub.subfield", 3, 4)],
            None,
        ),
        (
            "/v1/users/{user_id}/messages/{message_id}",
            vec![
                lit("v1"),
                lit("users"),
                Segment::Single,
                lit("messages"),
                Segment::Single,
            ],
            vec![var("user_id", 2, 3), var("message_id", 4, 5)],
            None,
        ),
        (
            "/v1/{resource=**}:getIamPolicy",
            vec![lit("v1"), Segment::Multi],
            vec![var("resource", 1, 2)],
            Some("getIamPolicy"),
        ),
        (
            "/v1/{name=projects/*/locations/*}/operations",
            vec![
                lit("v1"),
                lit("projects"),
                Segment::Single,
                lit("locations"),
                Segment::Single,
                lit("operations"),
            ],
            vec![var("name", 1, 5)],
            None,
        ),
        (
            "/v2/{name=projects/*/devices/*}:watch",
            vec![
                lit("v2"),
                lit("projects"),
                Segment::Single,
                lit("devices"),
                Segment::Single,
            ],
            vec![var("name", 1, 5)],
            Some("watch"),
        ),
        (
            "/v1/*/**",
            vec![lit("v1"), Segment::Single, Segment::Multi],
            vec![],
            None,
        ),
        (
            "/v1/items:search",
            vec![lit("v1"), lit("items")],
            vec![],
            Some("search"),
        ),
        (
            "/v1/{name=shelves/*/books/**}/covers",
            vec![
                lit("v1"),
                lit("shelves"),
                Segment::Single,
                lit("books"),
                Segment::Multi,
                lit("covers"),
            ],
            vec![var("name", 1, 5)],
            None,
        ),
        (
            "/pkg.Service/Method",
            vec![lit("pkg.Service"), lit("Method")],
            vec![],
            None,
        ),
    ];
    for (text, segments, variables, verb) in table {
        let template = Template::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(&template.segments, segments, "{text}");
        assert_eq!(&template.variables, variables, "{text}");
        assert_eq!(template.verb.as_deref(), *verb, "{text}");
        assert_eq!(template.to_string(), *text, "round trip");
    }
}

#[test]
fn rejects_malformed_templates_with_the_offset() {
    let table = [
        ("v1/books", 0, "a template starts with `/`"),
        ("", 0, "a template starts with `/`"),
        ("/", 1, "expected a literal segment"),
        ("/v1/", 4, "expected a literal segment"),
        ("/v1//books", 4, "expected a literal segment"),
        ("/v1/{name", 9, "expected `}` closing the variable"),
        ("/v1/{}", 5, "expected a field name"),
        ("/v1/{1abc}", 5, "expected a field name"),
        ("/v1/{a=b/{c}}", 9, "variables cannot nest"),
        ("/v1/{a.}", 7, "expected a field name"),
        ("/v1/books:", 10, "expected a literal segment"),
        ("/v1/books:a:b", 11, "unexpected character"),
        ("/v1/**/**", 9, "at most one `**` is allowed in a template"),
        ("/v1/{a}/{a}", 11, "a field is bound by two variables"),
        ("/v1/a b", 5, "unexpected character"),
        ("/v1/books?x=1", 9, "unexpected character"),
        ("/v1/***", 6, "unexpected character"),
    ];
    for (text, offset, reason) in table {
        let err = Template::parse(text).expect_err(text);
        assert_eq!((err.offset, err.reason), (offset, reason), "{text}");
        assert!(
            err.to_string().contains(text),
            "the error quotes the template: {err}"
        );
    }
}

#[test]
fn single_segment_variables() {
    let t = Template::parse("/v1/{a}/{b=x}/{c=*}/{d=x/*}/{e=**}").unwrap();
    let single: Vec<bool> = t
        .variables
        .iter()
        .map(|v| v.is_single_segment(&t.segments))
        .collect();
    assert_eq!(single, [true, true, true, false, false]);
}

#[test]
fn shape_ignores_variable_names() {
    let a = Template::parse("/v1/{name=shelves/*}/books").unwrap();
    let b = Template::parse("/v1/shelves/{id}/books").unwrap();
    let c = Template::parse("/v1/shelves/{id}/books:list").unwrap();
    assert_eq!(a.shape(), b.shape());
    assert_ne!(a.shape(), c.shape());
}
