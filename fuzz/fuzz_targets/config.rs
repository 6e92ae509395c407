//! The pair's TOML configuration file (`redundancy::Config::from_toml`, what `run --config`
//! and SIGHUP read): any text must give a config or a `ConfigError` naming the file, never a
//! panic. A config that validates must also build its VRRP runtime instances.
#![no_main]
use libfuzzer_sys::fuzz_target;
use redundancy::Config;

fuzz_target!(|data: &[u8]| {
    // `Config::load` reads the file with `read_to_string`: non-UTF-8 is an I/O error there.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::from_toml("fuzz.toml", text) {
        Ok(cfg) => {
            let _ = format!("{cfg:?}");
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains("fuzz.toml"), "error does not name the file: {msg}");
        }
    }
});
