//! Compiled route matching: a trie over template segments.
//!
//! Matching walks the raw (normalised) request path segment by segment. At
//! each node it tries a literal child (one hash lookup), then `*`, then `**`
//! (longest first), backtracking on failure, so the cost depends on the
//! path, not on how many routes are loaded. That order is the precedence
//! rule: a literal beats a variable and `*` beats `**`.
//!
//! A template with a verb matches only when the last path segment ends in
//! `:verb`; the path is tried that way first, then as plain segments, so an
//! unknown verb stays part of the last segment.

use std::collections::HashMap;

use http::Method;

use super::template::{Segment, Template};

/// Index of a route in the route table.
pub type RouteId = usize;

/// A trie of templates.
#[derive(Debug, Default)]
pub struct Matcher {
    nodes: Vec<Node>,
}

#[derive(Debug, Default)]
struct Node {
    literals: HashMap<Box<str>, usize>,
    single: Option<usize>,
    multi: Option<usize>,
    /// Routes ending here without a verb.
    plain: Vec<(Method, RouteId)>,
    /// Routes ending here with a verb.
    verbs: HashMap<Box<str>, Vec<(Method, RouteId)>>,
}

/// A successful match.
#[derive(Debug, Clone)]
pub struct Found {
    /// The matched route.
    pub route: RouteId,
    /// Byte ranges of the path segments the match used (the last one
    /// without its `:verb`).
    segments: Vec<(usize, usize)>,
    /// `bounds[d]`: index into `segments` where template segment `d` starts;
    /// one entry more than the template has segments.
    bounds: Vec<usize>,
}

impl Found {
    /// The raw text covered by template segments `start..end` (a variable).
    pub fn capture<'p>(&self, path: &'p str, start: usize, end: usize) -> &'p str {
        let (first, last) = (self.bounds[start], self.bounds[end]);
        if first == last {
            return "";
        }
        &path[self.segments[first].0..self.segments[last - 1].1]
    }
}

/// Why nothing matched.
#[derive(Debug, PartialEq, Eq)]
pub enum Miss {
    /// No template matches the path.
    NotFound,
    /// Templates match the path, but not with this HTTP method.
    MethodNotAllowed(Vec<Method>),
}

impl Matcher {
    /// An empty matcher.
    pub fn new() -> Matcher {
        Matcher {
            nodes: vec![Node::default()],
        }
    }

    /// Adds a route. Returns the id of the route already bound to the same
    /// method and template shape, if any (the new route is then not added).
    pub fn insert(
        &mut self,
        method: Method,
        template: &Template,
        id: RouteId,
    ) -> Result<(), RouteId> {
        let mut node = 0;
        for segment in &template.segments {
            node = self.child(node, segment);
        }
        let node = &mut self.nodes[node];
        let endpoints = match &template.verb {
            // Kept as a path writes it, like a literal segment.
            Some(verb) => node
                .verbs
                .entry(super::path::encode_literal(verb).into())
                .or_default(),
            None => &mut node.plain,
        };
        if let Some((_, existing)) = endpoints.iter().find(|(m, _)| *m == method) {
            return Err(*existing);
        }
        endpoints.push((method, id));
        Ok(())
    }

    fn child(&mut self, node: usize, segment: &Segment) -> usize {
        let next = self.nodes.len();
        let slot = match segment {
            Segment::Literal(text) => {
                let literal = super::path::encode_literal(text);
                *self.nodes[node]
                    .literals
                    .entry(literal.into())
                    .or_insert(next)
            }
            Segment::Single => *self.nodes[node].single.get_or_insert(next),
            Segment::Multi => *self.nodes[node].multi.get_or_insert(next),
        };
        if slot == next {
            self.nodes.push(Node::default());
        }
        slot
    }

    /// Finds the route for `method` and a normalised raw `path` (see
    /// [`super::path::normalize`]).
    pub fn find(&self, method: &Method, path: &str) -> Result<Found, Miss> {
        let Some(rest) = path.strip_prefix('/') else {
            return Err(Miss::NotFound);
        };
        let mut segments = Vec::with_capacity(8);
        let mut start = 1;
        for part in rest.split('/') {
            segments.push((start, start + part.len()));
            start += part.len() + 1;
        }
        let mut allowed = Vec::new();
        let mut bounds = Vec::with_capacity(segments.len() + 1);

        // With a verb: the last segment split at its last `:`.
        let (last_start, last_end) = segments[segments.len() - 1];
        if let Some(colon) = path[last_start..last_end].rfind(':') {
            let verb = &path[last_start + colon + 1..last_end];
            let mut verb_segments = segments.clone();
            let last = verb_segments.len() - 1;
            verb_segments[last].1 = last_start + colon;
            let mut search = Search {
                matcher: self,
                path,
                segments: &verb_segments,
                bounds: &mut bounds,
                method,
                verb: Some(verb),
                allowed: &mut allowed,
            };
            if let Some(route) = search.walk(0, 0) {
                return Ok(Found {
                    route,
                    segments: verb_segments,
                    bounds,
                });
            }
            bounds.clear();
        }

        let mut search = Search {
            matcher: self,
            path,
            segments: &segments,
            bounds: &mut bounds,
            method,
            verb: None,
            allowed: &mut allowed,
        };
        if let Some(route) = search.walk(0, 0) {
            return Ok(Found {
                route,
                segments,
                bounds,
            });
        }
        if allowed.is_empty() {
            Err(Miss::NotFound)
        } else {
            Err(Miss::MethodNotAllowed(allowed))
        }
    }
}

struct Search<'a> {
    matcher: &'a Matcher,
    path: &'a str,
    segments: &'a [(usize, usize)],
    bounds: &'a mut Vec<usize>,
    method: &'a Method,
    verb: Option<&'a str>,
    allowed: &'a mut Vec<Method>,
}

impl Search<'_> {
    fn text(&self, i: usize) -> &str {
        let (start, end) = self.segments[i];
        &self.path[start..end]
    }

    /// Depth-first search from `node` with path segment `i` next.
    fn walk(&mut self, node: usize, i: usize) -> Option<RouteId> {
        let matcher = self.matcher;
        let node_ref = &matcher.nodes[node];
        self.bounds.push(i);
        if i == self.segments.len() {
            if let Some(route) = self.terminal(node_ref) {
                return Some(route);
            }
        } else if !self.text(i).is_empty() {
            let text = self.text(i);
            let literal = node_ref.literals.get(text).or_else(|| {
                let form = super::path::literal_form(text)?;
                node_ref.literals.get(form.as_str())
            });
            if let Some(&child) = literal
                && let Some(route) = self.walk(child, i + 1)
            {
                return Some(route);
            }
            if let Some(child) = node_ref.single
                && let Some(route) = self.walk(child, i + 1)
            {
                return Some(route);
            }
        }
        if let Some(child) = node_ref.multi {
            let mut end = i;
            while end < self.segments.len() && !self.text(end).is_empty() {
                end += 1;
            }
            for stop in (i..=end).rev() {
                if let Some(route) = self.walk(child, stop) {
                    return Some(route);
                }
            }
        }
        self.bounds.pop();
        None
    }

    fn terminal(&mut self, node: &Node) -> Option<RouteId> {
        let endpoints = match self.verb {
            Some(verb) => match node.verbs.get(verb) {
                Some(endpoints) => endpoints,
                None => node.verbs.get(super::path::literal_form(verb)?.as_str())?,
            },
            None => &node.plain,
        };
        for (method, route) in endpoints {
            if method == self.method {
                return Some(*route);
            }
            if !self.allowed.contains(method) {
                self.allowed.push(method.clone());
            }
        }
        None
    }
}

#[cfg(test)]
mod tests;
