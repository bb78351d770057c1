//! Property tests for the framer: chunking never changes what comes out, and nothing grows without bound.

use std::time::Instant;

use proptest::prelude::*;
use shared::frame::{Frame, Framer};

const TELEGRAMS: [&[u8]; 3] = [
    b"/ISK5\\2M550T-1012\r\n\r\n1-0:1.8.1(001581.123*kWh)\r\n1-0:1.7.0(02.027*kW)\r\n!ABCD\r\n",
    b"/KFM5KAIFA-METER\r\n\r\n1-0:1.7.0(00.424*kW)\r\n!0F1\r\n",
    b"/KMP5 KA6U001585575011\r\n\r\n0-1:24.3.0(090212160000)(00)(60)(1)(0-1:24.2.1)(m3)\r\n(00001.001)\r\n!\r\n",
];

/// A stream piece: a telegram, a cut-off telegram, or noise.
fn piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (0..TELEGRAMS.len()).prop_map(|i| TELEGRAMS[i].to_vec()),
        (0..TELEGRAMS.len(), 1usize..40).prop_map(|(i, cut)| TELEGRAMS[i][..cut.min(TELEGRAMS[i].len() - 1)].to_vec()),
        proptest::collection::vec(any::<u8>(), 0..64),
        Just(vec![0u8; 32]),
        Just(vec![0xFF; 16]),
        // An encrypted frame, whole or cut off, and a lone 0xDB.
        Just(shared::dlms::encrypt(&[1; 16], &[2; 16], *b"SAG12345", 1, TELEGRAMS[0])),
        (1usize..60)
            .prop_map(|cut| shared::dlms::encrypt(&[1; 16], &[2; 16], *b"SAG12345", 2, TELEGRAMS[1])[..cut].to_vec()),
        Just(vec![0xDB]),
    ]
}

fn frames(input: &[u8], cuts: &[usize], now: Instant) -> Vec<Frame> {
    let mut framer = Framer::with_max_len(1024);
    let mut out = Vec::new();
    let mut start = 0;
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    points.sort_unstable();
    points.push(input.len());
    for end in points {
        framer.push(&input[start..end], now);
        start = end;
        while let Some(f) = framer.next_frame() {
            out.push(f);
        }
    }
    out
}

/// Frames with adjacent discards of the same reason merged: how noise is split into events may depend on chunking,
/// but which bytes are skipped, and why, may not.
fn normalised(frames: Vec<Frame>) -> Vec<Frame> {
    let mut out: Vec<Frame> = Vec::new();
    for f in frames {
        if let (Some(Frame::Discarded { len: l0, reason: r0 }), Frame::Discarded { len, reason }) = (out.last_mut(), &f)
        {
            if r0 == reason {
                *l0 += len;
                continue;
            }
        }
        out.push(f);
    }
    out
}

proptest! {
    #[test]
    fn any_chunking_yields_the_same_frames(
        pieces in proptest::collection::vec(piece(), 0..12),
        cuts in proptest::collection::vec(any::<usize>(), 0..24),
    ) {
        let input = pieces.concat();
        let now = Instant::now();
        let whole = normalised(frames(&input, &[], now));
        let chunked = normalised(frames(&input, &cuts, now));
        prop_assert_eq!(&whole, &chunked);
        let bytes_out: usize = whole.iter().map(|f| match f {
            Frame::Telegram(r) | Frame::Encrypted(r) => r.bytes.len(),
            Frame::Discarded { len, .. } => *len,
        }).sum();
        // Every byte is accounted for except an unfinished frame still waiting at the end.
        prop_assert!(bytes_out <= input.len());
        for t in TELEGRAMS {
            let sent = input.windows(t.len()).filter(|w| *w == t).count();
            let got = whole.iter().filter(|f| matches!(f, Frame::Telegram(r) if &r.bytes[..] == t)).count();
            // A whole telegram is only lost when the noise right before it opened a frame that swallowed it.
            prop_assert!(got <= sent);
        }
    }

    #[test]
    fn memory_is_bounded_whatever_comes_in(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..512), 0..64)) {
        let mut framer = Framer::with_max_len(1024);
        let now = Instant::now();
        for c in &chunks {
            framer.push(c, now);
            while framer.next_frame().is_some() {}
            prop_assert!(framer.buffered() <= 1024 + 512);
        }
    }
}
