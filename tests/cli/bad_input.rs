//! Bad input: one clear `error:` line naming the culprit, exit code 2,
//! never a panic.

use crate::process::{Run, protogate, protogate_in};
use crate::support;
use crate::{arg, fixture, fixtures, write_config};

/// An upstream that is never called: every run here fails before serving
/// (were one to start, its bounded wait would fail the test).
const UNUSED_UPSTREAM: &str = "http://127.0.0.1:9";

/// `serve <sources> --upstream … --listen 127.0.0.1:0`.
fn serve(sources: &[&str]) -> Run {
    let mut args = vec!["serve"];
    args.extend_from_slice(sources);
    args.extend_from_slice(&["--upstream", UNUSED_UPSTREAM, "--listen", "127.0.0.1:0"]);
    protogate(&args)
}

#[test]
fn missing_proto_file_is_named() {
    let run = serve(&["--proto", "tests/protos/cli/absent.proto"]);
    run.assert_bad_input(&["tests/protos/cli/absent.proto", "not found"]);
}

#[test]
fn missing_descriptor_set_is_named() {
    let run = serve(&["--descriptor-set", "tests/protos/cli/absent.pb"]);
    run.assert_bad_input(&["tests/protos/cli/absent.pb", "cannot read"]);
}

#[test]
fn syntax_error_names_file_line_and_column() {
    let run = serve(&["--proto", "tests/protos/cli/broken.proto"]);
    run.assert_bad_input(&["tests/protos/cli/broken.proto:8:15:"]);
}

#[test]
fn syntax_error_names_the_file_under_its_include_path() {
    let dir = arg(&fixtures());
    let run = serve(&["-I", &dir, "--proto", "broken.proto"]);
    run.assert_bad_input(&[&format!("{dir}/broken.proto:8:15:")]);
}

#[test]
fn syntax_error_in_a_file_outside_the_working_folder_names_it() {
    let broken = fixture("broken.proto");
    let args = ["routes", "--proto", &broken];
    let run = protogate_in(&support::tempdir(), &args);
    run.assert_bad_input(&[&format!("{broken}:8:15:")]);
}

#[test]
fn syntax_error_in_a_file_above_the_working_folder_names_it() {
    let args = ["routes", "--proto", "../tests/protos/cli/broken.proto"];
    let run = protogate_in(&support::repo().join("src"), &args);
    run.assert_bad_input(&["../tests/protos/cli/broken.proto:8:15:"]);
}

#[test]
fn unknown_import_names_importer_line_and_import() {
    let run = serve(&["--proto", "tests/protos/cli/orphan.proto"]);
    run.assert_bad_input(&[
        "tests/protos/cli/orphan.proto:6:1:",
        "cli/nowhere/absent.proto",
    ]);
}

#[test]
fn corrupt_descriptor_set_is_named() {
    let path = support::TempFile::new("corrupt.pb", [0xff, 0xff, 0xff, 0xff]);
    let run = serve(&["--descriptor-set", &arg(&path)]);
    run.assert_bad_input(&[&arg(&path), "not a valid FileDescriptorSet"]);
}

#[test]
fn truncated_descriptor_set_is_named() {
    let set = support::compile(&fixtures(), &["greeter.proto"]);
    let path = support::TempFile::new("truncated.pb", &set[..set.len() / 2]);
    let run = serve(&["--descriptor-set", &arg(&path)]);
    run.assert_bad_input(&[&arg(&path), "not a valid FileDescriptorSet"]);
}

#[test]
fn empty_descriptor_set_is_refused() {
    let path = support::TempFile::new("empty.pb", b"");
    let run = serve(&["--descriptor-set", &arg(&path)]);
    run.assert_bad_input(&[&arg(&path), "no files"]);
}

#[test]
fn proto_source_given_as_descriptor_set_suggests_proto_flag() {
    let run = serve(&["--descriptor-set", "tests/protos/cli/greeter.proto"]);
    run.assert_bad_input(&["tests/protos/cli/greeter.proto", "--proto"]);
}

#[test]
fn descriptor_set_without_its_imports_names_the_missing_file() {
    let dir = support::tempdir();
    std::fs::write(
        dir.join("shared.proto"),
        "syntax = \"proto3\";\npackage s;\nmessage M {}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("user.proto"),
        "syntax = \"proto3\";\npackage u;\nimport \"shared.proto\";\nmessage N { s.M m = 1; }\n",
    )
    .unwrap();
    let mut compiler = protox::Compiler::new([&dir]).unwrap();
    compiler
        .include_imports(false)
        .open_file("user.proto")
        .unwrap();
    let path = dir.join("user.pb");
    std::fs::write(&path, compiler.encode_file_descriptor_set()).unwrap();
    let run = serve(&["--descriptor-set", &arg(&path)]);
    run.assert_bad_input(&["user.proto imports shared.proto"]);
}

#[test]
fn folder_given_as_proto_is_named() {
    let run = serve(&["--proto", "tests/protos/cli"]);
    run.assert_bad_input(&["tests/protos/cli", "folder"]);
}

#[test]
fn proto_outside_the_include_paths_is_named() {
    let run = serve(&["-I", "src", "--proto", "tests/protos/cli/greeter.proto"]);
    run.assert_bad_input(&["tests/protos/cli/greeter.proto", "-I src"]);
}

#[test]
fn no_descriptor_source_says_which_flags_give_one() {
    let run = serve(&[]);
    run.assert_bad_input(&["--descriptor-set", "--proto"]);
}

/// Reflection is a source too: the message names it, and the config keys.
#[test]
fn no_descriptor_source_names_reflection_and_the_config_keys() {
    let run = serve(&[]);
    run.assert_bad_input(&[
        "--reflect",
        "descriptor_sets",
        "protos",
        "descriptors: reflection",
    ]);
}

#[test]
fn reflect_without_an_upstream_says_one_is_needed() {
    let run = protogate(&["routes", "--reflect"]);
    run.assert_bad_input(&["--reflect", "--upstream URL"]);
}

/// An editions file is one error line that says so, from `.proto` as
/// from a descriptor set (where the descriptor library used to panic).
#[test]
fn editions_files_are_refused_saying_so() {
    let dir = support::tempdir();
    std::fs::write(
        dir.join("e.proto"),
        "edition = \"2023\";\npackage e;\nmessage M { int32 a = 1; }\n",
    )
    .unwrap();
    let run = protogate_in(&dir, &["routes", "--proto", "e.proto"]);
    run.assert_bad_input(&["e.proto:1:1", "Protobuf editions file"]);
}

/// Rules that could never be served are refused at load, naming the
/// method: nested additional_bindings (http.proto allows one level) and
/// a custom CONNECT (its requests name a host, not a path).
#[test]
fn rules_that_cannot_be_served_are_refused_naming_the_method() {
    let dir = support::tempdir();
    for (rule, says) in [
        (
            r#"get: "/a/{name}" additional_bindings { get: "/b/{name}" additional_bindings { get: "/c/{name}" } }"#,
            "additional_bindings nest",
        ),
        (
            r#"custom { kind: "CONNECT" path: "/c/{name}" }"#,
            "CONNECT cannot be routed",
        ),
    ] {
        let source = format!(
            "syntax = \"proto3\";\npackage odd.v1;\nimport \"google/api/annotations.proto\";\n\
             message M {{ string name = 1; }}\n\
             service S {{ rpc Get(M) returns (M) {{ option (google.api.http) = {{ {rule} }}; }} }}\n"
        );
        std::fs::write(dir.join("odd.proto"), source).unwrap();
        let run = protogate_in(&dir, &["routes", "--proto", "odd.proto"]);
        run.assert_bad_input(&["odd.v1.S/Get", says]);
    }
}

/// A file that ends inside a message: the error points at its last
/// character, as `file:line:col:`, under the import path as given.
#[test]
fn syntax_error_at_end_of_file_names_its_last_line_and_column() {
    let dir = support::tempdir();
    std::fs::create_dir_all(dir.join("p2/x")).unwrap();
    let source = "syntax = \"proto3\";\npackage x;\nmessage A {\n  string a = 1;\n\n";
    std::fs::write(dir.join("p2/x/types.proto"), source).unwrap();
    let args = ["routes", "-I", "p2", "--proto", "x/types.proto"];
    let run = protogate_in(&dir, &args);
    run.assert_bad_input(&["error: p2/x/types.proto:4:16: ", "end of file"]);
}

#[test]
fn missing_proto_lists_the_paths_looked_at() {
    let dir = support::tempdir();
    std::fs::create_dir(dir.join("protos")).unwrap();
    let args = [
        "routes",
        "-I",
        "protos",
        "-I",
        "gone",
        "--proto",
        "shop.proto",
    ];
    let run = protogate_in(&dir, &args);
    run.assert_bad_input(&[
        "shop.proto: file not found",
        "looked for shop.proto, protos/shop.proto, gone/shop.proto",
        "-I gone does not exist",
    ]);
}

/// An import folder that does not exist is worth a warning even when
/// every file is found elsewhere.
#[test]
fn missing_include_folder_is_warned_about() {
    let dir = arg(&fixtures());
    let args = [
        "routes",
        "-I",
        "no-such-folder",
        "-I",
        &dir,
        "--proto",
        "greeter.proto",
    ];
    let run = protogate_in(&support::tempdir(), &args);
    assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
    assert!(
        run.stderr
            .lines()
            .any(|l| l.contains("WARN") && l.contains("no-such-folder")),
        "stderr:\n{}",
        run.stderr
    );
}

#[test]
fn serve_without_upstream_says_how_to_give_one() {
    let greeter = fixture("greeter.proto");
    let run = protogate(&["serve", "--proto", &greeter, "--listen", "127.0.0.1:0"]);
    run.assert_bad_input(&["--upstream"]);
}

/// With neither descriptors nor an upstream, the descriptors are named
/// first: they say what there is to serve.
#[test]
fn serve_with_nothing_asks_for_descriptors_first() {
    let run = protogate(&["serve", "--listen", "127.0.0.1:0"]);
    run.assert_bad_input(&["no descriptors given", "--proto FILE"]);
}

#[test]
fn bad_upstream_flag_is_named() {
    let greeter = fixture("greeter.proto");
    let args = [
        "serve",
        "--proto",
        &greeter,
        "--upstream",
        "ftp://x",
        "--listen",
        "127.0.0.1:0",
    ];
    protogate(&args).assert_bad_input(&["--upstream", "`ftp://x`"]);
}

#[test]
fn upstream_without_scheme_is_refused() {
    let greeter = fixture("greeter.proto");
    let args = [
        "serve",
        "--proto",
        &greeter,
        "--upstream",
        "127.0.0.1:50051",
    ];
    protogate(&args).assert_bad_input(&["--upstream", "`127.0.0.1:50051`"]);
}

#[test]
fn bad_listen_flag_is_named() {
    let greeter = fixture("greeter.proto");
    let args = [
        "serve",
        "--proto",
        &greeter,
        "--upstream",
        UNUSED_UPSTREAM,
        "--listen",
        "nowhere",
    ];
    protogate(&args).assert_bad_input(&["--listen", "nowhere"]);
}

#[test]
fn unknown_flag_is_named() {
    protogate(&["serve", "--no-such-flag"]).assert_bad_input(&["--no-such-flag"]);
}

#[test]
fn missing_config_file_is_named() {
    let dir = support::tempdir();
    let path = dir.join("absent.yaml");
    let run = serve(&[
        "--config",
        &arg(&path),
        "--proto",
        &fixture("greeter.proto"),
    ]);
    run.assert_bad_input(&[&arg(&path), "cannot read config"]);
}

#[test]
fn strict_routes_refuses_conflicts_naming_both() {
    let config = write_config("strict_routes: true\n");
    let run = serve(&[
        "--config",
        &arg(&config),
        "--proto",
        &fixture("clash.proto"),
    ]);
    assert_eq!(run.code, Some(2), "stderr:\n{}", run.stderr);
    run.assert_no_panic();
    let error = &run.stderr[run.stderr.find("error:").expect("an error")..];
    assert!(error.contains("strict_routes"), "{error}");
    assert!(error.contains("cli.clash.v1.Lockers/OpenLocker"), "{error}");
    assert!(
        error.contains("cli.clash.v1.Lockers/InspectLocker"),
        "{error}"
    );
    assert!(error.contains("GET /v1/lockers/{id}"), "{error}");
    // Not also the warning that says the first route wins: nothing is
    // served.
    assert!(
        !run.stderr.contains("first declared route wins"),
        "{}",
        run.stderr
    );
}

#[test]
fn busy_listen_address_is_named_without_a_panic() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let greeter = fixture("greeter.proto");
    let args = [
        "serve",
        "--proto",
        &greeter,
        "--upstream",
        UNUSED_UPSTREAM,
        "--listen",
        &addr,
    ];
    let run = protogate(&args);
    assert_eq!(run.code, Some(1), "stderr:\n{}", run.stderr);
    run.assert_no_panic();
    assert!(
        run.stderr
            .contains(&format!("error: cannot listen on {addr}")),
        "{}",
        run.stderr
    );
}

/// The flag to change a busy address is named, with an example value.
#[test]
fn busy_listen_address_hints_the_flag() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let greeter = fixture("greeter.proto");
    let run = protogate(&[
        "serve",
        "--proto",
        &greeter,
        "--upstream",
        UNUSED_UPSTREAM,
        "--listen",
        &addr,
    ]);
    assert_eq!(run.code, Some(1), "stderr:\n{}", run.stderr);
    let error = run.stderr.lines().find(|l| l.starts_with("error:"));
    assert!(
        error.is_some_and(|l| l.contains(&addr) && l.contains("--listen 127.0.0.1:PORT")),
        "{}",
        run.stderr
    );
}

#[test]
fn busy_admin_address_hints_its_flag() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let greeter = fixture("greeter.proto");
    let run = protogate(&[
        "serve",
        "--proto",
        &greeter,
        "--upstream",
        UNUSED_UPSTREAM,
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        &addr,
    ]);
    assert_eq!(run.code, Some(1), "stderr:\n{}", run.stderr);
    let error = run.stderr.lines().find(|l| l.starts_with("error:"));
    assert!(
        error.is_some_and(|l| l.contains(&addr) && l.contains("--admin-listen 127.0.0.1:PORT")),
        "{}",
        run.stderr
    );
}

#[cfg(target_os = "linux")]
#[test]
fn full_stdout_is_an_error_not_a_panic() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let greeter = fixture("greeter.proto");
    let mut command = crate::process::command(&support::repo(), &["routes", "--proto", &greeter]);
    command.stdout(full);
    let run = crate::process::run(command);
    assert_eq!(run.code, Some(1), "stderr:\n{}", run.stderr);
    run.assert_no_panic();
    assert!(
        run.stderr.contains("error: cannot write the route table"),
        "{}",
        run.stderr
    );
}

#[test]
fn bench_refuses_a_run_that_would_measure_nothing() {
    protogate(&["bench", "--duration", "0s", "--scenario", "get"])
        .assert_bad_input(&["--duration", "above zero"]);
    protogate(&["bench", "--requests", "0", "--scenario", "get"])
        .assert_bad_input(&["--requests", "at least 1"]);
    protogate(&["bench", "--duration", "-1s", "--scenario", "get"])
        .assert_bad_input(&["--duration", "-1s"]);
}

/// A `--proto` file not found names the folder of the working directory
/// that holds it, as `-I` takes it, and the name then works as given, also
/// written `./shop/s.proto` or through `..` that stays inside.
#[test]
fn a_proto_under_a_folder_not_imported_says_which_folder() {
    let dir = crate::support::tempdir();
    std::fs::create_dir_all(dir.join("proto/shop")).unwrap();
    std::fs::copy(fixture("greeter.proto"), dir.join("proto/shop/s.proto")).unwrap();
    let run = crate::process::protogate_in(&dir, &["routes", "--proto", "./shop/s.proto"]);
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.contains("it is under proto: pass -I proto"),
        "{}",
        run.stderr
    );
    for name in ["./shop/s.proto", "shop/../shop/s.proto", "shop/s.proto"] {
        let run = crate::process::protogate_in(&dir, &["routes", "--proto", name, "-I", "proto"]);
        assert_eq!(run.code, Some(0), "{name}: {}", run.stderr);
    }
}

/// A listener certificate that is out of date loads (the clock may be
/// wrong, the files about to be replaced), with a warning saying so: every
/// client would refuse it. A current one gets no such warning.
#[test]
fn an_out_of_date_listener_certificate_is_warned_about() {
    let ca = support::tls::TestCa::new("listener CA");
    let routes_with = |(cert, key): (String, String)| {
        let dir = support::tempdir();
        std::fs::write(dir.join("server.pem"), cert).unwrap();
        std::fs::write(dir.join("server.key"), key).unwrap();
        std::fs::write(
            dir.join("gateway.yaml"),
            "tls: {cert_file: server.pem, key_file: server.key}\n",
        )
        .unwrap();
        let run = protogate_in(
            &dir,
            &[
                "routes",
                "--config",
                "gateway.yaml",
                "--proto",
                &fixture("greeter.proto"),
            ],
        );
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        run.stderr
    };
    for ((from, to), says) in [
        (((2020, 1, 1), (2021, 1, 1)), "expired"),
        (((2200, 1, 1), (2201, 1, 1)), "not valid for another"),
    ] {
        let stderr = routes_with(ca.issue_between(&["127.0.0.1"], from, to));
        assert!(
            stderr.contains("certificate is out of date") && stderr.contains(says),
            "{stderr}"
        );
    }
    let stderr = routes_with(ca.issue(&["127.0.0.1"]));
    assert!(!stderr.contains("out of date"), "{stderr}");
}

/// Files that are not regular are refused by name instead of read:
/// `/dev/zero` as the config, a descriptor set, a `.proto` file or a
/// certificate grew the process to gigabytes, and a pipe no one writes to
/// blocked it for ever.
#[test]
fn files_that_are_not_regular_are_refused() {
    let dir = support::tempdir();
    let pipe = dir.join("pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&pipe)
        .status()
        .expect("run mkfifo");
    assert!(made.success());
    let greeter = fixture("greeter.proto");
    for special in ["/dev/zero".to_owned(), arg(&pipe)] {
        let run = serve(&["--config", &special, "--proto", &greeter]);
        run.assert_bad_input(&[&special, "not a regular file"]);
        let run = serve(&["--descriptor-set", &special]);
        run.assert_bad_input(&[&special, "not a regular file"]);
        let run = serve(&["--proto", &special]);
        run.assert_bad_input(&[&special, "not a regular file"]);
        let config = write_config(&format!(
            "tls: {{cert_file: \"{special}\", key_file: \"{special}\"}}\n"
        ));
        let run = serve(&["--config", &arg(&config), "--proto", &greeter]);
        run.assert_bad_input(&["tls.cert_file", &special, "not a regular file"]);
    }
}

/// A config file is read to a bound, named in the refusal.
#[test]
fn a_config_file_past_its_bound_is_refused() {
    let mut text = String::from("listen: 127.0.0.1:0\n");
    text.push_str(&"#".repeat(17 << 20));
    let config = write_config(&text);
    let run = serve(&[
        "--config",
        &arg(&config),
        "--proto",
        &fixture("greeter.proto"),
    ]);
    run.assert_bad_input(&["larger than 16 MiB, the most a config file may hold"]);
}
