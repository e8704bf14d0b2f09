//! Query parameters: every field kind, repeated keys, enums, bytes,
//! well-known types, wrappers, maps, repeated messages, oneofs, bound
//! fields, and unknown or ignored parameters.

#[path = "query/scalars.rs"]
mod scalars;

#[path = "query/well_known.rs"]
mod well_known;

#[path = "query/repeated.rs"]
mod repeated;

#[path = "query/names.rs"]
mod names;

#[path = "query/binding.rs"]
mod binding;

#[path = "query/encoding.rs"]
mod encoding;
