//! Receipts as the Swift facade decodes them in `Receipts.swift`. A receipt
//! returned as a uniffi record is read field by field through the generated
//! reader, whose generic integer reads took 17 % of a per-message
//! producer's samples.
//!
//! A batch's receipts cross packed into bytes (one buffer per chunk).
//! Layout (integers little-endian): the station's length (u32) and bytes
//! once, then per receipt its partition (u32), sequence (u64), duplicate
//! flag (u8, 1 or 0), message id length (u32) and bytes. No receipt: empty.
//!
//! One message's receipt crosses as text ([`text`]): Swift reads bytes
//! back through the same generated reader (a generic integer read for the
//! length, then copies into a new array and a new `Data`), which cost more
//! than a whole receipt's other work, where a text is lifted from the
//! library's buffer in one copy.

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

/// One receipt as text: its partition, sequence, duplicate flag (`1` or
/// `0`), station and message id, separated by single spaces. A station's
/// name has no space (see `jetstation::names`) and the id comes last, so
/// an id may hold spaces. No receipt: empty.
pub(crate) fn text(receipt: &jetstation::Receipt) -> String {
    let (mut partition, mut sequence) = (itoa::Buffer::new(), itoa::Buffer::new());
    let partition = partition.format(receipt.partition);
    let sequence = sequence.format(receipt.sequence);
    let duplicate = if receipt.duplicate { "1" } else { "0" };
    let parts = [
        partition,
        sequence,
        duplicate,
        receipt.station.as_str(),
        receipt.msg_id.as_str(),
    ];
    let mut out = String::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(part);
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

    #[test]
    fn one_receipt_as_text_keeps_the_spaces_of_its_id() {
        let receipt = jetstation::Receipt {
            station: "orders".into(),
            partition: 3,
            sequence: 1 << 40,
            duplicate: true,
            msg_id: "order 17 é".into(),
        };
        assert_eq!(text(&receipt), "3 1099511627776 1 orders order 17 é");
    }
}
