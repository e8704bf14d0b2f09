//! Which upstream serves a service: the one whose `services` name it (by
//! full name, else the longest matching `pkg.*` pattern), else the
//! default upstream, the one without `services`.

use super::{Config, DescriptorSource};

impl Config {
    /// The upstream serving `service`: listed by full name, else by the
    /// longest matching `pkg.*` pattern, else the default upstream.
    pub fn upstream_for(&self, service: &str) -> Option<&str> {
        self.claimed_by(service).or_else(|| self.default_upstream())
    }

    /// The upstream whose `services` name `service` (by full name, else
    /// the longest matching `pkg.*` pattern).
    pub fn claimed_by(&self, service: &str) -> Option<&str> {
        let mut best: Option<(&str, usize)> = None;
        for (name, upstream) in &self.upstreams {
            for pattern in &upstream.services {
                let score = service_score(pattern, service);
                if score > best.map_or(0, |(_, s)| s) {
                    best = Some((name, score));
                }
            }
        }
        best.map(|(name, _)| name)
    }

    /// The upstream without `services`, which serves what no other claims
    /// (or what reflection did not place).
    pub fn default_upstream(&self) -> Option<&str> {
        if let Some(name) = self.default_upstreams().first() {
            return Some(name);
        }
        // Only reflecting upstreams lack `services`: one of them alone is
        // still the default (for services of the files).
        let mut open = self.upstreams.iter().filter(|(_, u)| u.services.is_empty());
        match (open.next(), open.next()) {
            (Some((name, _)), None) => Some(name.as_str()),
            _ => None,
        }
    }

    /// Names of the upstreams that would each take every unclaimed
    /// service: those without `services`, except reflecting ones, which
    /// serve what their reflection lists.
    pub(super) fn default_upstreams(&self) -> Vec<&str> {
        self.upstreams
            .iter()
            .filter(|(name, u)| {
                u.services.is_empty()
                    && u.descriptors == DescriptorSource::Files
                    && !self.is_canary(name)
            })
            .map(|(name, _)| name.as_str())
            .collect()
    }

    /// Whether upstream `name` is another's canary: it takes that one's
    /// share of calls and claims no services of its own unless it lists
    /// them.
    pub fn is_canary(&self, name: &str) -> bool {
        self.upstreams
            .values()
            .any(|u| u.canary.as_ref().is_some_and(|c| c.upstream == name))
    }
}

/// How well a `services` entry matches a service: 0 not at all, the full
/// name best, then longer `pkg.*` prefixes before shorter ones and `*`.
pub(crate) fn service_score(pattern: &str, service: &str) -> usize {
    if pattern == service {
        usize::MAX
    } else if pattern == "*" {
        1
    } else if let Some(prefix) = pattern.strip_suffix('*') {
        if service.starts_with(prefix) {
            prefix.len() + 1
        } else {
            0
        }
    } else {
        0
    }
}

/// How well a method pattern (`pkg.Service/Method`, `pkg.Service/*`, or a
/// `services` entry: `pkg.Service`, `pkg.*`, `*`) takes `service`'s
/// `method`: 0 not at all, the method by name best, then the whole service
/// (`pkg.Service/*` or `pkg.Service`), then longer `pkg.*` prefixes before
/// shorter ones and `*` (as [`service_score`] ranks them). The patterns of
/// `auth` and `rate_limits`.
pub(crate) fn method_score(pattern: &str, service: &str, method: &str) -> usize {
    match pattern.split_once('/') {
        Some((services, name)) if name == method => service_score(services, service),
        Some((services, "*")) => service_score(services, service).min(usize::MAX - 1),
        Some(_) => 0,
        None => service_score(pattern, service).min(usize::MAX - 1),
    }
}

/// Whether a method pattern (see [`method_score`]) takes `service`'s
/// `method`.
pub(crate) fn method_covers(pattern: &str, service: &str, method: &str) -> bool {
    method_score(pattern, service, method) > 0
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::config::tests::upstream;

    #[test]
    fn upstream_for_prefers_exact_then_longest_pattern_then_default() {
        let mut config = Config::default();
        config
            .upstreams
            .insert("exact".into(), upstream("http://127.0.0.1:1", &["a.b.Svc"]));
        config
            .upstreams
            .insert("short".into(), upstream("http://127.0.0.1:2", &["a.*"]));
        config
            .upstreams
            .insert("long".into(), upstream("http://127.0.0.1:3", &["a.b.*"]));
        config
            .upstreams
            .insert("fallback".into(), upstream("http://127.0.0.1:4", &[]));
        assert_eq!(config.upstream_for("a.b.Svc"), Some("exact"));
        assert_eq!(config.upstream_for("a.b.Other"), Some("long"));
        assert_eq!(config.upstream_for("a.c.Other"), Some("short"));
        assert_eq!(config.upstream_for("z.Other"), Some("fallback"));
    }

    #[test]
    fn upstream_for_is_none_without_a_default() {
        let mut config = Config::default();
        config
            .upstreams
            .insert("only".into(), upstream("http://127.0.0.1:1", &["a.Svc"]));
        assert_eq!(config.upstream_for("b.Svc"), None);
    }

    #[test]
    fn star_pattern_loses_to_any_package_pattern() {
        let mut config = Config::default();
        config
            .upstreams
            .insert("all".into(), upstream("http://127.0.0.1:1", &["*"]));
        config
            .upstreams
            .insert("pkg".into(), upstream("http://127.0.0.1:2", &["a.*"]));
        assert_eq!(config.upstream_for("a.Svc"), Some("pkg"));
        assert_eq!(config.upstream_for("b.Svc"), Some("all"));
    }

    #[test]
    fn the_most_specific_pattern_scores_highest() {
        let s = |p| super::method_score(p, "shop.v1.Books", "Get");
        assert!(s("shop.v1.Books/Get") > s("shop.v1.Books/*"));
        assert_eq!(s("shop.v1.Books/*"), s("shop.v1.Books"));
        assert!(s("shop.v1.Books") > s("shop.v1.*"));
        assert!(s("shop.v1.*") > s("shop.*"));
        assert!(s("shop.*") > s("*"));
        assert_eq!(s("shop.v1.Books/List"), 0);
    }

    #[test]
    fn patterns_take_what_they_name() {
        let m = |p| super::method_covers(p, "shop.v1.Books", "Get");
        assert!(m("*"));
        assert!(m("shop.*"));
        assert!(m("shop.v1.*"));
        assert!(m("shop.v1.Books"));
        assert!(m("shop.v1.Books/*"));
        assert!(m("shop.v1.Books/Get"));
        assert!(!m("shop.v1.Books/List"));
        assert!(!m("shop.v1.Book"));
        assert!(!m("other.*"));
    }

    #[test]
    fn patterns_cover_methods_like_services_do() {
        assert!(super::method_covers("*", "a.v1.S", "M"));
        assert!(super::method_covers("a.*", "a.v1.S", "M"));
        assert!(super::method_covers("a.v1.S", "a.v1.S", "M"));
        assert!(super::method_covers("a.v1.S/*", "a.v1.S", "M"));
        assert!(super::method_covers("a.v1.S/M", "a.v1.S", "M"));
        assert!(!super::method_covers("a.v1.S/N", "a.v1.S", "M"));
        assert!(!super::method_covers("b.*", "a.v1.S", "M"));
        assert!(!super::method_covers("a.v1.S", "a.v1.St", "M"));
        // `pkg.*/*`, which rate limits take: every method of those services.
        assert!(super::method_covers("a.*/*", "a.v1.S", "M"));
    }
}
