//! Asking reflecting upstreams for their descriptors, all at once and
//! each within a timeout: on every reload, and once for a config's
//! sources as they are now ([`sources_now`], for `protogate routes`).

use std::time::Duration;

use futures_util::future::join_all;

use crate::config::Config;
use crate::descriptor::{Reflected, reflection};
use crate::snapshot::Snapshot;
use crate::upstream::{ChannelSettings, Upstream};

/// `config`'s sources with what its reflecting upstreams send now; an
/// error names every one that does not answer.
pub async fn sources_now(config: &Config) -> Result<crate::descriptor::Sources, String> {
    let mut sources = config.sources();
    let asked = reflect(config, None, &sources.reflecting, config.reflection.timeout).await;
    if !asked.failed.is_empty() {
        let errors: Vec<String> = asked.failed.iter().map(|(_, err)| err.clone()).collect();
        return Err(errors.join("\n"));
    }
    sources.reflected = asked.reflected;
    Ok(sources)
}

/// What asking reflecting upstreams brought.
#[derive(Debug)]
pub(super) struct Asked {
    pub(super) reflected: Vec<Reflected>,
    /// Upstream name and why it did not answer.
    pub(super) failed: Vec<(String, String)>,
    /// The upstreams asked, for the snapshot built next to take over:
    /// made for this config (or kept from the previous snapshot), they
    /// hold the connections the questions opened.
    pub(super) upstreams: Vec<Upstream>,
}

/// Asks the reflecting upstreams `names` of `config` at once, each within
/// `timeout`.
pub(super) async fn reflect(
    config: &Config,
    previous: Option<&Snapshot>,
    names: &[String],
    timeout: Duration,
) -> Asked {
    // The snapshot's settings, so that the upstream's channel (and its
    // connection) is shared; the reflection client sets its own limit on
    // answer size.
    let settings = ChannelSettings::of(config);
    let asks = names.iter().filter_map(|name| {
        let upstream_config = config.upstreams.get(name)?;
        let old = previous.and_then(|p| p.upstreams.iter().find(|u| u.name() == name));
        let upstream = Upstream::reuse_or_new(old, name, upstream_config, &settings);
        Some(async move {
            let result = match &upstream {
                Ok(upstream) => match upstream.any_channel().await {
                    Ok(channel) => reflection::fetch(name, channel, timeout)
                        .await
                        .map_err(|err| format!("{err} [url {}]", upstream_config.url)),
                    Err(status) => Err(status.message().to_owned()),
                },
                Err(err) => Err(err.to_string()),
            };
            (name.clone(), upstream.ok(), result)
        })
    });
    let mut asked = Asked {
        reflected: Vec::new(),
        failed: Vec::new(),
        upstreams: Vec::new(),
    };
    for (name, upstream, result) in join_all(asks).await {
        asked.upstreams.extend(upstream);
        match result {
            Ok(reflected) => asked.reflected.push(reflected),
            Err(err) => asked.failed.push((name, err)),
        }
    }
    asked
}
