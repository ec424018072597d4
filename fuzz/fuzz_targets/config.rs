//! A config file and an environment: TOML text, then `NAME=value` lines after a line `---`.
#![no_main]

use std::collections::HashMap;

use ferrum::{Config, Options};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (file, env) = text.split_once("\n---\n").unwrap_or((text, ""));
    let env: HashMap<String, String> =
        env.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let options: Options = match toml::from_str(file) {
        Ok(o) => o,
        Err(_) => Options::default(),
    };
    let _ = Config::load(&options, &env);
});
