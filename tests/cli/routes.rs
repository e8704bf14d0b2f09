//! `protogate routes`: the table, fallback routes, conflicts and where the
//! sources come from (flags, a config file, paths relative to it).

use crate::process::{Run, protogate, protogate_in};
use crate::support;
use crate::{arg, fixture, fixtures, write_config};

/// The table's rows as columns, after checking the header.
fn rows(run: &Run) -> Vec<Vec<String>> {
    let mut lines = run.stdout.lines();
    let header: Vec<&str> = lines.next().expect("a header").split_whitespace().collect();
    assert_eq!(
        header,
        [
            "METHOD",
            "TEMPLATE",
            "RPC",
            "BODY",
            "RESPONSE_BODY",
            "STREAMS",
            "UPSTREAM",
            "GROUP"
        ]
    );
    lines
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

/// A unary method's row, without upstream or group.
fn row(cells: [&str; 5]) -> Vec<String> {
    let mut row = cells.map(str::to_owned).to_vec();
    row.extend(["-", "-", "-"].map(str::to_owned));
    row
}

/// `row` with its UPSTREAM and GROUP cells set.
fn going_to(mut row: Vec<String>, upstream: &str, group: &str) -> Vec<String> {
    row[6] = upstream.to_owned();
    row[7] = group.to_owned();
    row
}

fn say_hello() -> Vec<String> {
    row([
        "GET",
        "/v1/greetings/{name}",
        "cli.greet.v1.Greeter/SayHello",
        "-",
        "-",
    ])
}

fn send_note() -> Vec<String> {
    row([
        "POST",
        "/v1/notes",
        "cli.greet.v1.Greeter/SendNote",
        "*",
        "text",
    ])
}

fn read_count() -> Vec<String> {
    row([
        "GET",
        "/v1/counts/{key}",
        "cli.plain.v1.Counter/ReadCount",
        "-",
        "-",
    ])
}

fn bump() -> Vec<String> {
    row([
        "POST",
        "/cli.plain.v1.Counter/Bump",
        "cli.plain.v1.Counter/Bump",
        "*",
        "-",
    ])
}

fn assert_ok(run: &Run) {
    assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
    run.assert_no_panic();
}

#[test]
fn table_lists_method_template_rpc_body_and_response_body() {
    let run = protogate(&["routes", "--proto", &fixture("greeter.proto")]);
    assert_ok(&run);
    assert_eq!(rows(&run), [say_hello(), send_note()]);
}

/// `serve` refuses a config without upstreams; `routes` prints what its
/// descriptors make all the same (what `routes --proto` is for), and
/// says in `serve`'s own words that `serve` would refuse it.
#[test]
fn without_upstreams_the_table_comes_with_serves_refusal_as_a_warning() {
    let greeter = fixture("greeter.proto");
    let run = protogate(&["routes", "--proto", &greeter]);
    assert_ok(&run);
    assert_eq!(rows(&run), [say_hello(), send_note()]);
    let warnings: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(warnings.len(), 1, "stderr:\n{}", run.stderr);
    let refused = protogate(&["serve", "--proto", &greeter, "--listen", "127.0.0.1:0"]);
    let error = refused.assert_bad_input(&["no upstream"]);
    // A file that cannot be read comes first, for both.
    for command in ["serve", "routes"] {
        protogate(&[
            command,
            "--proto",
            "missing.proto",
            "--listen",
            "127.0.0.1:0",
        ])
        .assert_bad_input(&["missing.proto: file not found"]);
    }
    let reason = error.strip_prefix("error: ").unwrap_or(&error);
    assert!(
        warnings[0].contains(reason) && warnings[0].contains("`serve` refuses"),
        "{}",
        warnings[0]
    );
    let run = protogate(&[
        "routes",
        "--proto",
        &greeter,
        "--upstream",
        "http://127.0.0.1:9",
    ]);
    assert_ok(&run);
    assert!(!run.stderr.contains("warning:"), "{}", run.stderr);
}

#[test]
fn unannotated_method_is_served_at_its_grpc_path() {
    let run = protogate(&["routes", "--proto", &fixture("plain.proto")]);
    assert_ok(&run);
    assert_eq!(rows(&run), [read_count(), bump()]);
}

#[test]
fn fallback_routes_false_drops_the_grpc_path_route() {
    let config = write_config("fallback_routes: false\n");
    let run = protogate(&[
        "routes",
        "--config",
        &arg(&config),
        "--proto",
        &fixture("plain.proto"),
    ]);
    assert_ok(&run);
    assert_eq!(rows(&run), [read_count()]);
}

#[test]
fn conflict_exits_non_zero_naming_both_methods() {
    let run = protogate(&["routes", "--proto", &fixture("clash.proto")]);
    assert_eq!(run.code, Some(1), "stderr:\n{}", run.stderr);
    run.assert_no_panic();
    let conflict = run
        .stderr
        .lines()
        .find(|l| l.starts_with("conflict:"))
        .unwrap_or_else(|| panic!("a conflict line; stderr:\n{}", run.stderr));
    assert!(
        conflict.contains("cli.clash.v1.Lockers/OpenLocker"),
        "{conflict}"
    );
    assert!(
        conflict.contains("cli.clash.v1.Lockers/InspectLocker"),
        "{conflict}"
    );
    assert!(conflict.contains("GET /v1/lockers/{id}"), "{conflict}");
}

/// A binding written for a path wins it over the fallback route of an
/// unannotated method, though the dependency that method is in comes
/// first; the conflict is still reported.
#[test]
fn a_written_binding_wins_over_a_fallback_route_declared_before_it() {
    let dir = support::tempdir();
    std::fs::write(
        dir.join("base.proto"),
        "syntax = \"proto3\";\npackage base.v1;\nmessage M { string s = 1; }\n\
         service Echo { rpc Plain(M) returns (M); }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("top.proto"),
        "syntax = \"proto3\";\npackage top.v1;\nimport \"base.proto\";\n\
         import \"google/api/annotations.proto\";\n\
         service Top {\n  rpc Take(base.v1.M) returns (base.v1.M) {\n    \
         option (google.api.http) = { post: \"/base.v1.Echo/Plain\" body: \"*\" };\n  }\n}\n",
    )
    .unwrap();
    let run = protogate_in(&dir, &["routes", "--proto", "top.proto"]);
    assert_eq!(run.code, Some(1), "a conflict; stderr:\n{}", run.stderr);
    let conflict = run
        .stderr
        .lines()
        .find(|l| l.starts_with("conflict:"))
        .unwrap_or_else(|| panic!("a conflict line; stderr:\n{}", run.stderr));
    assert!(conflict.contains("base.v1.Echo/Plain"), "{conflict}");
    assert!(conflict.contains("top.v1.Top/Take"), "{conflict}");
    assert!(
        conflict.ends_with("wins over a fallback route"),
        "{conflict}"
    );
    let kept = row(["POST", "/base.v1.Echo/Plain", "top.v1.Top/Take", "*", "-"]);
    assert_eq!(rows(&run), [kept]);
}

#[test]
fn conflict_keeps_the_first_declared_method_in_the_table() {
    let run = protogate(&["routes", "--proto", &fixture("clash.proto")]);
    let kept = row([
        "GET",
        "/v1/lockers/{id}",
        "cli.clash.v1.Lockers/OpenLocker",
        "-",
        "-",
    ]);
    assert_eq!(rows(&run), [kept]);
}

#[test]
fn descriptor_set_gives_the_same_table_as_its_proto() {
    let set = support::compile(&fixtures(), &["greeter.proto"]);
    let path = support::TempFile::new("greeter.pb", &set);
    let run = protogate(&["routes", "--descriptor-set", &arg(&path)]);
    assert_ok(&run);
    assert_eq!(rows(&run), [say_hello(), send_note()]);
}

#[test]
fn routes_follow_the_order_of_the_proto_flags() {
    let (greeter, plain) = (fixture("greeter.proto"), fixture("plain.proto"));
    let run = protogate(&["routes", "--proto", &plain, "--proto", &greeter]);
    assert_ok(&run);
    assert_eq!(rows(&run), [read_count(), bump(), say_hello(), send_note()]);
}

#[test]
fn proto_names_resolve_against_include_paths() {
    let dir = arg(&fixtures());
    let args = [
        "routes",
        "-I",
        &dir,
        "--proto",
        "greeter.proto",
        "--proto",
        "plain.proto",
    ];
    let run = protogate_in(&support::tempdir(), &args);
    assert_ok(&run);
    assert_eq!(rows(&run), [say_hello(), send_note(), read_count(), bump()]);
}

#[test]
fn absolute_proto_path_outside_the_working_folder_compiles() {
    let run = protogate_in(
        &support::tempdir(),
        &["routes", "--proto", &fixture("greeter.proto")],
    );
    assert_ok(&run);
    assert_eq!(rows(&run), [say_hello(), send_note()]);
}

/// A folder with `conf/gateway.yaml` holding `yaml` and copies of the
/// fixtures under `conf/protos/`; returns the folder (removed when
/// dropped) and the config's path.
fn config_folder(yaml: &str) -> (support::TempDir, std::path::PathBuf) {
    let root = support::tempdir();
    let conf = root.join("conf");
    std::fs::create_dir_all(conf.join("protos")).unwrap();
    for name in ["greeter.proto", "plain.proto"] {
        std::fs::copy(fixtures().join(name), conf.join("protos").join(name)).unwrap();
    }
    let set = support::compile(&fixtures(), &["plain.proto"]);
    std::fs::write(conf.join("plain.pb"), &set).unwrap();
    std::fs::write(conf.join("gateway.yaml"), yaml).unwrap();
    (root, conf.join("gateway.yaml"))
}

#[test]
fn config_protos_are_relative_to_the_config_folder() {
    let (_root, config) = config_folder("protos: [protos/greeter.proto]\n");
    let run = protogate_in(&support::tempdir(), &["routes", "--config", &arg(&config)]);
    assert_ok(&run);
    assert_eq!(rows(&run), [say_hello(), send_note()]);
}

#[test]
fn config_descriptor_sets_are_relative_to_the_config_folder() {
    let (_root, config) = config_folder("descriptor_sets: [plain.pb]\n");
    let run = protogate_in(&support::tempdir(), &["routes", "--config", &arg(&config)]);
    assert_ok(&run);
    assert_eq!(rows(&run), [read_count(), bump()]);
}

#[test]
fn config_include_paths_are_relative_to_the_config_folder() {
    let (_root, config) = config_folder("include_paths: [protos]\nprotos: [plain.proto]\n");
    let run = protogate_in(&support::tempdir(), &["routes", "--config", &arg(&config)]);
    assert_ok(&run);
    assert_eq!(rows(&run), [read_count(), bump()]);
}

#[test]
fn proto_flag_overrides_config_protos() {
    let (_root, config) = config_folder("protos: [protos/plain.proto]\n");
    let greeter = fixture("greeter.proto");
    let run = protogate(&["routes", "--config", &arg(&config), "--proto", &greeter]);
    assert_ok(&run);
    assert_eq!(rows(&run), [say_hello(), send_note()]);
}

/// Routes that work but will surprise someone are loaded with a warning: a
/// body on GET (clients and proxies drop it) and a lower-case custom
/// method (methods are case-sensitive).
#[test]
fn odd_routes_load_with_warnings() {
    let run = protogate(&["routes", "--proto", &fixture("odd.proto")]);
    assert_ok(&run);
    assert_eq!(
        rows(&run),
        [
            row(["GET", "/v1/find", "cli.odd.v1.Odd/Find", "*", "-"]),
            row(["lock", "/v1/lock", "cli.odd.v1.Odd/Lock", "-", "-"]),
        ]
    );
    let warning = |needle: &str| {
        run.stderr
            .lines()
            .any(|l| l.contains("WARN") && l.contains(needle))
    };
    assert!(
        warning("Route takes a body on GET") && warning("rpc=cli.odd.v1.Odd/Find"),
        "stderr:\n{}",
        run.stderr
    );
    assert!(
        warning("clients usually send upper case") && warning("usual=LOCK"),
        "stderr:\n{}",
        run.stderr
    );
}

/// The STREAMS column says which side streams: `server`, `client`, `both`.
#[test]
fn streaming_methods_are_marked() {
    let proto = support::repo().join("proto");
    let run = protogate(&[
        "routes",
        "--proto",
        "protogate/demo/v1/bookshop.proto",
        "-I",
        &arg(&proto),
    ]);
    assert_ok(&run);
    let streams = |rpc: &str| {
        rows(&run)
            .into_iter()
            .find(|r| r[2] == format!("protogate.demo.v1.Bookshop/{rpc}"))
            .unwrap_or_else(|| panic!("{rpc} in\n{}", run.stdout))[5]
            .clone()
    };
    assert_eq!(streams("GetBook"), "-");
    assert_eq!(streams("WatchShelf"), "server");
    assert_eq!(streams("ImportBooks"), "client");
    assert_eq!(streams("AskLibrarian"), "both");
}

/// UPSTREAM names where each route's calls go: the upstream that claims
/// its service, the default one, or a route group's (a name, or the URL
/// a proxied prefix goes to); GROUP names the group's prefix. A proxied
/// prefix has a row of its own.
#[test]
fn table_names_each_routes_upstream_and_group() {
    let config = write_config(
        "upstreams:\n\
         \x20 greeter: {url: 'http://127.0.0.1:9', services: [cli.greet.v1.Greeter]}\n\
         \x20 rest: {url: 'http://127.0.0.1:9'}\n\
         \x20 notes: {url: 'http://127.0.0.1:9', services: [cli.none.v1.None]}\n\
         routes:\n\
         \x20 - {prefix: /v1/notes, upstream: notes}\n\
         \x20 - {prefix: /v1/counts/, upstream: 'http://127.0.0.1:9'}\n",
    );
    let run = protogate(&[
        "routes",
        "--config",
        &arg(&config),
        "--proto",
        &fixture("greeter.proto"),
        "--proto",
        &fixture("plain.proto"),
    ]);
    assert_ok(&run);
    assert_eq!(
        rows(&run),
        [
            going_to(say_hello(), "greeter", "-"),
            going_to(send_note(), "notes", "/v1/notes"),
            going_to(read_count(), "http://127.0.0.1:9", "/v1/counts/"),
            going_to(bump(), "rest", "-"),
            // The proxied prefix itself: it serves paths no route names.
            [
                "*",
                "/v1/counts/",
                "-",
                "-",
                "-",
                "-",
                "http://127.0.0.1:9",
                "/v1/counts/"
            ]
            .map(str::to_owned)
            .to_vec(),
        ]
    );
}

/// `routes --reflect` with nothing listening: exit 1 and one `error:`
/// line for each upstream that did not answer, naming it.
#[test]
fn unreachable_reflecting_upstreams_are_one_error_line_each() {
    // Ports bound a moment ago and let go: nothing listens on them.
    let dead = || {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let config = write_config(&format!(
        "upstreams:\n\
         \x20 first: {{url: '{}', descriptors: reflection, services: [a.A]}}\n\
         \x20 second: {{url: '{}', descriptors: reflection}}\n",
        dead(),
        dead()
    ));
    let run = protogate(&["routes", "--config", &arg(&config)]);
    assert_eq!(run.code, Some(1), "stderr:\n{}", run.stderr);
    run.assert_no_panic();
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "stderr:\n{}", run.stderr);
    for (line, name) in lines.iter().zip(["`first`", "`second`"]) {
        assert!(line.starts_with("error: "), "{line}");
        assert!(line.contains(name) && line.contains("reflection"), "{line}");
    }
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}
