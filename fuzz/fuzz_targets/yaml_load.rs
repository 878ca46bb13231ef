//! The YAML reader on arbitrary text: an error or documents, never a crash or hang.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(docs) = tycho::text::yaml::load_all(text) {
            let _ = tycho::text::yaml::dump_all(&docs);
        }
    }
});
