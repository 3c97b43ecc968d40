//! Any bytes as a vault file: opened or refused with an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sixstack_vault::{KeySource, Vault};

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("sixstack-fuzz-vault-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let key = dir.join("key");
    if !key.exists() {
        let _ = std::fs::write(&key, [7u8; 32]);
    }
    let file = dir.join("vault");
    if std::fs::write(&file, data).is_ok() {
        if let Ok(v) = Vault::open(&file, &KeySource::key_file(&key)) {
            let _ = v.list();
        }
    }
});
