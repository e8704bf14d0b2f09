//! The `protogate` command: flags and config in, gateway out.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use protogate::{Config, config};

// The binary's own modules sit in `main/`, apart from the library's in
// `src/` (where `bench.rs` is the library's bench, not this command).
#[path = "main/bench.rs"]
mod bench;
#[path = "main/log.rs"]
mod log;
use bench::{BenchArgs, bench};

/// mimalloc rather than the system allocator: a request allocates and frees
/// many small buffers across worker threads, and glibc's malloc spent about
/// a fifth of the gateway's CPU on them (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A gRPC-to-REST gateway: google.api.http annotations in, JSON REST routes out.
#[derive(Debug, Parser)]
#[command(name = "protogate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log filter (overrides RUST_LOG), e.g. `debug` or `protogate=debug`.
    #[arg(long, global = true)]
    log: Option<String>,
    /// Runtime worker threads: the CPUs the gateway may use (default: all
    /// it is given, cgroup quotas included).
    #[arg(long, global = true, env = "PROTOGATE_WORKERS", value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    workers: Option<u16>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve REST routes for the given descriptors.
    Serve(Sources),
    /// Print the route table; exit 1 when routes conflict.
    Routes(Sources),
    /// Run an example bookshop service with the gateway in front of it.
    Demo {
        /// Address of the gateway.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080", value_parser = config::listen_addr)]
        listen: SocketAddr,
        /// Address of the bookshop backend (port 0: a free port).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0", value_parser = config::listen_addr)]
        backend_listen: SocketAddr,
    },
    /// Measure the gateway against a no-op backend on loopback (see BENCHMARKS.md).
    Bench(BenchArgs),
}

#[derive(Debug, Clone, Args)]
struct Sources {
    /// YAML config file; flags override its settings.
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Binary FileDescriptorSet (protoc --include_imports, buf build). Repeatable.
    #[arg(long = "descriptor-set", value_name = "FILE")]
    descriptor_sets: Vec<PathBuf>,
    /// A .proto file compiled at startup. Repeatable.
    #[arg(long = "proto", value_name = "FILE")]
    protos: Vec<PathBuf>,
    /// Import path for --proto. Repeatable.
    #[arg(short = 'I', long = "include", value_name = "DIR")]
    include_paths: Vec<PathBuf>,
    /// gRPC backend for every service no configured upstream claims.
    #[arg(long, value_name = "URL")]
    upstream: Option<String>,
    /// Listen address, e.g. 127.0.0.1:8080 (port 0: any free port).
    #[arg(long, value_name = "ADDR", value_parser = config::listen_addr)]
    listen: Option<SocketAddr>,
    /// Ask every upstream for its descriptors by gRPC server reflection.
    #[arg(long)]
    reflect: bool,
    /// Admin listener address (health, readiness, routes, reload), e.g. 127.0.0.1:9901.
    #[arg(long, value_name = "ADDR", value_parser = config::listen_addr)]
    admin_listen: Option<SocketAddr>,
}

impl Sources {
    /// The config file (if any) with the flags applied on top.
    fn config(&self) -> Result<Config, String> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path).map_err(|e| e.to_string())?,
            None => Config::default(),
        };
        if !self.descriptor_sets.is_empty() {
            config.descriptor_sets = self.descriptor_sets.clone();
        }
        if !self.protos.is_empty() {
            config.protos = self.protos.clone();
        }
        if !self.include_paths.is_empty() {
            config.include_paths = self.include_paths.clone();
        }
        if let Some(url) = &self.upstream {
            config
                .set_default_upstream(url)
                .map_err(|e| format!("--upstream: {e}"))?;
        }
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if self.reflect {
            if config.upstreams.is_empty() {
                return Err(
                    "--reflect asks the upstreams for their descriptors, and none is given: \
                     pass --upstream URL too (or configure `upstreams`)"
                        .to_owned(),
                );
            }
            for upstream in config.upstreams.values_mut() {
                upstream.descriptors = protogate::config::DescriptorSource::Reflection;
            }
        }
        if let Some(admin) = self.admin_listen {
            config.admin.listen = Some(admin);
        }
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }
}

/// Bad input (flags, config, descriptors): exit code 2.
const BAD_INPUT: u8 = 2;

/// A stop cut short by a second signal, requests in flight dropped: exit
/// code 1, as for any other failure (not 0: what was in flight was lost).
const CUT_OFF: i32 = 1;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Only for the gateway: the setting is inherited by child processes,
    // and the bench's etcd is to run as it would anywhere.
    let small_pages = match cli.command {
        Command::Serve(_) | Command::Demo { .. } => keep_to_small_pages(),
        Command::Routes(_) | Command::Bench(_) => Ok(()),
    };
    init_logging(cli.log.as_deref());
    if let Err(err) = small_pages {
        tracing::debug!(%err, "Transparent huge pages stay on");
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = cli.workers {
        runtime.worker_threads(workers.into());
    }
    let runtime = match runtime.enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match cli.command {
            Command::Serve(sources) => serve(sources).await,
            Command::Routes(sources) => routes(sources).await,
            Command::Demo {
                listen,
                backend_listen,
            } => demo(listen, backend_listen).await,
            Command::Bench(args) => bench(args).await,
        }
    })
}

fn init_logging(filter: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let given = filter
        .map(str::to_owned)
        .or_else(|| std::env::var("RUST_LOG").ok())
        .filter(|f| !f.trim().is_empty());
    let filter = match given {
        Some(f) => EnvFilter::try_new(quiet_watcher(&f)).unwrap_or_else(|_| EnvFilter::new(&f)),
        None => EnvFilter::new("info"),
    };
    use std::io::IsTerminal as _;
    let ansi = std::io::stderr().is_terminal();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(move || log::OneLine::new(std::io::stderr(), ansi))
        .with_ansi(ansi)
        .init();
}

/// `filter` with the file watcher's own library held to `info` unless the
/// filter names it: at `debug` or `trace` it logs every event it sees, and
/// with the log written into a watched folder each line is an event of its
/// own, without end.
fn quiet_watcher(filter: &str) -> String {
    if filter.contains("notify") {
        filter.to_owned()
    } else {
        format!("{filter},notify=info")
    }
}

fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(code)
}

async fn serve(sources: Sources) -> ExitCode {
    let config = match sources.config() {
        Ok(config) => config,
        Err(err) => return fail(BAD_INPUT, err),
    };
    // What to serve comes first: with neither, that is the first thing to
    // say.
    if config.sources().is_empty() {
        return fail(BAD_INPUT, protogate::descriptor::DescriptorError::Empty);
    }
    if config.upstreams.is_empty() {
        // A file that cannot be read or compiled is said before the
        // missing upstream, as `routes` says it: fixing the upstream
        // first would only bring that error next.
        if let Err(err) = protogate::Snapshot::routes_only_from(&config, config.sources()) {
            return fail(BAD_INPUT, err);
        }
        return fail(BAD_INPUT, protogate::SnapshotError::NoUpstream);
    }
    // From here a signal stops the gateway gracefully, also while it
    // starts; a SIGHUP meanwhile is kept for a reload once it has started
    // (left to its default action, it would end the process).
    let mut stop = Stop::new();
    let hangups = Hangups::catch();
    // Reloads read the config file again, with the flags on top.
    let again = sources.clone();
    let server = match protogate::start_with(Box::new(move || again.config())).await {
        Ok(server) => server,
        Err(protogate::StartError::Snapshot(err)) => return fail(BAD_INPUT, err),
        Err(protogate::StartError::Config(err)) => return fail(BAD_INPUT, err),
        Err(err @ protogate::StartError::Bind { addr, .. }) => {
            let (flag, key) = if config.admin.listen == Some(addr) {
                ("--admin-listen", "admin.listen")
            } else {
                ("--listen", "listen")
            };
            let or_key = if sources.config.is_some() {
                format!(", or `{key}:` in the config")
            } else {
                String::new()
            };
            return fail(
                1,
                format!("{err} (choose another address with {flag} 127.0.0.1:PORT{or_key})"),
            );
        }
    };
    if let Some(reloader) = server.reloader() {
        tokio::spawn(hangups.reload(reloader.clone()));
    }
    stop.next().await;
    drain(server, stop).await;
    ExitCode::SUCCESS
}

async fn routes(sources: Sources) -> ExitCode {
    let config = match sources.config() {
        Ok(config) => config,
        Err(err) => return fail(BAD_INPUT, err),
    };
    protogate::install_crypto_provider();
    let descriptors = match protogate::reload::sources_now(&config).await {
        Ok(descriptors) => descriptors,
        // One line for each upstream that did not answer.
        Err(errors) => {
            for error in errors.lines() {
                eprintln!("error: {error}");
            }
            return ExitCode::FAILURE;
        }
    };
    let (_, table) = match protogate::Snapshot::routes_only_from(&config, descriptors) {
        Ok(built) => built,
        Err(err) => return fail(BAD_INPUT, err),
    };
    // `serve` refuses this config. The table is still the one its
    // descriptors make (what `routes --proto x.proto` is for), so it is
    // printed, with `serve`'s refusal as a warning that says so.
    if config.upstreams.is_empty() {
        eprintln!(
            "warning: {} (`serve` refuses to start without one; the routes below would have nowhere to send calls)",
            protogate::SnapshotError::NoUpstream
        );
    }
    match print_table(&config, &table) {
        Ok(()) => {}
        // The reader went away (`protogate routes | head`): nothing to say.
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => return ExitCode::SUCCESS,
        Err(err) => return fail(1, format!("cannot write the route table: {err}")),
    }
    if table.conflicts().is_empty() {
        return ExitCode::SUCCESS;
    }
    for conflict in table.conflicts() {
        eprintln!("conflict: {conflict}");
    }
    ExitCode::FAILURE
}

/// Writes the table to stdout; a closed or full stdout is an error to
/// report, not a panic (as `println!` would make it).
fn print_table(config: &Config, table: &protogate::route::RouteTable) -> std::io::Result<()> {
    use std::io::Write as _;
    const HEADER: [&str; 8] = [
        "METHOD",
        "TEMPLATE",
        "RPC",
        "BODY",
        "RESPONSE_BODY",
        "STREAMS",
        "UPSTREAM",
        "GROUP",
    ];
    let or_dash = |text: &str| if text.is_empty() { "-" } else { text }.to_owned();
    let mut rows = vec![HEADER.map(str::to_owned)];
    for row in protogate::snapshot::route_rows(config, table) {
        rows.push([
            row.method,
            row.template,
            or_dash(&row.rpc),
            or_dash(&row.body),
            or_dash(&row.response_body),
            if row.streams == "unary" {
                "-".to_owned()
            } else {
                or_dash(row.streams)
            },
            row.upstream.unwrap_or_else(|| "-".to_owned()),
            row.group.unwrap_or_else(|| "-".to_owned()),
        ]);
    }
    let mut widths = [0; HEADER.len()];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = std::io::stdout().lock();
    for row in &rows {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  "));
            }
        }
        writeln!(out, "{line}")?;
    }
    out.flush()
}

async fn demo(listen: SocketAddr, backend_listen: SocketAddr) -> ExitCode {
    let backend = match protogate::demo::Backend::start(backend_listen).await {
        Ok(backend) => backend,
        Err(err) => {
            return fail(
                1,
                format!(
                    "cannot start the demo backend on {backend_listen}: {err} \
                     (choose another address with --backend-listen 127.0.0.1:PORT)"
                ),
            );
        }
    };
    let config = protogate::demo::config(listen, backend.addr());
    // Before the banner: a signal right after it stops the demo gracefully.
    let mut stop = Stop::new();
    let server = match protogate::start(&config).await {
        Ok(server) => server,
        Err(err @ protogate::StartError::Bind { .. }) => {
            return fail(
                1,
                format!("{err} (choose another address with --listen 127.0.0.1:PORT)"),
            );
        }
        Err(err) => return fail(1, err),
    };
    if let Err(err) = print_demo(backend.addr(), server.local_addr()) {
        // The demo still serves; only its instructions are lost.
        tracing::warn!(error = %err, "Cannot print the demo's curl lines");
    }
    stop.next().await;
    drain(server, stop).await;
    println!("protogate demo stopped");
    ExitCode::SUCCESS
}

fn print_demo(backend: SocketAddr, gateway: SocketAddr) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "protogate demo: bookshop gRPC service on {backend}, REST gateway on http://{gateway}"
    )?;
    writeln!(out, "Try these (Ctrl-C stops the demo):\n")?;
    for line in protogate::demo::curl_lines(gateway) {
        writeln!(out, "  {line}")?;
    }
    writeln!(out)?;
    for line in protogate::demo::reflect_lines(backend, gateway) {
        writeln!(out, "  {line}")?;
    }
    writeln!(out)?;
    out.flush()
}

/// Turns transparent huge pages off for the process. mimalloc asks for them
/// on its heap, and a huge page that one live buffer touches stays resident
/// whole: with 256 connections sending 64 KiB bodies that was 20 MiB of RSS
/// more, for no speed that the bench could measure (BENCHMARKS.md).
fn keep_to_small_pages() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    rustix::thread::disable_transparent_huge_pages(true)?;
    Ok(())
}

/// SIGHUP, caught from when [`Hangups::catch`] returns: one that comes
/// before the reloads start waits for them.
struct Hangups {
    #[cfg(unix)]
    signal: std::io::Result<tokio::signal::unix::Signal>,
}

impl Hangups {
    fn catch() -> Hangups {
        Hangups {
            #[cfg(unix)]
            signal: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()),
        }
    }

    /// Reloads on every SIGHUP (one caught before this runs included).
    async fn reload(self, reloader: std::sync::Arc<protogate::reload::Reloader>) {
        #[cfg(unix)]
        {
            let Ok(mut hangups) = self.signal else {
                tracing::warn!("Cannot listen for SIGHUP; reload with POST /admin/reload");
                return;
            };
            while hangups.recv().await.is_some() {
                let _ = reloader.reload("SIGHUP").await;
            }
        }
        #[cfg(not(unix))]
        drop((self, reloader));
    }
}

/// Stops `server`: no new connections, and up to its grace period
/// (`timeouts.shutdown`) for the requests in flight. Another signal
/// meanwhile ends the process at once with [`CUT_OFF`]: whoever sends it
/// has chosen not to wait. It exits from here rather than by returning:
/// returning drops the runtime, which waits for the work on its blocking
/// threads (a reload compiling `.proto` files).
async fn drain(server: protogate::Server, mut stop: Stop) {
    tracing::info!("Shutting down");
    tokio::select! {
        () = server.shutdown() => {}
        () = stop.next() => {
            tracing::warn!("Second signal while shutting down; exiting now, requests in flight are cut off");
            std::process::exit(CUT_OFF);
        }
    }
}

/// Ctrl-C and SIGTERM. The handlers are in place from [`Stop::new`], not
/// from the first wait: a signal that comes while the gateway starts or
/// prints its banner is caught, not the default action that ends the
/// process at once. Each signal is seen once; two that come before a wait
/// count as one.
#[derive(Debug)]
struct Stop {
    /// SIGINT and SIGTERM; `None` when a handler could not be set, and
    /// Ctrl-C is waited for as tokio offers it.
    #[cfg(unix)]
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Stop {
    fn new() -> Stop {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let interrupt = signal(SignalKind::interrupt());
            let terminate = signal(SignalKind::terminate());
            Stop {
                signals: interrupt.ok().zip(terminate.ok()),
            }
        }
        #[cfg(not(unix))]
        Stop {}
    }

    /// Waits for the next Ctrl-C or SIGTERM.
    async fn next(&mut self) {
        #[cfg(unix)]
        if let Some((interrupt, terminate)) = &mut self.signals {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
