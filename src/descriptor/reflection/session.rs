//! One `ServerReflectionInfo` stream, in either protocol version.
//!
//! An ask is sent and its answer read, one at a time; v1's and v1alpha's
//! generated types are turned into one `Ask` and one `Answer`.

use std::fmt;
use std::pin::Pin;
use std::time::Duration;

use crate::upstream::Channel;
use futures_util::{Stream, StreamExt as _};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use tonic_reflection::pb::{v1, v1alpha};

use super::MAX_ANSWER_BYTES;

/// One request on the stream.
#[derive(Debug, Clone)]
pub(super) enum Ask {
    Services,
    Symbol(String),
    File { name: String, importer: String },
}

impl fmt::Display for Ask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ask::Services => f.write_str("the service list"),
            Ask::Symbol(symbol) => write!(f, "symbol `{symbol}`"),
            Ask::File { name, .. } => write!(f, "file `{name}`"),
        }
    }
}

/// One answer, whichever version sent it.
#[derive(Debug)]
pub(super) enum Answer {
    Services(Vec<String>),
    Files(Vec<Vec<u8>>),
    Error {
        code: i32,
        message: String,
    },
    /// Another kind of answer, by name.
    Other(&'static str),
    /// The stream ended.
    Ended,
}

type Answers = Pin<Box<dyn Stream<Item = Result<Answer, Status>> + Send>>;

/// An open `ServerReflectionInfo` stream.
pub(super) struct Session {
    asks: mpsc::Sender<Ask>,
    answers: Answers,
}

impl Session {
    /// Opens a stream of `version` with `first` already sent: some servers
    /// send response headers only with their first answer.
    pub(super) async fn open(
        version: Version,
        channel: Channel,
        first: Ask,
        timeout: Duration,
    ) -> Result<Session, Status> {
        let (asks, rest) = mpsc::channel(1);
        let outbound = tokio_stream::once(first).chain(ReceiverStream::new(rest));
        let answers: Answers = match version {
            Version::V1 => {
                let mut request = tonic::Request::new(outbound.map(|ask| v1_request(&ask)));
                request.set_timeout(timeout);
                let mut client = v1::server_reflection_client::ServerReflectionClient::new(channel)
                    .max_decoding_message_size(MAX_ANSWER_BYTES);
                let stream = client.server_reflection_info(request).await?.into_inner();
                Box::pin(stream.map(|r| r.map(v1_answer)))
            }
            Version::V1alpha => {
                let mut request = tonic::Request::new(outbound.map(|ask| v1alpha_request(&ask)));
                request.set_timeout(timeout);
                let mut client =
                    v1alpha::server_reflection_client::ServerReflectionClient::new(channel)
                        .max_decoding_message_size(MAX_ANSWER_BYTES);
                let stream = client.server_reflection_info(request).await?.into_inner();
                Box::pin(stream.map(|r| r.map(v1alpha_answer)))
            }
        };
        Ok(Session { asks, answers })
    }

    /// Sends `ask` and reads its answer.
    pub(super) async fn ask(&mut self, ask: Ask) -> Result<Option<Answer>, Status> {
        // A failed send means the call is over; reading says how it ended.
        let _ = self.asks.send(ask).await;
        self.answer().await
    }

    /// Reads the next answer; `None` when the stream ended.
    pub(super) async fn answer(&mut self) -> Result<Option<Answer>, Status> {
        self.answers.next().await.transpose()
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Version {
    V1,
    V1alpha,
}

/// The request for an ask and what an answer says, for one protocol
/// version: v1 and v1alpha have distinct generated types with the same
/// fields.
macro_rules! conversions {
    ($version:ident, $request:ident, $answer:ident) => {
        fn $request(ask: &Ask) -> $version::ServerReflectionRequest {
            use $version::server_reflection_request::MessageRequest;
            let request = match ask {
                Ask::Services => MessageRequest::ListServices(String::new()),
                Ask::Symbol(symbol) => MessageRequest::FileContainingSymbol(symbol.clone()),
                Ask::File { name, .. } => MessageRequest::FileByFilename(name.clone()),
            };
            $version::ServerReflectionRequest {
                host: String::new(),
                message_request: Some(request),
            }
        }

        fn $answer(response: $version::ServerReflectionResponse) -> Answer {
            use $version::server_reflection_response::MessageResponse;
            match response.message_response {
                Some(MessageResponse::ListServicesResponse(list)) => {
                    Answer::Services(list.service.into_iter().map(|s| s.name).collect())
                }
                Some(MessageResponse::FileDescriptorResponse(files)) => {
                    Answer::Files(files.file_descriptor_proto)
                }
                Some(MessageResponse::ErrorResponse(error)) => Answer::Error {
                    code: error.error_code,
                    message: error.error_message,
                },
                Some(MessageResponse::AllExtensionNumbersResponse(_)) => {
                    Answer::Other("extension numbers")
                }
                None => Answer::Other("an empty answer"),
            }
        }
    };
}

conversions!(v1, v1_request, v1_answer);
conversions!(v1alpha, v1alpha_request, v1alpha_answer);
