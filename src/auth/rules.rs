//! Which calls need a token: `methods` minus `allow_unauthenticated`,
//! resolved when a snapshot is built for every route (by index) and every
//! method the descriptors have (by gRPC path); other gRPC paths, passed
//! through without descriptors, are matched against the patterns. Proxied
//! route groups (by index in `routes:`) say for themselves, with their
//! `auth` and `scopes`.

use std::collections::HashMap;

use prost_reflect::DescriptorPool;

use crate::config::{GroupAuth, RouteGroupConfig, method_covers, method_score};
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
    /// A valid token holding every scope of the set at this index (see
    /// [`Rules::scope_set`]).
    Scopes(usize),
}

/// The patterns of `methods`, `allow_unauthenticated` and `scopes`, and
/// what they resolve to.
#[derive(Debug)]
pub(crate) struct Rules {
    methods: Names,
    open: Names,
    /// `auth.scopes`' patterns: calls the one at index `i` takes (the most
    /// specific that takes a call wins) need the scopes of `sets[i]`.
    scopes: Names,
    /// The scope sets [`Need::Scopes`] points at: `auth.scopes`' in
    /// order, then the route groups'.
    sets: Vec<Names>,
    /// By route index.
    by_route: Box<[Need]>,
    /// By gRPC path (`/pkg.Service/Method`).
    by_path: HashMap<Box<str>, Need>,
    /// By route group index (in `routes:`); gRPC groups' calls are judged
    /// by their method (`Need::Nothing` here, never asked).
    by_group: Box<[Need]>,
}

impl Rules {
    /// Resolves `config`'s patterns for `routes` and the methods of
    /// `pool`, and what each of `groups` asks, warning about patterns that
    /// take none of the methods.
    pub(crate) fn build(
        config: &AuthConfig,
        routes: &RouteTable,
        pool: &DescriptorPool,
        groups: &[RouteGroupConfig],
    ) -> Rules {
        let boxed = |list: &[String]| list.iter().map(|p| p.as_str().into()).collect();
        let mut rules = Rules {
            methods: boxed(&config.methods),
            open: boxed(&config.allow_unauthenticated),
            scopes: config.scopes.keys().map(|p| p.as_str().into()).collect(),
            sets: config.scopes.values().map(|s| boxed(s)).collect(),
            by_route: Box::default(),
            by_path: HashMap::new(),
            by_group: Box::default(),
        };
        rules.by_group = groups.iter().map(|g| rules.group_needs(g)).collect();
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
        // mistake, and it fails open (unless auth is there for proxied
        // groups alone, which then say so).
        if !rules.by_path.is_empty() && rules.by_path.values().all(|n| *n == Need::Nothing) {
            if rules.by_group.iter().any(|n| *n != Need::Nothing) {
                tracing::info!(
                    "No method needs a token (allow_unauthenticated covers every method auth.methods names); proxied route groups do"
                );
            } else {
                tracing::warn!(
                    "Auth is configured but no method needs a token: allow_unauthenticated covers every method auth.methods names"
                );
            }
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
            .map(|(index, pattern)| (index, method_score(pattern, service, method)))
            .filter(|(_, score)| *score > 0)
            .max_by_key(|(_, score)| *score);
        match best {
            Some((index, _)) => Need::Scopes(index),
            None => Need::Token,
        }
    }

    /// What requests under `group` need: a token unless it says `auth:
    /// none`, holding its `scopes` if it lists some (their set added to
    /// `sets`).
    fn group_needs(&mut self, group: &RouteGroupConfig) -> Need {
        if !group.is_http() || group.auth == Some(GroupAuth::None) {
            return Need::Nothing;
        }
        if group.scopes.is_empty() {
            return Need::Token;
        }
        self.sets
            .push(group.scopes.iter().map(|s| s.as_str().into()).collect());
        Need::Scopes(self.sets.len() - 1)
    }

    /// The scopes of [`Need::Scopes`]`(index)`.
    pub(crate) fn scope_set(&self, index: usize) -> &[Box<str>] {
        self.sets.get(index).map_or(&[], |set| set)
    }

    /// What requests under route group `group` (its index in `routes:`)
    /// need.
    pub(crate) fn group(&self, group: usize) -> Need {
        self.by_group.get(group).copied().unwrap_or(Need::Token)
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
