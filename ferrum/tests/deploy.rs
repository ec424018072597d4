//! The deployment files (Dockerfile, BTCPay fragment, systemd unit and example config) read by
//! Ferrum's own configuration loader, as the container or the service would start it, and the
//! BTCPay fragment composed with BTCPay's other fragments by the generator's rules. The image
//! is built and run, and the composed deployment started, by scripts/docker-e2e.sh.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `ferrum config` with exactly `env` (nothing inherited) and `args`: the printed configuration,
/// or the error.
fn effective_config(env: &BTreeMap<String, String>, args: &[&str]) -> Result<String, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrum"))
        .args(args)
        .arg("config")
        .env_clear()
        .env("HOME", "/nonexistent")
        .envs(env)
        .output()
        .expect("running ferrum config");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `${NAME:-default}` replaced by its default, as Compose does with NAME unset.
fn compose_defaults(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("unterminated ${") + start;
        let inner = &rest[start + 2..end];
        out.push_str(inner.split_once(":-").map_or("", |(_, d)| d));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

fn fragment_path() -> PathBuf {
    repo().join("deploy/btcpay/opt-add-ferrum.custom.yml")
}

#[test]
fn btcpay_fragment_configures_ferrum_like_electrumx() {
    let text = std::fs::read_to_string(fragment_path()).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let service = &doc["services"]["electrumx"];
    assert!(service.is_mapping(), "the service keeps ElectrumX's name, for opt-add-mempool and opt-add-tor");
    assert_eq!(service["container_name"].as_str(), Some("generated_electrumx_1"), "BTCPay's ElectrumX commands");
    // Never pulled: an image of a name no registry serves.
    assert!(service["image"].as_str().unwrap().starts_with("localhost/ferrum:"));
    assert_eq!(service["pull_policy"].as_str(), Some("never"));
    let ports: Vec<&str> = service["ports"].as_sequence().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert_eq!(ports, ["50002:50002"], "only TLS is published, as ElectrumX's fragment");
    let exposed: Vec<&str> = service["expose"].as_sequence().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert!(exposed.contains(&"50001"), "plain TCP for other containers (mempool)");
    let volumes: Vec<&str> = service["volumes"].as_sequence().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    // The certificate in a volume BTCPay backs up, the index in the one its backup skips.
    assert_eq!(volumes, ["ferrum_datadir:/data", "electrumx_datadir:/data/index"]);
    assert_eq!(doc["incompatible"].as_sequence().unwrap()[0].as_str(), Some("pruning"));
    // switch-node.sh replaces the fragment `bitcoin`: requiring it would stop that.
    assert!(doc.get("required").is_none());
    assert!(!text.contains("txindex=1"), "Ferrum needs no txindex");

    let env: BTreeMap<String, String> = service["environment"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().to_string(), compose_defaults(v.as_str().unwrap())))
        .collect();
    let config = effective_config(&env, &[]).unwrap_or_else(|e| panic!("the fragment's environment: {e}"));
    assert!(config.contains("network: Mainnet"), "{config}");
    assert!(config.contains("rpc_addr: \"bitcoind:43782\""), "{config}");
    assert!(config.contains("p2p_addr: Some(\n        \"bitcoind:39388\""), "{config}");
    assert!(config.contains("db_dir: \"/data\""), "{config}");
    assert!(config.contains("addr: 0.0.0.0:50001") && config.contains("addr: 0.0.0.0:50002"), "{config}");
    assert!(config.contains("admin_rpc: Some(\n        127.0.0.1:8000"), "admin stays on loopback: {config}");
    // The password is in DAEMON_URL, and never shown.
    let url = &env["DAEMON_URL"];
    let (user, password) = url.split_once("://").unwrap().1.split_once('@').unwrap().0.split_once(':').unwrap();
    assert!(config.contains(&format!("user: \"{user}\"")) && !config.contains(password), "{config}");

    // bitcoind gets REST and an rpcauth line matching DAEMON_URL's password.
    let extra = doc["services"]["bitcoind"]["environment"]["BITCOIN_EXTRA_ARGS"].as_str().unwrap();
    let lines: Vec<&str> = extra.lines().map(str::trim).filter(|l| !l.starts_with('#')).collect();
    assert!(lines.contains(&"rest=1"), "{extra}");
    let auth = lines.iter().find_map(|l| l.strip_prefix("rpcauth=")).expect("an rpcauth line");
    // Compose writes a literal $ as $$.
    let auth = auth.replace("$$", "$");
    let salt = auth.split_once(':').unwrap().1.split_once('$').unwrap().0;
    assert_eq!(auth, testkit::rpcauth(user, salt, password), "rpcauth does not match DAEMON_URL's password");
}

/// The `ENV` instructions of a Dockerfile (the `KEY=value` form, continued lines joined).
fn dockerfile_env(text: &str) -> BTreeMap<String, String> {
    let joined = text.replace("\\\n", " ");
    let mut env = BTreeMap::new();
    for line in joined.lines().map(str::trim) {
        let Some(rest) = line.strip_prefix("ENV ") else { continue };
        for pair in rest.split_whitespace() {
            let (k, v) = pair.split_once('=').unwrap_or_else(|| panic!("ENV {pair}: not KEY=value"));
            env.insert(k.to_string(), v.trim_matches('"').to_string());
        }
    }
    env
}

#[test]
fn docker_image_environment_and_lint() {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let mut env = dockerfile_env(&text);
    assert!(env.contains_key("SERVICES"), "{env:?}");
    // What a user adds: the node.
    env.insert("DAEMON_URL".into(), "http://user:secret@node:8332".into());
    let config = effective_config(&env, &[]).unwrap_or_else(|e| panic!("the image's environment: {e}"));
    for expected in ["0.0.0.0:50001", "0.0.0.0:50002", "0.0.0.0:50004", "db_dir: \"/data\""] {
        assert!(config.contains(expected), "{expected} missing from {config}");
    }
    assert!(config.contains("protocol: Wss"), "{config}");
    assert!(config.contains("admin_rpc: Some(\n        127.0.0.1:8000"), "admin on loopback only: {config}");
    assert!(config.contains("0.0.0.0:8080"), "status page: {config}");
    assert!(text.contains("USER ") && text.contains("HEALTHCHECK"), "unprivileged, with a health check");

    let lint = Command::new(repo().join("scripts/hadolint.sh"))
        .args(["--failure-threshold", "style"])
        .arg(repo().join("Dockerfile"))
        .output()
        .expect("running scripts/hadolint.sh");
    assert!(
        lint.status.success(),
        "hadolint:\n{}{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );
}

#[test]
fn systemd_example_config_is_valid() {
    let example = repo().join("deploy/systemd/ferrum.toml.example");
    let config = effective_config(&BTreeMap::new(), &["--config", example.to_str().unwrap()])
        .unwrap_or_else(|e| panic!("{}: {e}", example.display()));
    assert!(config.contains("network: Mainnet"), "{config}");
    let unit = std::fs::read_to_string(repo().join("deploy/systemd/ferrum.service")).unwrap();
    for line in ["NoNewPrivileges=yes", "ProtectSystem=strict", "User=ferrum"] {
        assert!(unit.contains(line), "the unit lacks {line}");
    }
    assert!(unit.contains("/etc/ferrum/ferrum.toml"), "the unit reads the documented config file");
}

#[test]
fn an_invalid_environment_is_refused_by_name() {
    let env: BTreeMap<String, String> = [("NET", "mainnet"), ("SERVICES", "tcp://:50001,gopher://:70")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let e = effective_config(&env, &[]).unwrap_err();
    assert!(e.contains("configuration error: SERVICES:"), "{e}");
}

/// A fragment directory as on a BTCPay host: the stand-ins for BTCPay's own fragments, Ferrum's
/// fragment copied in, and the mempool fragment for Ferrum made by `mempool-for-ferrum.sh`.
fn fragments_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let data = repo().join("ferrum/tests/data/btcpay");
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    std::fs::copy(fragment_path(), dir.path().join("opt-add-ferrum.custom.yml")).unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} < opt-add-mempool.yml > opt-add-mempool-ferrum.custom.yml",
            repo().join("deploy/btcpay/mempool-for-ferrum.sh").display()
        ))
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    dir
}

fn env_of(service: &serde_yaml::Mapping) -> &serde_yaml::Mapping {
    service.get("environment").and_then(serde_yaml::Value::as_mapping).expect("an environment mapping")
}

fn extra_args(compose: &serde_yaml::Value) -> String {
    let bitcoind = testkit::btcpay::service(compose, "bitcoind").unwrap();
    env_of(bitcoind)["BITCOIN_EXTRA_ARGS"].as_str().unwrap().to_string()
}

#[test]
fn btcpay_generator_composes_the_fragment_with_bitcoin_tor_and_mempool() {
    use testkit::btcpay::{generate, service};
    let dir = fragments_dir();
    let dir = dir.path();

    // With BTCPay's node: one bitcoind whose settings gain Ferrum's lines, one electrumx.
    let compose = generate(dir, &["bitcoin", "opt-add-ferrum.custom"], &[]).unwrap();
    let args = extra_args(&compose);
    assert!(args.starts_with("rpcport=43782\n"), "BTCPay's settings first: {args}");
    assert!(args.contains("\nrpcauth=ferrum:") && args.contains("\nrest=1\n"), "{args}");
    let electrumx = service(&compose, "electrumx").unwrap();
    assert!(electrumx["image"].as_str().unwrap().starts_with("localhost/ferrum:"));
    let volumes = compose["volumes"].as_mapping().unwrap();
    assert!(volumes.contains_key("ferrum_datadir") && volumes.contains_key("electrumx_datadir"));
    assert!(compose.get("incompatible").is_none(), "the generator drops everything but services and volumes");

    // opt-add-tor's onion service for electrumx merges into Ferrum's environment (it is a
    // mapping, as tor's); bitcoind's RPC port (and with it REST) becomes an onion service too.
    let compose = generate(dir, &["bitcoin", "opt-add-ferrum.custom", "opt-add-tor"], &[]).unwrap();
    let env = env_of(service(&compose, "electrumx").unwrap());
    assert_eq!(env["HIDDENSERVICE_NAME"].as_str(), Some("electrumx"));
    assert_eq!(env["HIDDENSERVICE_PORT"].as_u64(), Some(50002));
    assert!(env.contains_key("DAEMON_URL"));
    let bitcoind = env_of(service(&compose, "bitcoind").unwrap());
    assert_eq!(bitcoind["BTC-RPC_HIDDENSERVICE_PORT"].as_u64(), Some(43782));
    // The same settings are lost on ElectrumX's list-style environment.
    let compose = generate(dir, &["bitcoin", "opt-add-electrumx", "opt-add-tor"], &[]).unwrap();
    assert!(service(&compose, "electrumx").unwrap()["environment"].is_sequence());

    // Upstream's mempool fragment requires opt-add-electrumx: next to Ferrum's fragment the
    // generator fails. The copy made by mempool-for-ferrum.sh requires Ferrum and txindex.
    let e = generate(dir, &["bitcoin", "opt-add-ferrum.custom", "opt-add-mempool"], &[]).unwrap_err();
    assert!(e.to_string().contains("image in several fragments"), "{e}");
    let compose = generate(dir, &["bitcoin", "opt-add-mempool-ferrum.custom"], &[]).unwrap();
    assert!(extra_args(&compose).contains("\ntxindex=1\n"), "mempool's backend needs txindex");
    assert!(service(&compose, "electrumx").unwrap()["image"].as_str().unwrap().starts_with("localhost/ferrum:"));
    let api = env_of(service(&compose, "mempool_api").unwrap());
    assert_eq!((api["ELECTRUM_HOST"].as_str(), api["ELECTRUM_PORT"].as_str()), (Some("electrumx"), Some("50001")));

    // Not with ElectrumX, not on a pruned node.
    let e = generate(dir, &["bitcoin", "opt-add-ferrum.custom", "opt-add-electrumx"], &[]).unwrap_err();
    assert!(e.to_string().contains("image in several fragments"), "{e}");
    let e = generate(dir, &["bitcoin", "opt-add-ferrum.custom", "opt-save-storage"], &[]).unwrap_err();
    assert!(e.to_string().contains("incompatible with 'pruning'"), "{e}");
}
