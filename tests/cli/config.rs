//! Config file errors through the binary: `file:line:col`, the key, exit
//! code 2, one line.

use crate::process::{Run, protogate};
use crate::{arg, fixture, write_config};

/// `routes --config <yaml> --proto greeter.proto`; returns the run and
/// the config's path as printed.
fn routes_with(yaml: &str) -> (Run, String) {
    let path = write_config(yaml);
    let greeter = fixture("greeter.proto");
    let run = protogate(&["routes", "--config", &arg(&path), "--proto", &greeter]);
    (run, arg(&path))
}

/// Asserts the error names the file at `line` and the `key`.
fn assert_config_error(yaml: &str, line: u32, key: &str) -> String {
    let (run, path) = routes_with(yaml);
    run.assert_bad_input(&[
        &format!("invalid config {path}:{line}:"),
        &format!(" {key}: "),
    ])
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let error = assert_config_error(
        "listen: 127.0.0.1:0\nlisten_addr: 127.0.0.1:1\n",
        2,
        "listen_addr",
    );
    assert!(error.contains("unknown field"), "{error}");
}

#[test]
fn unknown_nested_key_names_its_path() {
    assert_config_error("timeouts:\n  connect: 1s\n  unry: 2s\n", 3, "timeouts.unry");
}

#[test]
fn wrong_type_names_file_line_and_key() {
    assert_config_error("strict_routes: \"yes please\"\n", 1, "strict_routes");
}

#[test]
fn bad_duration_names_file_line_and_key() {
    let error = assert_config_error("timeouts:\n  unary: soon\n", 2, "timeouts.unary");
    assert!(error.contains("`soon`"), "{error}");
}

#[test]
fn bad_url_names_file_line_and_key() {
    let yaml = "upstreams:\n  books:\n    url: ftp://127.0.0.1:1\n";
    let error = assert_config_error(yaml, 3, "upstreams.books.url");
    assert!(error.contains("`ftp://127.0.0.1:1`"), "{error}");
}

#[test]
fn two_default_upstreams_name_both_with_lines() {
    let yaml = "upstreams:\n  a:\n    url: http://127.0.0.1:1\n  b:\n    url: http://127.0.0.1:2\n";
    let error = assert_config_error(yaml, 4, "upstreams.b");
    assert!(
        error.contains("`a` (line 2)") && error.contains("`b` (line 4)"),
        "{error}"
    );
}

#[test]
fn yaml_syntax_error_names_file_and_line() {
    let (run, path) = routes_with("listen: 127.0.0.1:0\njson: {use_proto_names: true\n");
    run.assert_bad_input(&[&format!("invalid config {path}:")]);
}

#[test]
fn config_error_fails_serve_too() {
    let path = write_config("timeouts:\n  connect: soon\n");
    let greeter = fixture("greeter.proto");
    let args = [
        "serve",
        "--config",
        &arg(&path),
        "--proto",
        &greeter,
        "--upstream",
        "http://127.0.0.1:9",
        "--listen",
        "127.0.0.1:0",
    ];
    protogate(&args).assert_bad_input(&[&format!("{}:2:", arg(&path)), "timeouts.connect"]);
}

/// Settings that name what the descriptors do not have, or that cannot
/// apply to the method they name, are warned about.
#[test]
fn settings_naming_nothing_are_warned_about() {
    let (run, _) = routes_with(
        "upstreams:\n  default: {url: \"http://127.0.0.1:1\"}\n  other:\n    url: http://127.0.0.1:2\n    services: [nothing.here.*, cli.greet.v1.Greter]\n\
         streams:\n  framing:\n    cli.greet.v1.Greeter/Nope: json_array\n    cli.greet.v1.Greeter/SayHello: json_array\n\
         timeouts:\n  methods:\n    cli.greet.v1.Greeter/SayHelo: 1s\n",
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    for warning in [
        "streams.framing names a method the descriptors do not have",
        "streams.framing applies to server-streaming methods",
        "Upstream lists a service the descriptors do not have",
    ] {
        assert!(run.stderr.contains(warning), "{warning}:\n{}", run.stderr);
    }
    assert!(run.stderr.contains("nothing.here.*"), "{}", run.stderr);
    // A close name is offered; a name like none is not.
    for meant in [
        "did_you_mean=\"cli.greet.v1.Greeter\"",
        "did_you_mean=\"cli.greet.v1.Greeter/SayHello\"",
    ] {
        assert!(run.stderr.contains(meant), "{meant}:\n{}", run.stderr);
    }
    let nope = run
        .stderr
        .lines()
        .find(|line| line.contains("Greeter/Nope"))
        .unwrap();
    assert!(!nope.contains("did_you_mean"), "{nope}");
}
