//! Conformance of protogate's REST mapping, organised by spec section.
//!
//! Each test cites the rule it checks: `google/api/http.proto` (the
//! routing baseline), the proto3 JSON mapping, `DECISIONS.md` (where the
//! spec leaves room) or RFC 9110. Tests named `hcNN_neighbour_*` cover
//! inputs of the same class of fault as the real-world case `tests/cases/
//! HC-NN`. Everything runs against real parts on 127.0.0.1: the tonic echo
//! backend and the gateway under test, with
//! `tests/protos/kitchen/v1/kitchen.proto`.
//!
//! A test marked `#[ignore = "bug: ..."]` shows a gateway bug that is not
//! fixed yet; it states what should happen.

mod support;

#[path = "conformance/fixture.rs"]
mod fixture;

#[path = "conformance/path.rs"]
mod path;

#[path = "conformance/query.rs"]
mod query;

#[path = "conformance/body.rs"]
mod body;

#[path = "conformance/json.rs"]
mod json;

#[path = "conformance/numbers.rs"]
mod numbers;

#[path = "conformance/errors.rs"]
mod errors;

#[path = "conformance/limits.rs"]
mod limits;

#[path = "conformance/metadata.rs"]
mod metadata;
