//! A tonic codec for already-encoded messages: the gateway encodes and
//! decodes protobuf itself (with dynamic descriptors), so tonic moves bytes.

use bytes::{Buf, BufMut, Bytes};
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// Passes encoded protobuf messages through unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// A message the gateway sends on a call, or the order to cancel it.
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// An encoded request message.
    Message(Bytes),
    /// Cancel the call: the request stream fails instead of ending, so
    /// the backend sees a reset, never a clean half-close.
    Cancel,
}

/// The client side's codec: [`Outgoing`] messages out, encoded ones in.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallCodec;

impl Codec for CallCodec {
    type Encode = Outgoing;
    type Decode = Bytes;
    type Encoder = CallCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> CallCodec {
        CallCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for CallCodec {
    type Item = Outgoing;
    type Error = Status;

    fn encode(&mut self, item: Outgoing, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        match item {
            Outgoing::Message(bytes) => {
                dst.put(bytes);
                Ok(())
            }
            Outgoing::Cancel => Err(Status::cancelled("the gateway cancelled the call")),
        }
    }
}
