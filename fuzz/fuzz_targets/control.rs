//! The control socket's request parser (`redundancy::control`): the server reads one line of at
//! most `MAX_REQUEST` bytes and parses it as a JSON `Request`; the client parses the server's
//! JSON `Response`. Any bytes must parse or give an error, never a panic; whatever parses
//! re-serialises and parses to the same value.
#![no_main]
use libfuzzer_sys::fuzz_target;
use redundancy::control::{Request, Response, MAX_REQUEST};

fuzz_target!(|data: &[u8]| {
    // What the server hands to serde: up to the first newline, within MAX_REQUEST bytes.
    let limited = data.get(..data.len().min(MAX_REQUEST as usize)).unwrap_or(data);
    let line = match limited.iter().position(|&b| b == b'\n') {
        Some(i) => &limited[..=i],
        None => limited,
    };
    if let Ok(req) = serde_json::from_slice::<Request>(line) {
        let text = serde_json::to_vec(&req).expect("a request serialises");
        assert_eq!(serde_json::from_slice::<Request>(&text).ok(), Some(req));
    }
    if let Ok(resp) = serde_json::from_slice::<Response>(data) {
        let text = serde_json::to_vec(&resp).expect("a response serialises");
        let again: Response = serde_json::from_slice(&text).expect("own response parses");
        assert_eq!(again.ok, resp.ok);
        assert_eq!(again.message, resp.message);
    }
});
