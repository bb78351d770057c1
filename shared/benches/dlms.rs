//! The cost of encrypted P1: recognising a frame and decrypting it (AES-128-GCM, tag check included), per frame.
//!
//! Run: `cargo bench -p p1hub-shared --bench dlms`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shared::dlms::{self, Decryptor, FrameStatus, SMARTY_AUTHENTICATION_KEY};

const KEY: [u8; 16] = *b"p1hub bench key!";
const TITLE: [u8; 8] = *b"SAG\x10\x00\x42\x19\x07";

/// A DSMR 5 three-phase telegram with gas (517 bytes): the size of a typical Smarty or T210-D telegram.
const T210: &[u8] = b"/Ene5\\T210-D ESMR5.0\r\n\r\n1-3:0.2.8(50)\r\n0-0:1.0.0(240701120000S)\r\n\
0-0:96.1.1(4530303632303030303134353236323139)\r\n1-0:1.8.1(004321.987*kWh)\r\n1-0:1.8.2(003210.876*kWh)\r\n\
1-0:2.8.1(000123.456*kWh)\r\n1-0:2.8.2(000234.567*kWh)\r\n0-0:96.14.0(0002)\r\n1-0:1.7.0(00.000*kW)\r\n\
1-0:2.7.0(02.345*kW)\r\n1-0:32.7.0(236.4*V)\r\n1-0:52.7.0(235.9*V)\r\n1-0:72.7.0(237.1*V)\r\n1-0:31.7.0(004*A)\r\n\
1-0:51.7.0(003*A)\r\n1-0:71.7.0(003*A)\r\n0-1:24.1.0(003)\r\n0-1:96.1.0(4730303339303031373030343231373137)\r\n\
0-1:24.2.1(240701115500S)(01234.567*m3)\r\n!2587\r\n";

fn decrypt(c: &mut Criterion) {
    let mut group = c.benchmark_group("dlms_decrypt");
    // The 1 KiB and 4 KiB plaintexts stand for long telegrams (Smarty with text messages, Belgian history);
    // GCM's cost depends only on the length.
    let long: Vec<u8> = T210.iter().copied().cycle().take(1024).collect();
    let longest: Vec<u8> = T210.iter().copied().cycle().take(4096).collect();
    for (name, plaintext) in [("517B", T210), ("1KiB", &long[..]), ("4KiB", &longest[..])] {
        let frame = dlms::encrypt(&KEY, &SMARTY_AUTHENTICATION_KEY, TITLE, 1, plaintext);
        let mut decryptor = Decryptor::new(&KEY, &SMARTY_AUTHENTICATION_KEY);
        assert_eq!(decryptor.decrypt(&frame).expect("authentic frame").plaintext, plaintext);
        group.throughput(Throughput::Elements(1));
        group.bench_function(name, |b| {
            // The same frame again is a replay: it is decrypted and authenticated all the same, which is what is timed.
            b.iter(|| decryptor.decrypt(black_box(&frame)).map(|d| d.plaintext.len()));
        });
    }
    let frame = dlms::encrypt(&KEY, &SMARTY_AUTHENTICATION_KEY, TITLE, 1, T210);
    let mut wrong = Decryptor::new(b"not the real key", &SMARTY_AUTHENTICATION_KEY);
    assert!(wrong.decrypt(&frame).is_err());
    group.bench_function("517B_wrong_key", |b| b.iter(|| wrong.decrypt(black_box(&frame)).is_err()));
    group.finish();

    let mut group = c.benchmark_group("dlms_setup");
    group.bench_function("frame_len", |b| b.iter(|| dlms::frame_len(black_box(&frame), 8192)));
    assert_eq!(dlms::frame_len(&frame, 8192), FrameStatus::Complete(frame.len()));
    group.bench_function("decryptor_new", |b| {
        b.iter(|| Decryptor::new(black_box(&KEY), black_box(&SMARTY_AUTHENTICATION_KEY)));
    });
    group.finish();
}

criterion_group!(benches, decrypt);
criterion_main!(benches);
