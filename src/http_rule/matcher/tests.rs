use super::*;

fn matcher(routes: &[(&str, &str)]) -> (Matcher, Vec<Template>) {
    let mut m = Matcher::new();
    let mut templates = Vec::new();
    for (i, (method, text)) in routes.iter().enumerate() {
        let template = Template::parse(text).unwrap();
        m.insert(Method::from_bytes(method.as_bytes()).unwrap(), &template, i)
            .unwrap_or_else(|e| panic!("{text} conflicts with route {e}"));
        templates.push(template);
    }
    (m, templates)
}

/// The route a request reaches and its variables, as `name=value`.
fn reach(
    m: &Matcher,
    templates: &[Template],
    method: &str,
    path: &str,
) -> Option<(usize, Vec<String>)> {
    let found = m
        .find(&Method::from_bytes(method.as_bytes()).unwrap(), path)
        .ok()?;
    let vars = templates[found.route]
        .variables
        .iter()
        .map(|v| {
            format!(
                "{}={}",
                v.field_path_string(),
                found.capture(path, v.start, v.end)
            )
        })
        .collect();
    Some((found.route, vars))
}

/// Method, path, and the route reached with its variables (or none).
type Expect<'a> = (&'a str, &'a str, Option<(usize, &'a [&'a str])>);

#[test]
fn matches_and_captures() {
    let routes = [
        ("GET", "/v1/messages/{message_id}"),                   // 0
        ("GET", "/v1/{name=shelves/*/books/*}"),                // 1
        ("POST", "/v1/{name=shelves/*/books/*}:archive"),       // 2
        ("GET", "/v1/{resource=**}:getIamPolicy"),              // 3
        ("GET", "/v1/users/{user_id}/messages/{message_id}"),   // 4
        ("GET", "/v1/files/{path=**}"),                         // 5
        ("GET", "/v1/{name=shelves/*}/books/{book=**}/covers"), // 6
        ("GET", "/v1/items:search"),                            // 7
    ];
    let (m, t) = matcher(&routes);
    let table: &[Expect<'_>] = &[
        ("GET", "/v1/messages/123", Some((0, &["message_id=123"]))),
        (
            "GET",
            "/v1/shelves/s1/books/b1",
            Some((1, &["name=shelves/s1/books/b1"])),
        ),
        (
            "POST",
            "/v1/shelves/s1/books/b1:archive",
            Some((2, &["name=shelves/s1/books/b1"])),
        ),
        (
            "GET",
            "/v1/projects/p/topics/t:getIamPolicy",
            Some((3, &["resource=projects/p/topics/t"])),
        ),
        ("GET", "/v1/a:b:getIamPolicy", Some((3, &["resource=a:b"]))),
        (
            "GET",
            "/v1/users/me/messages/m1",
            Some((4, &["user_id=me", "message_id=m1"])),
        ),
        ("GET", "/v1/files/a/b/c.txt", Some((5, &["path=a/b/c.txt"]))),
        ("GET", "/v1/files", Some((5, &["path="]))),
        (
            "GET",
            "/v1/shelves/s1/books/x/y/covers",
            Some((6, &["name=shelves/s1", "book=x/y"])),
        ),
        ("GET", "/v1/items:search", Some((7, &[]))),
        // An encoded slash never splits a segment.
        (
            "GET",
            "/v1/messages/a%2Fb",
            Some((0, &["message_id=a%2Fb"])),
        ),
        // An encoded colon never starts a verb.
        ("POST", "/v1/shelves/s1/books/b1%3Aarchive", None),
        (
            "GET",
            "/v1/shelves/s1/books/b1%3Aarchive",
            Some((1, &["name=shelves/s1/books/b1%3Aarchive"])),
        ),
        // An unknown verb stays part of the last segment.
        (
            "GET",
            "/v1/shelves/s1/books/b1:unknown",
            Some((1, &["name=shelves/s1/books/b1:unknown"])),
        ),
        // A trailing slash is a different path.
        ("GET", "/v1/messages/123/", None),
        ("GET", "/v1/messages/", None),
        // Empty segments match nothing.
        ("GET", "/v1//messages/1", None),
        ("GET", "/v1/shelves//books/b1", None),
        ("GET", "/v1/files/a//b", None),
        ("GET", "/", None),
        ("GET", "", None),
        ("GET", "/v2/messages/1", None),
        ("GET", "/v1/messages", None),
    ];
    for (method, path, expected) in table {
        let got = reach(&m, &t, method, path);
        let expected =
            expected.map(|(r, vars)| (r, vars.iter().map(ToString::to_string).collect::<Vec<_>>()));
        assert_eq!(got, expected, "{method} {path}");
    }
}

#[test]
fn literals_beat_variables_and_single_beats_double_star() {
    let routes = [
        ("GET", "/v1/{a=**}"),        // 0
        ("GET", "/v1/{a}/books"),     // 1
        ("GET", "/v1/shelves/books"), // 2
        ("GET", "/v1/{a}/{b}"),       // 3
        ("GET", "/v1/shelves/{b}"),   // 4
    ];
    let (m, t) = matcher(&routes);
    assert_eq!(reach(&m, &t, "GET", "/v1/shelves/books").unwrap().0, 2);
    assert_eq!(reach(&m, &t, "GET", "/v1/x/books").unwrap().0, 1);
    assert_eq!(reach(&m, &t, "GET", "/v1/shelves/novels").unwrap().0, 4);
    assert_eq!(reach(&m, &t, "GET", "/v1/x/y").unwrap().0, 3);
    assert_eq!(reach(&m, &t, "GET", "/v1/x/y/z").unwrap().0, 0);
    assert_eq!(reach(&m, &t, "GET", "/v1/x").unwrap().0, 0);
}

#[test]
fn backtracks_when_the_literal_branch_fails() {
    let (m, t) = matcher(&[("GET", "/v1/special/x"), ("GET", "/v1/{id}/y")]);
    assert_eq!(
        reach(&m, &t, "GET", "/v1/special/y"),
        Some((1, vec!["id=special".to_owned()]))
    );
}

#[test]
fn method_specific_precedence() {
    // GET binds the literal path, POST only the variable one: a POST to the
    // literal path still reaches the POST route.
    let (m, t) = matcher(&[("GET", "/v1/books/special"), ("POST", "/v1/books/{id}")]);
    assert_eq!(
        reach(&m, &t, "POST", "/v1/books/special"),
        Some((1, vec!["id=special".to_owned()]))
    );
}

#[test]
fn wrong_method_lists_the_allowed_ones() {
    let (m, _) = matcher(&[
        ("GET", "/v1/notes/{id}"),
        ("DELETE", "/v1/notes/{id}"),
        ("PATCH", "/v1/notes/{note.id}"),
        ("POST", "/v1/notes"),
    ]);
    match m.find(&Method::PUT, "/v1/notes/n1") {
        Err(Miss::MethodNotAllowed(allow)) => {
            assert_eq!(allow, [Method::GET, Method::DELETE, Method::PATCH])
        }
        other => panic!("expected 405, got {other:?}"),
    }
    assert!(matches!(
        m.find(&Method::PUT, "/v1/other"),
        Err(Miss::NotFound)
    ));
}

#[test]
fn custom_methods_and_verbs_side_by_side() {
    let (m, t) = matcher(&[
        ("GET", "/v2/{name=projects/*/devices/*}"),
        ("GET", "/v2/{device=projects/*/devices/*}:watch"),
        ("HEAD", "/v2/{name=projects/*/devices/*}"),
    ]);
    assert_eq!(
        reach(&m, &t, "GET", "/v2/projects/p1/devices/d1:watch")
            .unwrap()
            .0,
        1
    );
    assert_eq!(
        reach(&m, &t, "GET", "/v2/projects/p1/devices/d1")
            .unwrap()
            .0,
        0
    );
    assert_eq!(
        reach(&m, &t, "HEAD", "/v2/projects/p1/devices/d1")
            .unwrap()
            .0,
        2
    );
}

#[test]
fn same_shape_same_method_conflicts() {
    let mut m = Matcher::new();
    let a = Template::parse("/v1/{name=shelves/*}").unwrap();
    let b = Template::parse("/v1/shelves/{id}").unwrap();
    let c = Template::parse("/v1/shelves/{id}:get").unwrap();
    assert_eq!(m.insert(Method::GET, &a, 0), Ok(()));
    assert_eq!(m.insert(Method::GET, &b, 1), Err(0));
    assert_eq!(m.insert(Method::POST, &b, 2), Ok(()));
    assert_eq!(m.insert(Method::GET, &c, 3), Ok(()));
}

#[test]
fn non_ascii_literals_match_their_escaped_form() {
    let (m, t) = matcher(&[("GET", "/v1/café")]);
    assert_eq!(reach(&m, &t, "GET", "/v1/caf%C3%A9").unwrap().0, 0);
    // curl escapes in lower case; raw UTF-8 is the same text again.
    assert_eq!(reach(&m, &t, "GET", "/v1/caf%c3%a9").unwrap().0, 0);
    assert_eq!(reach(&m, &t, "GET", "/v1/café").unwrap().0, 0);
    assert_eq!(reach(&m, &t, "GET", "/v1/cafe"), None);
}

#[test]
fn non_ascii_verbs_match_however_escaped() {
    let (m, t) = matcher(&[("POST", "/v1/{s=items/*}:café")]);
    for path in [
        "/v1/items/a:café",
        "/v1/items/a:caf%C3%A9",
        "/v1/items/a:caf%c3%a9",
    ] {
        assert_eq!(reach(&m, &t, "POST", path).map(|r| r.0), Some(0), "{path}");
    }
}

#[test]
fn escapes_in_literals_match_the_normalised_path() {
    let (m, t) = matcher(&[("GET", "/v1/pct/%7E/{s}"), ("GET", "/v1/rate/100%/{s}")]);
    // `%7E` and `~` both normalise to `~`.
    assert_eq!(reach(&m, &t, "GET", "/v1/pct/~/x").unwrap().0, 0);
    assert_eq!(reach(&m, &t, "GET", "/v1/rate/100%25/x").unwrap().0, 1);
}

#[test]
fn thousands_of_routes() {
    let mut m = Matcher::new();
    let mut templates = Vec::new();
    for i in 0..5000 {
        let template =
            Template::parse(&format!("/v1/service{i}/{{name=items/*}}:do{}", i % 7)).unwrap();
        m.insert(Method::POST, &template, i).unwrap();
        templates.push(template);
    }
    let found = m
        .find(&Method::POST, "/v1/service4321/items/x:do2")
        .unwrap();
    assert_eq!(found.route, 4321);
    assert!(
        m.find(&Method::POST, "/v1/service4321/items/x:do3")
            .is_err()
    );
}
