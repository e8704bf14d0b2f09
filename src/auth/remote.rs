//! Keys fetched from `auth.jwks_url`, in the background: at once, then
//! every `jwks_refresh` (sooner, backing off, after a failure). Each
//! fetch is bounded in time ([`FETCH_TIMEOUT`]) and size
//! ([`MAX_JWKS_BYTES`]); a failed one keeps the keys fetched last. A
//! reload hands the JWKS fetched last to the new snapshot, whose keys are
//! made from it under the new settings, so a reload leaves no gap.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::{Request, StatusCode, Uri, header};
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::JwkSet;

use super::config::AuthConfig;
use super::keys::KeySet;

/// The longest one fetch of the JWKS may take, connection included.
pub(crate) const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest JWKS taken; a key set is a few KiB.
pub(crate) const MAX_JWKS_BYTES: usize = 1 << 20;

/// The first wait after a failed fetch; it doubles up to `jwks_refresh`.
const RETRY: Duration = Duration::from_secs(1);

/// A JWKS as fetched, and its keys under this snapshot's settings.
struct Fetched {
    set: Arc<JwkSet>,
    keys: KeySet,
}

/// A snapshot's remote keys, and the task that keeps them current
/// (stopped when the snapshot goes).
pub(crate) struct Remote {
    current: Arc<ArcSwapOption<Fetched>>,
    task: Option<tokio::task::AbortHandle>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("fetched", &self.current.load().is_some())
            .finish_non_exhaustive()
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

type HttpClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

impl Remote {
    /// Starts fetching `url` for `config`, beginning with what `previous`
    /// fetched last. Outside a Tokio runtime (`protogate routes`) nothing
    /// is fetched.
    pub(crate) fn start(
        config: &AuthConfig,
        url: &str,
        previous: Option<&Remote>,
    ) -> Result<Remote, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        let client = client()?;
        let current = Arc::new(ArcSwapOption::empty());
        if let Some(last) = previous.and_then(|p| p.current.load_full())
            && let Ok(keys) = KeySet::of_jwks(config, &last.set)
        {
            current.store(Some(Arc::new(Fetched {
                set: last.set.clone(),
                keys,
            })));
        }
        let task = tokio::runtime::Handle::try_current().ok().map(|runtime| {
            let job = refresh(client, uri, config.clone(), current.clone());
            runtime.spawn(job).abort_handle()
        });
        Ok(Remote { current, task })
    }

    /// Calls `with` with the keys fetched last (none before the first
    /// fetch succeeds).
    pub(crate) fn with<R>(&self, with: impl FnOnce(Option<&KeySet>) -> R) -> R {
        let current = self.current.load();
        with(current.as_deref().map(|f| &f.keys))
    }
}

/// A client for http:// and https:// URLs, trusting the system's and the
/// web PKI roots.
///
/// Limitation: no proxy and no `ca_file` of its own; a key server behind
/// a private CA needs that CA in the system's store.
fn client() -> Result<HttpClient, String> {
    crate::install_crypto_provider();
    let tls = crate::tls::ClientTls::default().rustls_config()?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(FETCH_TIMEOUT));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// Fetches `uri` now and then for as long as the snapshot lives.
async fn refresh(
    client: HttpClient,
    uri: Uri,
    config: AuthConfig,
    current: Arc<ArcSwapOption<Fetched>>,
) {
    let url = shown(&uri);
    let mut retry = RETRY;
    // Warned once per outage; told at info when it ends (and at the
    // first fetch), at debug on every other fetch.
    let mut failing = false;
    loop {
        let wait = match fetch(&client, &uri).await.and_then(|set| {
            let keys = KeySet::of_jwks(&config, &set)?;
            Ok(Fetched {
                set: Arc::new(set),
                keys,
            })
        }) {
            Ok(fetched) => {
                let keys = fetched.keys.len();
                if failing || current.load().is_none() {
                    tracing::info!(%url, keys, "JWKS fetched");
                } else {
                    tracing::debug!(%url, keys, "JWKS fetched");
                }
                failing = false;
                current.store(Some(Arc::new(fetched)));
                retry = RETRY;
                config.jwks_refresh
            }
            Err(error) => {
                match (failing, current.load().is_some()) {
                    (true, _) => {
                        tracing::debug!(%url, %error, "Still cannot fetch the JWKS");
                    }
                    (false, true) => {
                        tracing::warn!(%url, %error, "Cannot fetch the JWKS; the keys fetched last stay in use");
                    }
                    (false, false) => {
                        tracing::warn!(%url, %error, "Cannot fetch the JWKS; tokens signed with its keys get 503 until it is fetched");
                    }
                }
                failing = true;
                let wait = retry.min(config.jwks_refresh);
                retry = (retry * 2).min(config.jwks_refresh);
                wait
            }
        };
        tokio::time::sleep(wait).await;
    }
}

/// `uri` as logs show it: without its query, which may carry a key
/// (`?api_key=...`).
fn shown(uri: &Uri) -> String {
    let mut shown = match (uri.scheme_str(), uri.authority()) {
        (Some(scheme), Some(authority)) => format!("{scheme}://{authority}{}", uri.path()),
        _ => uri.path().to_owned(),
    };
    if uri.query().is_some() {
        shown.push_str("?...");
    }
    shown
}

/// One bounded fetch of the JWKS.
async fn fetch(client: &HttpClient, uri: &Uri) -> Result<JwkSet, String> {
    let request = Request::get(uri.clone())
        .header(header::ACCEPT, "application/json")
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    let body = tokio::time::timeout(FETCH_TIMEOUT, async {
        let response = client.request(request).await.map_err(|e| e.to_string())?;
        if response.status() != StatusCode::OK {
            return Err(format!("answered {}", response.status()));
        }
        Limited::new(response.into_body(), MAX_JWKS_BYTES)
            .collect()
            .await
            .map(|body| body.to_bytes())
            .map_err(|e| format!("reading the answer: {e}"))
    })
    .await
    .map_err(|_| format!("no answer within {FETCH_TIMEOUT:?}"))??;
    serde_json::from_slice(&body).map_err(|e| format!("not a JWKS: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_is_not_shown() {
        let uri: Uri = "https://idp.test:8443/keys?api_key=SECRET".parse().unwrap();
        assert_eq!(shown(&uri), "https://idp.test:8443/keys?...");
        let uri: Uri = "http://idp.test/keys".parse().unwrap();
        assert_eq!(shown(&uri), "http://idp.test/keys");
    }
}
