//! The built `protogate` binary as a child process: output collected line
//! by line, every wait bounded, the child killed by PID on drop.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Longest wait for a command that should finish on its own.
pub(crate) const FINISH: Duration = Duration::from_secs(60);
/// Longest wait for a server to log its address.
pub(crate) const START: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(20);

/// A finished run.
#[derive(Debug)]
pub(crate) struct Run {
    /// The exit code; `None` when killed by a signal.
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    /// Asserts the run failed cleanly: exit code exactly 2, exactly one
    /// `error:` line that contains every one of `needles`, and no trace
    /// of a panic. Returns the error line.
    pub(crate) fn assert_bad_input(&self, needles: &[&str]) -> String {
        assert_eq!(self.code, Some(2), "exit code; stderr:\n{}", self.stderr);
        self.assert_no_panic();
        let errors: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .collect();
        assert_eq!(errors.len(), 1, "one error line; stderr:\n{}", self.stderr);
        for needle in needles {
            assert!(
                errors[0].contains(needle),
                "`{needle}` missing from: {}",
                errors[0]
            );
        }
        errors[0].to_owned()
    }

    /// Asserts stderr shows no panic or backtrace.
    pub(crate) fn assert_no_panic(&self) {
        for marker in [
            "panicked",
            "stack backtrace",
            "RUST_BACKTRACE",
            "thread 'main'",
        ] {
            assert!(
                !self.stderr.contains(marker),
                "`{marker}` on stderr:\n{}",
                self.stderr
            );
        }
    }
}

/// `protogate` with `args`, run in the repository root.
pub(crate) fn protogate(args: &[&str]) -> Run {
    protogate_in(&crate::support::repo(), args)
}

/// `protogate` with `args`, run in `dir`; killed (and the test failed) if
/// it does not finish within [`FINISH`].
pub(crate) fn protogate_in(dir: &Path, args: &[&str]) -> Run {
    run(command(dir, args))
}

/// Runs `command` to its end, killed (and the test failed) if it does not
/// finish within [`FINISH`].
pub(crate) fn run(command: Command) -> Run {
    let mut child = Spawned::new(command);
    let status = child.wait(FINISH);
    let Some(status) = status else {
        panic!("protogate did not finish; stderr:\n{}", child.stderr());
    };
    let (stdout, stderr) = child.finish();
    Run {
        code: status.code(),
        stdout,
        stderr,
    }
}

/// The command line, with a known log level and backtraces on (so a
/// panic would show on stderr).
pub(crate) fn command(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_protogate"));
    command
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Lines of one output stream, filled by a reader thread.
#[derive(Debug, Default)]
struct Lines {
    lines: Mutex<Vec<String>>,
    closed: std::sync::atomic::AtomicBool,
}

fn collect(stream: impl Read + Send + 'static, into: Arc<Lines>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            into.lines.lock().push(line);
        }
        into.closed.store(true, std::sync::atomic::Ordering::SeqCst);
    })
}

/// A running `protogate`; killed by PID when dropped.
#[derive(Debug)]
pub(crate) struct Spawned {
    child: Child,
    stdout: Arc<Lines>,
    stderr: Arc<Lines>,
    readers: Vec<JoinHandle<()>>,
}

impl Spawned {
    /// Starts `command`, collecting whichever of stdout and stderr it
    /// pipes.
    pub(crate) fn new(mut command: Command) -> Spawned {
        let mut child = command.spawn().expect("spawn protogate");
        let stdout = Arc::new(Lines::default());
        let stderr = Arc::new(Lines::default());
        let mut readers = Vec::new();
        match child.stdout.take() {
            Some(out) => readers.push(collect(out, stdout.clone())),
            None => stdout
                .closed
                .store(true, std::sync::atomic::Ordering::SeqCst),
        }
        match child.stderr.take() {
            Some(err) => readers.push(collect(err, stderr.clone())),
            None => stderr
                .closed
                .store(true, std::sync::atomic::Ordering::SeqCst),
        }
        Spawned {
            child,
            stdout,
            stderr,
            readers,
        }
    }

    /// The child's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stderr so far.
    pub(crate) fn stderr(&self) -> String {
        self.stderr.lines.lock().join("\n")
    }

    /// Stdout lines so far.
    pub(crate) fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lines.lock().clone()
    }

    /// Waits up to `limit` for the child to exit.
    pub(crate) fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(POLL);
        }
    }

    /// All output, once the child has exited and its streams are closed.
    pub(crate) fn finish(&mut self) -> (String, String) {
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        let text = |lines: &Lines| {
            let lines = lines.lines.lock();
            lines.iter().map(|l| format!("{l}\n")).collect::<String>()
        };
        (text(&self.stdout), text(&self.stderr))
    }

    /// Waits up to `limit` for a stderr line matching `pred`; panics with
    /// the output when the child exits first or time runs out.
    pub(crate) fn stderr_line(&mut self, limit: Duration, pred: impl Fn(&str) -> bool) -> String {
        self.line(false, limit, pred)
    }

    /// Like [`Spawned::stderr_line`], for stdout.
    pub(crate) fn stdout_line(&mut self, limit: Duration, pred: impl Fn(&str) -> bool) -> String {
        self.line(true, limit, pred)
    }

    fn line(&mut self, stdout: bool, limit: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let stream = if stdout { &self.stdout } else { &self.stderr };
            if let Some(line) = stream.lines.lock().iter().find(|l| pred(l)) {
                return line.clone();
            }
            if stream.closed.load(std::sync::atomic::Ordering::SeqCst) {
                let status = self.wait(Duration::from_secs(5));
                panic!(
                    "protogate exited ({status:?}) first; stderr:\n{}",
                    self.stderr()
                );
            }
            if Instant::now() > deadline {
                panic!("no such line within {limit:?}; stderr:\n{}", self.stderr());
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        // Kill by PID (the handle's own child), then reap it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `protogate serve` (or any command that serves) running until dropped.
#[derive(Debug)]
pub(crate) struct Served {
    pub(crate) process: Spawned,
    pub(crate) addr: SocketAddr,
}

impl Served {
    /// Runs `protogate <args>` in the repository root and waits for the
    /// address it logs.
    pub(crate) fn start(args: &[&str]) -> Served {
        Served::start_in(&crate::support::repo(), args)
    }

    /// Like [`Served::start`], in `dir`.
    pub(crate) fn start_in(dir: &Path, args: &[&str]) -> Served {
        let mut process = Spawned::new(command(dir, args));
        let line = process.stderr_line(START, |l| l.contains("Listening") && l.contains("addr="));
        let addr = line
            .split("addr=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("no address in: {line}"));
        Served { process, addr }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}
