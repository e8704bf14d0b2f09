//! Request bodies: `body: "*"`, `body: "field"` of every shape, HttpBody
//! both ways, empty and null bodies, content types; and `response_body`.

#[path = "body/whole.rs"]
mod whole;

#[path = "body/field.rs"]
mod field;

#[path = "body/empty.rs"]
mod empty;

#[path = "body/content_type.rs"]
mod content_type;

#[path = "body/utf8.rs"]
mod utf8;

#[path = "body/http_body.rs"]
mod http_body;
