//! A gRPC server reflection client: asks an upstream for the services it
//! lists and every descriptor file they need, kept as the bytes it sent.
//!
//! One `ServerReflectionInfo` stream carries the whole exchange, one request
//! and its answer at a time: `list_services`, then `file_containing_symbol`
//! for each service, then `file_by_filename` for each import not yet
//! received, until the files are closed under imports. `grpc.reflection.v1`
//! is tried first; a server that answers UNIMPLEMENTED is asked again with
//! `grpc.reflection.v1alpha`. Files are never decoded into `prost_types`
//! (that would drop custom options such as `google.api.http`).
//!
//! This module decides what to ask and what the answers mean; `session`
//! speaks the stream in either version.

use std::collections::{HashSet, VecDeque};
use std::error::Error as _;
use std::time::Duration;

use crate::upstream::Channel;
use bytes::Bytes;
use tokio::time::Instant;
use tonic::{Code, Status};

use super::{RawFile, Reflected};

mod session;
use session::{Answer, Ask, Session, Version};

/// Most files one upstream may send.
pub const MAX_FILES: usize = 10_000;
/// Most services one upstream may list.
pub const MAX_SERVICES: usize = 10_000;
/// Largest single reflection answer.
const MAX_ANSWER_BYTES: usize = 64 << 20;
/// Most bytes of files kept from one upstream.
const MAX_TOTAL_BYTES: usize = 256 << 20;

/// Server reflection that did not yield a closed set of files.
#[derive(Debug, thiserror::Error)]
pub enum ReflectionError {
    /// No connection to the upstream.
    #[error("cannot reach upstream `{upstream}` for server reflection: {}", crate::upstream::causes(.source))]
    Unreachable {
        /// The upstream.
        upstream: String,
        /// The transport failure.
        #[source]
        source: Status,
    },
    /// The upstream answers UNIMPLEMENTED to both reflection versions.
    #[error(
        "upstream `{upstream}` does not serve gRPC server reflection (grpc.reflection.v1 and v1alpha are unimplemented)"
    )]
    NotServed {
        /// The upstream.
        upstream: String,
    },
    /// The upstream answered, but not in gRPC (an HTTP server, or another
    /// protocol on that port).
    #[error(
        "upstream `{upstream}` does not answer gRPC ({detail}): is it a gRPC server, and the right port?"
    )]
    NotGrpc {
        /// The upstream.
        upstream: String,
        /// What it answered.
        detail: String,
    },
    /// The exchange did not finish in time.
    #[error("upstream `{upstream}` did not finish server reflection within {timeout:?}")]
    TimedOut {
        /// The upstream.
        upstream: String,
        /// The deadline given.
        timeout: Duration,
    },
    /// The upstream answered a request with an error.
    #[error("upstream `{upstream}` refused server reflection for {asked}: {code:?}: {message}")]
    Refused {
        /// The upstream.
        upstream: String,
        /// What was asked, e.g. ``symbol `shop.v1.Books` ``.
        asked: String,
        /// The error code it gave.
        code: Code,
        /// Its message.
        message: String,
    },
    /// The upstream does not have a file that one of its files imports.
    #[error("upstream `{upstream}` has no file `{file}` (imported by `{importer}`): {message}")]
    MissingFile {
        /// The upstream.
        upstream: String,
        /// The file asked for.
        file: String,
        /// The file importing it.
        importer: String,
        /// What the upstream said.
        message: String,
    },
    /// An answer that does not fit its request, or a stream that ended early.
    #[error("upstream `{upstream}` sent a malformed server reflection answer: {reason}")]
    Malformed {
        /// The upstream.
        upstream: String,
        /// What is wrong.
        reason: String,
    },
    /// The upstream sends more than a limit allows.
    #[error("upstream `{upstream}` sends too much by server reflection: {reason}")]
    TooLarge {
        /// The upstream.
        upstream: String,
        /// Which limit.
        reason: String,
    },
    /// The stream failed for another reason.
    #[error("server reflection with upstream `{upstream}` failed: {}", crate::upstream::causes(.source))]
    Failed {
        /// The upstream.
        upstream: String,
        /// The gRPC status.
        #[source]
        source: Status,
    },
}

/// Asks the server reflection service behind `channel` for the services it
/// lists and every file they need.
///
/// The whole exchange, a fallback to `v1alpha` included, ends within
/// `timeout`. `upstream` names the upstream in errors and in the result.
pub async fn fetch(
    upstream: &str,
    channel: Channel,
    timeout: Duration,
) -> Result<Reflected, ReflectionError> {
    let deadline = Instant::now() + timeout;
    let exchange = Exchange {
        upstream,
        deadline,
        timeout,
    };
    match tokio::time::timeout_at(deadline, exchange.run(channel)).await {
        Ok(result) => result,
        Err(_) => Err(exchange.timed_out()),
    }
}

/// What one `fetch` knows while it runs.
struct Exchange<'a> {
    upstream: &'a str,
    deadline: Instant,
    timeout: Duration,
}

impl Exchange<'_> {
    async fn run(&self, channel: Channel) -> Result<Reflected, ReflectionError> {
        let (mut session, first) = self.start(channel.clone()).await?;
        let mut services = match first {
            Answer::Services(services) => services,
            other => return Err(self.unexpected(&Ask::Services, other)),
        };
        // Never routed (the gateway answers them itself), so their files
        // are not needed, and a server that lists reflection without being
        // able to describe it is not held against its own services.
        services.retain(|service| !is_infrastructure(service));
        if services.len() > MAX_SERVICES {
            return Err(self.too_large(format!("it lists more than {MAX_SERVICES} services")));
        }
        let mut files = Collected::default();
        let mut asked = HashSet::new();
        let mut skipped = Vec::new();
        let mut described = Vec::with_capacity(services.len());
        let mut first_refusal = None;
        for service in &services {
            if !asked.insert(service.as_str()) {
                continue;
            }
            let ask = Ask::Symbol(service.clone());
            match self.files(&mut session, ask).await {
                Ok(received) => {
                    files.add(received).map_err(|e| self.too_large(e))?;
                    described.push(service.clone());
                }
                // A service it lists and says it does not know: the others
                // are served, and it is named (a server may end the stream
                // with its answer, so the next ask opens another). Other
                // refusals (UNAVAILABLE, ...) may pass, and fail the whole
                // answer as before, so a service is not dropped for them.
                Err(
                    err @ ReflectionError::Refused {
                        code: Code::NotFound,
                        ..
                    },
                ) => {
                    if let ReflectionError::Refused { message, .. } = &err {
                        skipped.push(format!("{service}: NotFound: {message}"));
                    }
                    first_refusal.get_or_insert(err);
                    session = self.start(channel.clone()).await?.0;
                }
                Err(err) => return Err(err),
            }
        }
        // Nothing described at all: not an answer to serve from (the
        // server may be starting); the first refusal says why.
        if described.is_empty()
            && let Some(first) = first_refusal
        {
            return Err(first);
        }
        // Each round adds the file asked for or fails, so this ends within
        // MAX_FILES rounds.
        while let Some((name, importer)) = files.next_missing() {
            let ask = Ask::File {
                name: name.clone(),
                importer,
            };
            let received = self.files(&mut session, ask.clone()).await?;
            if !received.iter().any(|f| f.name == name) {
                return Err(self.malformed(format!("the answer to {ask} does not contain it")));
            }
            files.add(received).map_err(|e| self.too_large(e))?;
        }
        Ok(Reflected {
            upstream: self.upstream.to_owned(),
            services: described,
            files: files.files,
            skipped,
        })
    }

    /// Opens a stream and reads the service list, falling back to
    /// `v1alpha` when `v1` is unimplemented.
    async fn start(&self, channel: Channel) -> Result<(Session, Answer), ReflectionError> {
        match self.list(Version::V1, channel.clone()).await {
            Err(status) if !is_grpc(&status) => {
                return Err(ReflectionError::NotGrpc {
                    upstream: self.upstream.to_owned(),
                    detail: status.message().to_owned(),
                });
            }
            Err(status) if status.code() == Code::Unimplemented => {
                tracing::debug!(
                    upstream = self.upstream,
                    "Server reflection v1 is unimplemented; trying v1alpha"
                );
            }
            other => return other.map_err(|status| self.failed(&Ask::Services, status)),
        }
        match self.list(Version::V1alpha, channel).await {
            Err(status) if status.code() == Code::Unimplemented => {
                Err(ReflectionError::NotServed {
                    upstream: self.upstream.to_owned(),
                })
            }
            other => other.map_err(|status| self.failed(&Ask::Services, status)),
        }
    }

    async fn list(&self, version: Version, channel: Channel) -> Result<(Session, Answer), Status> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        let mut session = Session::open(version, channel, Ask::Services, left).await?;
        let answer = session.answer().await?.unwrap_or(Answer::Ended);
        Ok((session, answer))
    }

    /// Sends `ask` and reads the files of its answer.
    async fn files(
        &self,
        session: &mut Session,
        ask: Ask,
    ) -> Result<Vec<RawFile>, ReflectionError> {
        let answer = match session.ask(ask.clone()).await {
            Ok(Some(answer)) => answer,
            Ok(None) => return Err(self.unexpected(&ask, Answer::Ended)),
            Err(status) => return Err(self.failed(&ask, status)),
        };
        let Answer::Files(encoded) = answer else {
            return Err(self.unexpected(&ask, answer));
        };
        if encoded.is_empty() {
            return Err(self.malformed(format!("the answer to {ask} holds no file")));
        }
        encoded
            .into_iter()
            .map(|bytes| match RawFile::decode(Bytes::from(bytes)) {
                Ok(file) if file.name.is_empty() => {
                    Err(self.malformed(format!("a file in the answer to {ask} has no name")))
                }
                Ok(file) => Ok(file),
                Err(e) => Err(self.malformed(format!(
                    "a file in the answer to {ask} does not decode: {e}"
                ))),
            })
            .collect()
    }

    /// The error for `answer`, which is not what `ask` expects.
    fn unexpected(&self, ask: &Ask, answer: Answer) -> ReflectionError {
        match answer {
            // An error of code OK is no refusal: the server (or whatever
            // answered) does not speak reflection, e.g. one that echoes
            // every request back.
            Answer::Error { code: 0, message } => self.malformed(format!(
                "{ask} was answered with an error_response of code 0 (OK){}; is the reflection service what answers on this port?",
                if message.is_empty() {
                    String::new()
                } else {
                    format!(" saying `{message}`")
                }
            )),
            Answer::Error { code, message } => self.refused(ask, Code::from_i32(code), message),
            Answer::Services(_) => {
                self.malformed(format!("{ask} was answered with a service list"))
            }
            Answer::Files(_) => self.malformed(format!("{ask} was answered with files")),
            Answer::Other(kind) => self.malformed(format!("{ask} was answered with {kind}")),
            Answer::Ended => self.malformed(format!("the stream ended before answering {ask}")),
        }
    }

    /// The error for a stream that ended with `status` while `ask` waited.
    fn failed(&self, ask: &Ask, status: Status) -> ReflectionError {
        let upstream = self.upstream.to_owned();
        if Instant::now() >= self.deadline
            || status.code() == Code::DeadlineExceeded
            || crate::upstream::caused_by::<tonic::TimeoutExpired>(&status)
        {
            return self.timed_out();
        }
        if crate::upstream::caused_by::<tonic::ConnectError>(&status) {
            return ReflectionError::Unreachable {
                upstream,
                source: status,
            };
        }
        if status.source().is_some() {
            // A transport failure after connecting.
            return ReflectionError::Failed {
                upstream,
                source: status,
            };
        }
        // The server's own status: its answer to `ask` (tonic's reflection
        // server ends the stream with NOT_FOUND instead of sending an
        // error_response).
        self.refused(ask, status.code(), status.message().to_owned())
    }

    fn refused(&self, ask: &Ask, code: Code, message: String) -> ReflectionError {
        let upstream = self.upstream.to_owned();
        match ask {
            Ask::File { name, importer } => ReflectionError::MissingFile {
                upstream,
                file: name.clone(),
                importer: importer.clone(),
                message,
            },
            _ => ReflectionError::Refused {
                upstream,
                asked: ask.to_string(),
                code,
                message,
            },
        }
    }

    fn malformed(&self, reason: String) -> ReflectionError {
        ReflectionError::Malformed {
            upstream: self.upstream.to_owned(),
            reason,
        }
    }

    fn too_large(&self, reason: String) -> ReflectionError {
        ReflectionError::TooLarge {
            upstream: self.upstream.to_owned(),
            reason,
        }
    }

    fn timed_out(&self) -> ReflectionError {
        ReflectionError::TimedOut {
            upstream: self.upstream.to_owned(),
            timeout: self.timeout,
        }
    }
}

/// Whether a listed service is one of gRPC's own, which the gateway
/// never routes to an upstream (DECISIONS.md).
fn is_infrastructure(service: &str) -> bool {
    service.starts_with("grpc.reflection.") || service.starts_with("grpc.health.")
}

/// Whether `status` came from a gRPC server: tonic makes one up from the
/// HTTP status when the answer has no `grpc-status` (an HTTP server's 404
/// becomes UNIMPLEMENTED), saying so in its message.
fn is_grpc(status: &Status) -> bool {
    // tonic's words for an HTTP status without `grpc-status`, and the
    // channel's own (`upstream::HTTP_ANSWER`), which come first.
    let message = status.message();
    !message.starts_with("grpc-status header missing")
        && !message.starts_with(crate::upstream::HTTP_ANSWER)
}

/// The files received so far, first of each name kept, and the imports
/// still to ask for.
#[derive(Default)]
struct Collected {
    files: Vec<RawFile>,
    names: HashSet<String>,
    bytes: usize,
    /// Imports seen, with the first file importing them, in order.
    wanted: VecDeque<(String, String)>,
}

impl Collected {
    fn add(&mut self, received: Vec<RawFile>) -> Result<(), String> {
        for file in received {
            if self.names.contains(&file.name) {
                continue;
            }
            if self.files.len() >= MAX_FILES {
                return Err(format!("more than {MAX_FILES} files"));
            }
            self.bytes += file.bytes.len();
            if self.bytes > MAX_TOTAL_BYTES {
                return Err(format!("more than {MAX_TOTAL_BYTES} bytes of files"));
            }
            for import in &file.imports {
                if !self.names.contains(import) {
                    self.wanted.push_back((import.clone(), file.name.clone()));
                }
            }
            self.names.insert(file.name.clone());
            self.files.push(file);
        }
        Ok(())
    }

    /// The next import not received yet, with a file importing it.
    fn next_missing(&mut self) -> Option<(String, String)> {
        while let Some((name, importer)) = self.wanted.pop_front() {
            if !self.names.contains(&name) {
                return Some((name, importer));
            }
        }
        None
    }
}
