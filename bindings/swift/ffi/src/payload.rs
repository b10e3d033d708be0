//! Message payloads across the boundary with one copy each way.
//!
//! uniffi moves a `Vec<u8>` element by element: a length, then a push per
//! byte going out and a read and push per byte coming in. A [`Payload`]
//! crosses as the same type (`Data` in Swift, whose generated converter
//! reads and writes it as for a `Vec<u8>`: a big-endian `i32` length, then
//! the bytes), so the Swift side does not change, but the library writes
//! and reads the bytes as one slice.

use bytes::{Buf, BufMut, Bytes};
use uniffi::{FfiConverter, MetadataBuffer, TypeId};

/// Bytes that cross as a Swift `Data`.
#[derive(Debug, Clone)]
pub struct Payload(pub Bytes);

impl From<Payload> for Bytes {
    fn from(p: Payload) -> Self {
        p.0
    }
}

impl From<Vec<u8>> for Payload {
    fn from(v: Vec<u8>) -> Self {
        Self(v.into())
    }
}

impl From<Bytes> for Payload {
    fn from(b: Bytes) -> Self {
        Self(b)
    }
}

// SAFETY: the layout written and read is uniffi's own for a `Vec<u8>` (an
// `i32` length, big-endian, then the bytes), and the type's metadata is
// `Vec<u8>`'s, so the foreign side reads and writes it with the converter it
// has for that type.
unsafe impl FfiConverter<crate::UniFfiTag> for Payload {
    uniffi::ffi_converter_rust_buffer_lift_and_lower!(crate::UniFfiTag);

    fn write(obj: Self, buf: &mut Vec<u8>) {
        // uniffi limits a sequence to `i32::MAX` items, as here: a payload
        // is far smaller (the server's largest message is 64 MiB).
        let len = i32::try_from(obj.0.len()).expect("a payload below 2 GiB");
        buf.reserve(4 + obj.0.len());
        buf.put_i32(len);
        buf.put_slice(&obj.0);
    }

    fn try_read(buf: &mut &[u8]) -> uniffi::Result<Self> {
        if buf.remaining() < 4 {
            uniffi::deps::anyhow::bail!("a payload's length is cut short");
        }
        let len = usize::try_from(buf.get_i32())?;
        if buf.remaining() < len {
            uniffi::deps::anyhow::bail!("a payload of {len} bytes is cut short");
        }
        let bytes = Bytes::copy_from_slice(&buf[..len]);
        buf.advance(len);
        Ok(Self(bytes))
    }

    const TYPE_ID_META: MetadataBuffer = <Vec<u8> as TypeId<crate::UniFfiTag>>::TYPE_ID_META;
}

uniffi::derive_ffi_traits!(local Payload);

#[cfg(test)]
mod tests {
    use super::*;
    use uniffi::{Lift, Lower};

    type Tag = crate::UniFfiTag;

    #[test]
    fn crosses_as_a_vec_of_bytes_does() {
        let bytes: Vec<u8> = (0..=255).cycle().take(4100).collect();
        let ours = <Payload as Lower<Tag>>::lower(Payload(bytes.clone().into()));
        let theirs = <Vec<u8> as Lower<Tag>>::lower(bytes.clone());
        assert_eq!(ours.destroy_into_vec(), theirs.destroy_into_vec());
        let back = <Payload as Lift<Tag>>::try_lift(<Vec<u8> as Lower<Tag>>::lower(bytes.clone()))
            .expect("lifted");
        assert_eq!(back.0.as_ref(), bytes.as_slice());
        assert_eq!(
            <Payload as TypeId<Tag>>::TYPE_ID_META.as_ref(),
            <Vec<u8> as TypeId<Tag>>::TYPE_ID_META.as_ref()
        );
    }

    #[test]
    fn a_short_buffer_is_refused() {
        let mut cut: &[u8] = &[0, 0, 0, 9, 1, 2];
        assert!(<Payload as FfiConverter<Tag>>::try_read(&mut cut).is_err());
        let mut empty: &[u8] = &[0, 0];
        assert!(<Payload as FfiConverter<Tag>>::try_read(&mut empty).is_err());
    }
}
