//! Which calls need a token: `methods` minus `allow_unauthenticated`,
//! resolved when a snapshot is built for every route (by index) and every
//! method the descriptors have (by gRPC path); other gRPC paths, passed
//! through without descriptors, are matched against the patterns.

use std::collections::HashMap;

use prost_reflect::DescriptorPool;

use crate::config::{method_covers, method_score};
use crate::route::RouteTable;

use super::config::AuthConfig;

/// A list of names (patterns, scopes), fixed once built.
type Names = Box<[Box<str>]>;

/// What a call must bring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    /// Nothing: no token is looked at.
    Nothing,
    /// A valid token.
    Token,
    /// A valid token holding every scope of the `auth.scopes` entry at
    /// this index (see [`Rules::scope_set`]).
    Scopes(usize),
}

/// The patterns of `methods`, `allow_unauthenticated` and `scopes`, and
/// what they resolve to.
#[derive(Debug)]
pub(crate) struct Rules {
    methods: Names,
    open: Names,
    /// `auth.scopes`: a pattern and the scopes calls it takes need (the
    /// most specific pattern that takes a call wins).
    scopes: Box<[(Box<str>, Names)]>,
    /// By route index.
    by_route: Box<[Need]>,
    /// By gRPC path (`/pkg.Service/Method`).
    by_path: HashMap<Box<str>, Need>,
}

impl Rules {
    /// Resolves `config`'s patterns for `routes` and the methods of
    /// `pool`, warning about patterns that take none of them.
    pub(crate) fn build(config: &AuthConfig, routes: &RouteTable, pool: &DescriptorPool) -> Rules {
        let boxed = |list: &[String]| list.iter().map(|p| p.as_str().into()).collect();
        let mut rules = Rules {
            methods: boxed(&config.methods),
            open: boxed(&config.allow_unauthenticated),
            scopes: config
                .scopes
                .iter()
                .map(|(pattern, scopes)| (pattern.as_str().into(), boxed(scopes)))
                .collect(),
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
        let scoped: Vec<&str> = config.scopes.keys().map(String::as_str).collect();
        let all: [(&str, Vec<&str>); 3] = [
            (
                "auth.methods",
                config.methods.iter().map(String::as_str).collect(),
            ),
            (
                "auth.allow_unauthenticated",
                config
                    .allow_unauthenticated
                    .iter()
                    .map(String::as_str)
                    .collect(),
            ),
            ("auth.scopes", scoped),
        ];
        for (key, patterns) in all {
            for pattern in patterns.into_iter().filter(|p| *p != "*") {
                // The gateway's own services are not in the descriptors.
                let own =
                    pattern.starts_with("grpc.health.") || pattern.starts_with("grpc.reflection.");
                let known = pool.services().any(|s| {
                    s.methods()
                        .any(|m| method_covers(pattern, s.full_name(), m.name()))
                });
                if !known && !own {
                    tracing::warn!(setting = key, %pattern, "Auth pattern names no method the descriptors have");
                }
            }
        }
        // `allow_unauthenticated` covering all of `methods`: likely a
        // mistake, and it fails open.
        if !rules.by_path.is_empty() && rules.by_path.values().all(|n| *n == Need::Nothing) {
            tracing::warn!(
                "Auth is configured but no method needs a token: allow_unauthenticated covers every method auth.methods names"
            );
        }
        rules
    }

    /// What `name` (`pkg.Service/Method`) needs.
    fn needs(&self, name: &str) -> Need {
        let (service, method) = name.split_once('/').unwrap_or((name, ""));
        let take = |p: &str| method_covers(p, service, method);
        if !self.methods.iter().any(|p| take(p)) || self.open.iter().any(|p| take(p)) {
            return Need::Nothing;
        }
        let best = self
            .scopes
            .iter()
            .enumerate()
            .map(|(index, (pattern, _))| (index, method_score(pattern, service, method)))
            .filter(|(_, score)| *score > 0)
            .max_by_key(|(_, score)| *score);
        match best {
            Some((index, _)) => Need::Scopes(index),
            None => Need::Token,
        }
    }

    /// The scopes of [`Need::Scopes`]`(index)`.
    pub(crate) fn scope_set(&self, index: usize) -> &[Box<str>] {
        self.scopes.get(index).map_or(&[], |(_, set)| set)
    }

    /// What calls on route `route` need.
    pub(crate) fn route(&self, route: usize) -> Need {
        self.by_route.get(route).copied().unwrap_or(Need::Token)
    }

    /// What calls to a gRPC `path` (`/pkg.Service/Method`) need; a path
    /// the descriptors do not have (a call passed through) is matched
    /// against the patterns.
    pub(crate) fn path(&self, path: &str) -> Need {
        match self.by_path.get(path) {
            Some(needed) => *needed,
            None => self.needs(path.strip_prefix('/').unwrap_or(path)),
        }
    }
}
