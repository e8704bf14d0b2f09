//! A WebSocket client for the gateway's streaming routes
//! (tokio-tungstenite): connect with headers, read the next frame.

use std::time::Duration;

use futures_util::StreamExt as _;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use super::TestGateway;

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Upgrades `path` on the gateway, asserting the 101.
pub async fn connect(gateway: &TestGateway, path: &str, headers: &[(&str, &str)]) -> Socket {
    let mut request = format!("ws://{}{path}", gateway.addr())
        .into_client_request()
        .unwrap();
    for (k, v) in headers {
        let name = http::HeaderName::from_bytes(k.as_bytes()).unwrap();
        request.headers_mut().insert(name, v.parse().unwrap());
    }
    let (socket, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("upgrade");
    assert_eq!(response.status(), 101);
    socket
}

/// The next text frame as JSON, or the close frame's code and reason.
pub async fn next(socket: &mut Socket) -> Result<Value, (u16, String)> {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a frame in time")
            .expect("the socket is open")
            .expect("a valid frame");
        match frame {
            Message::Text(text) => return Ok(serde_json::from_str(&text).unwrap()),
            Message::Close(Some(close)) => {
                return Err((u16::from(close.code), close.reason.to_string()));
            }
            Message::Close(None) => return Err((1005, String::new())),
            _ => continue,
        }
    }
}

/// A JSON value as a text frame.
pub fn text(value: Value) -> Message {
    Message::text(value.to_string())
}
