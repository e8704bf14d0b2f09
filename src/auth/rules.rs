//! Which calls need a token: `methods` minus `allow_unauthenticated`,
//! resolved when a snapshot is built for every route (by index) and every
//! method the descriptors have (by gRPC path); other gRPC paths, passed
//! through without descriptors, are matched against the patterns.

use std::collections::HashMap;

use prost_reflect::DescriptorPool;

use crate::route::RouteTable;

use super::config::AuthConfig;

/// Whether `pattern` takes `service`'s `method`: `*`, `pkg.*` and
/// `pkg.Service` as in `upstreams.*.services`, `pkg.Service/*` and
/// `pkg.Service/Method`.
fn matches(pattern: &str, service: &str, method: &str) -> bool {
    match pattern.split_once('/') {
        Some((svc, "*")) => svc == service,
        Some((svc, m)) => svc == service && m == method,
        None => crate::config::service_score(pattern, service) > 0,
    }
}

/// The patterns of `methods` and `allow_unauthenticated`.
#[derive(Debug)]
pub(crate) struct Rules {
    methods: Box<[Box<str>]>,
    open: Box<[Box<str>]>,
    /// By route index.
    by_route: Box<[bool]>,
    /// By gRPC path (`/pkg.Service/Method`).
    by_path: HashMap<Box<str>, bool>,
}

impl Rules {
    /// Resolves `config`'s patterns for `routes` and the methods of
    /// `pool`, warning about patterns that take none of them.
    pub(crate) fn build(config: &AuthConfig, routes: &RouteTable, pool: &DescriptorPool) -> Rules {
        let boxed = |list: &[String]| list.iter().map(|p| p.as_str().into()).collect();
        let mut rules = Rules {
            methods: boxed(&config.methods),
            open: boxed(&config.allow_unauthenticated),
            by_route: Box::default(),
            by_path: HashMap::new(),
        };
        rules.by_route = routes
            .routes()
            .iter()
            .map(|route| rules.needs(&route.rpc.name))
            .collect();
        for service in pool.services() {
            for method in service.methods() {
                let name = format!("{}/{}", service.full_name(), method.name());
                let needed = rules.needs(&name);
                rules.by_path.insert(format!("/{name}").into(), needed);
            }
        }
        for (key, patterns) in [
            ("auth.methods", &rules.methods),
            ("auth.allow_unauthenticated", &rules.open),
        ] {
            for pattern in patterns.iter().filter(|p| &***p != "*") {
                // The gateway's own services are not in the descriptors.
                let own =
                    pattern.starts_with("grpc.health.") || pattern.starts_with("grpc.reflection.");
                let known = pool.services().any(|s| {
                    s.methods()
                        .any(|m| matches(pattern, s.full_name(), m.name()))
                });
                if !known && !own {
                    tracing::warn!(setting = key, %pattern, "Auth pattern names no method the descriptors have");
                }
            }
        }
        rules
    }

    /// Whether `name` (`pkg.Service/Method`) needs a token.
    fn needs(&self, name: &str) -> bool {
        let (service, method) = name.split_once('/').unwrap_or((name, ""));
        let take = |p: &str| matches(p, service, method);
        self.methods.iter().any(|p| take(p)) && !self.open.iter().any(|p| take(p))
    }

    /// Whether calls on route `route` need a token.
    pub(crate) fn route(&self, route: usize) -> bool {
        self.by_route.get(route).copied().unwrap_or(true)
    }

    /// Whether calls to a gRPC `path` (`/pkg.Service/Method`) need a
    /// token.
    pub(crate) fn path(&self, path: &str) -> bool {
        match self.by_path.get(path) {
            Some(needed) => *needed,
            None => self.needs(path.strip_prefix('/').unwrap_or(path)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn patterns_take_what_they_name() {
        let m = |p| matches(p, "shop.v1.Books", "Get");
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
}
