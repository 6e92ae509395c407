//! The pair heartbeat (`redundancy::heartbeat::decode`), an authenticated UDP datagram any host
//! on the network can send to the sync port. Two paths: the raw datagram (tag check first; a
//! forged tag must be rejected), and the same bytes as a body under a valid tag (what a peer
//! holding the key, or a bug in our encoder, can make us parse), then the conflict check.
//!
//! Oracle: nothing panics; a decoded beat re-encodes and decodes to itself.
#![no_main]
use libfuzzer_sys::fuzz_target;
use redundancy::config::Role;
use redundancy::heartbeat::{conflicts, decode, encode, InstanceInfo, MAX_DATAGRAM};

const KEY: &[u8] = b"fuzzing pre-shared key";

fuzz_target!(|data: &[u8]| {
    // Raw: without the key the tag cannot verify (HMAC-SHA256), so this only checks lengths.
    assert!(decode(KEY, data).is_err() || data.len() > 32);
    // Tagged body: compute the tag over the fuzzer's body the way `encode` does.
    let mut datagram = {
        use hmac_tag::tag;
        tag(KEY, data)
    };
    datagram.extend_from_slice(data);
    match decode(KEY, &datagram) {
        Ok(beat) => {
            let again = encode(KEY, &beat);
            if again.len() <= MAX_DATAGRAM {
                assert_eq!(decode(KEY, &again).as_ref(), Ok(&beat));
            }
            let mine = [InstanceInfo {
                name: "pbx".into(),
                vrid: 51,
                interval_ms: 1000,
                addresses: vec!["10.99.0.100/24".into()],
                state: "master".into(),
                priority: 200,
            }];
            let _ = conflicts("node-a", Role::Primary, &mine, &beat);
            // A datagram with one byte of the tag changed must not verify.
            let mut forged = datagram.clone();
            forged[0] ^= 1;
            assert!(decode(KEY, &forged).is_err());
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});

/// The heartbeat tag, computed like `heartbeat::encode` (HMAC-SHA256 over the body).
mod hmac_tag {
    use hmac::{KeyInit, Mac};
    pub fn tag(key: &[u8], body: &[u8]) -> Vec<u8> {
        let mut m = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key)
            .expect("HMAC takes any key length");
        m.update(body);
        m.finalize().into_bytes().to_vec()
    }
}
