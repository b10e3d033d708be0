//! Receipts packed into bytes for the Swift facade, which decodes them in
//! `Receipts.swift`. A receipt returned as a uniffi record is read field by
//! field through the generated reader, whose generic integer reads took
//! 17 % of a per-message producer's samples; bytes cross as one buffer.
//!
//! Layout (integers little-endian): the station's length (u32) and bytes
//! once, then per receipt its partition (u32), sequence (u64), duplicate
//! flag (u8, 1 or 0), message id length (u32) and bytes. No receipt: empty.

/// Packs receipts of one station in order.
pub(crate) fn pack(receipts: &[jetstation::Receipt]) -> Vec<u8> {
    let Some(first) = receipts.first() else {
        return Vec::new();
    };
    let size =
        4 + first.station.len() + receipts.iter().map(|r| 17 + r.msg_id.len()).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&length(&first.station));
    out.extend_from_slice(first.station.as_bytes());
    for r in receipts {
        out.extend_from_slice(&r.partition.to_le_bytes());
        out.extend_from_slice(&r.sequence.to_le_bytes());
        out.push(u8::from(r.duplicate));
        out.extend_from_slice(&length(&r.msg_id));
        out.extend_from_slice(r.msg_id.as_bytes());
    }
    out
}

/// A text's length in bytes as four bytes (a name or id is far shorter
/// than 4 GiB: the server's largest message is 64 MiB).
fn length(text: &str) -> [u8; 4] {
    u32::try_from(text.len()).unwrap_or(u32::MAX).to_le_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_the_station_once_and_every_receipt_in_order() {
        let receipt = |partition, sequence, duplicate, msg_id: &str| jetstation::Receipt {
            station: "orders".into(),
            partition,
            sequence,
            duplicate,
            msg_id: msg_id.into(),
        };
        let packed = pack(&[receipt(2, 1 << 40, false, "a-1"), receipt(0, 7, true, "é")]);
        let mut expected = vec![6, 0, 0, 0];
        expected.extend_from_slice(b"orders");
        expected.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0]);
        expected.extend_from_slice(b"a-1");
        expected.extend_from_slice(&[0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0]);
        expected.extend_from_slice("é".as_bytes());
        assert_eq!(packed, expected);
        assert!(pack(&[]).is_empty());
    }
}
