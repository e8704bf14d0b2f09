//! The test descriptors of the direct transcoders and the encoder, loaded
//! once: the wire and encode test types, the kitchen sink, the bench
//! service, etcd's KV requests and the `Any` holders, with the bundled
//! well-known types.

use std::path::PathBuf;
use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, MessageDescriptor};

pub(crate) fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let protos = root.join("tests/protos");
        crate::descriptor::load(&crate::descriptor::Sources {
            protos: vec![
                protos.join("wire/v1/wire.proto"),
                protos.join("wire/v1/legacy.proto"),
                protos.join("encode/v1/proto2.proto"),
                protos.join("encode/v1/proto3.proto"),
                protos.join("kitchen/v1/kitchen.proto"),
                protos.join("etcd/rpc.proto"),
                protos.join("anys/v1/anys.proto"),
                protos.join("anys/v1/grouped.proto"),
                root.join("proto/protogate/bench/v1/bench.proto"),
            ],
            include_paths: vec![protos, root.join("proto")],
            ..Default::default()
        })
        .expect("test protos load")
    })
}

/// The message type `name`; a name without a package is in `wire.v1`.
pub(crate) fn descriptor(name: &str) -> MessageDescriptor {
    let full = if name.contains('.') {
        name.to_owned()
    } else {
        format!("wire.v1.{name}")
    };
    pool()
        .get_message_by_name(&full)
        .unwrap_or_else(|| panic!("no message {full}"))
}
