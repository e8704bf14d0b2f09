//! The JSON policy: one set of options shared by request parsing, response
//! writing and error bodies, so they never disagree.

use prost_reflect::{DescriptorPool, DeserializeOptions, SerializeOptions};
use serde::Deserialize;

/// JSON options from config (`json:`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JsonOptions {
    /// Write proto field names (`page_size`) instead of lowerCamelCase.
    pub use_proto_names: bool,
    /// Write fields that hold their default value.
    pub emit_unpopulated: bool,
    /// Write enums as numbers instead of names.
    pub enums_as_ints: bool,
    /// Accept (and drop) unknown fields in request bodies instead of 400.
    pub ignore_unknown_fields: bool,
    /// Deepest nesting of objects and arrays accepted in a request body.
    pub max_depth: usize,
    /// Match enum names in requests (body, path, query) ignoring ASCII case
    /// when no exact match exists.
    pub case_insensitive_enums: bool,
    /// Match field names in requests (body and query) ignoring ASCII case
    /// when no exact match exists.
    pub case_insensitive_fields: bool,
}

impl Default for JsonOptions {
    fn default() -> Self {
        JsonOptions {
            use_proto_names: false,
            emit_unpopulated: false,
            enums_as_ints: false,
            ignore_unknown_fields: false,
            max_depth: 64,
            case_insensitive_enums: false,
            case_insensitive_fields: false,
        }
    }
}

/// What to do with query parameters that name no field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownParams {
    /// Answer 400.
    #[default]
    Reject,
    /// Drop them.
    Ignore,
}

/// The compiled policy the hot path uses.
#[derive(Debug, Clone)]
pub struct Codec {
    /// Output options.
    pub serialize: SerializeOptions,
    /// Whether output uses proto field names.
    pub use_proto_names: bool,
    /// Whether output writes fields that hold their default value.
    ///
    /// This and the other output flags repeat what `serialize` says, for
    /// the direct response writer, which cannot read `SerializeOptions`;
    /// [`Codec::new`] sets both from one `JsonOptions`, so they agree.
    pub emit_unpopulated: bool,
    /// Whether output writes enums as numbers.
    pub enums_as_ints: bool,
    /// Input options.
    pub deserialize: DeserializeOptions,
    /// Whether request bodies may hold unknown fields (dropped) and unknown
    /// enum names (leaving the field unset). `deserialize` says the same to
    /// prost-reflect; this is for the direct request encoder, which cannot
    /// read `DeserializeOptions`.
    pub ignore_unknown_fields: bool,
    /// Deepest accepted nesting of request JSON.
    pub max_depth: usize,
    /// Unknown query parameters.
    pub unknown_params: UnknownParams,
    /// Most query parameters accepted in one request.
    pub max_query_params: usize,
    /// Enum names match ignoring ASCII case.
    pub case_insensitive_enums: bool,
    /// Field names match ignoring ASCII case.
    pub case_insensitive_fields: bool,
    /// Whether a message of the descriptors has a field whose JSON name is
    /// more than its proto name in another case (`json_name = "foo"` for
    /// `bar`). The key check sees two spellings of one field only when
    /// they differ in case and underscores; with such a field, bodies the
    /// reflective path parses are checked against the descriptors too, or
    /// `{"bar": 1, "foo": 2}` would keep the last silently. Set by
    /// [`Codec::for_pool`].
    pub renamed_fields: bool,
}

impl Codec {
    /// Compiles the policy.
    pub fn new(
        json: &JsonOptions,
        unknown_params: UnknownParams,
        max_query_params: usize,
    ) -> Codec {
        Codec {
            serialize: SerializeOptions::new()
                .use_proto_field_name(json.use_proto_names)
                .skip_default_fields(!json.emit_unpopulated)
                .use_enum_numbers(json.enums_as_ints)
                .stringify_64_bit_integers(true),
            use_proto_names: json.use_proto_names,
            emit_unpopulated: json.emit_unpopulated,
            enums_as_ints: json.enums_as_ints,
            deserialize: DeserializeOptions::new().deny_unknown_fields(!json.ignore_unknown_fields),
            ignore_unknown_fields: json.ignore_unknown_fields,
            // serde_json refuses to nest deeper than 128 by itself.
            max_depth: json.max_depth.min(127),
            unknown_params,
            max_query_params,
            case_insensitive_enums: json.case_insensitive_enums,
            case_insensitive_fields: json.case_insensitive_fields,
            renamed_fields: false,
        }
    }

    /// This policy for the messages of `pool` (see
    /// [`Codec::renamed_fields`]).
    pub fn for_pool(mut self, pool: &DescriptorPool) -> Codec {
        self.renamed_fields = pool.all_messages().any(|message| {
            message
                .fields()
                .any(|field| !super::strict::same_loosely(field.name(), field.json_name()))
        });
        self
    }
}

impl Default for Codec {
    fn default() -> Self {
        Codec::new(&JsonOptions::default(), UnknownParams::Reject, 256)
    }
}
