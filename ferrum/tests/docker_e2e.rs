//! The deployment Ferrum exists for, end to end: BTCPay Server's way. Ferrum's image (built from
//! the project's Dockerfile) and a BTCPay-style bitcoind are composed by BTCPay's generator
//! rules from the bitcoind fragment and `deploy/btcpay/opt-add-ferrum.custom.yml`, started with
//! `docker compose`, and the real Electrum wallets (Debian's 4.3.4 and 4.8.1) connect from this
//! machine to `127.0.0.1:50002:s`: single server, auto-connect off, the certificate pinned.
//! Then the operator's day: `docker compose restart electrumx` (same certificate), `down` and
//! `up` (no resync), `docker stop` and `docker kill` in the middle of a sync (nothing lost), the
//! backup's volume exclusion, the image's user and its admin RPC's reach.
//!
//! Run by scripts/docker-e2e.sh, which builds the images named in FERRUM_IMAGE and
//! BITCOIND_IMAGE; the compose project is taken down with its volumes when the test ends.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use testkit::client::http;
use testkit::process::docker::{docker, exec, Compose};
use testkit::process::electrum_wallet::{btc_to_sat, ElectrumWallet, Release};
use testkit::process::openssl::sha256_fingerprint;

const FERRUM: &str = "generated_electrumx_1";
const NODE: &str = "btcpayserver_bitcoind";
const SEED: &str = "wild father tree among universe such mobile favorite target dynamic credit identify";
const WAIT: Duration = Duration::from_secs(120);
/// For Ferrum's first commit while its CPU is throttled to 0.05.
const THROTTLED_WAIT: Duration = Duration::from_secs(600);

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    testkit::wait_for(what, WAIT, &mut f).unwrap_or_else(|e| panic!("{e}"))
}

/// `bitcoin-cli` in the node's container, as BTCPay's bitcoin-cli.sh runs it.
fn cli(args: &[&str]) -> String {
    let mut all = vec!["bitcoin-cli", "-datadir=/data"];
    all.extend_from_slice(args);
    exec(NODE, &all).unwrap_or_else(|e| panic!("{e:#}")).trim().to_string()
}

/// The node's height, once it answers (it warms up after every start).
fn height() -> u64 {
    until("bitcoind answering", || {
        exec(NODE, &["bitcoin-cli", "-datadir=/data", "getblockcount"]).ok()?.trim().parse().ok()
    })
}

fn mine(n: u32, to: &str) -> Vec<String> {
    serde_json::from_str(&cli(&["generatetoaddress", &n.to_string(), to])).unwrap()
}

/// Where the blocks and payments for nobody in particular go.
fn nobody() -> String {
    testkit::keys::burn_address().to_string()
}

/// `ferrum rpc getinfo` in Ferrum's container, as the README tells the operator to run it.
fn getinfo() -> Option<Value> {
    exec(FERRUM, &["ferrum", "rpc", "--json", "getinfo"]).ok().and_then(|out| serde_json::from_str(&out).ok())
}

fn serving_at(h: u64) -> bool {
    getinfo().is_some_and(|i| i["index"]["serving"] == json!(true) && i["index"]["height"] == json!(h))
}

fn logs() -> String {
    let out = testkit::process::run(std::process::Command::new("docker").args(["logs", FERRUM]), WAIT).unwrap();
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The height at which the last start of Ferrum found its index ("index opened ... height=Some(H)").
fn opened_at(log: &str) -> Option<u64> {
    let line = log.lines().rev().find(|l| l.contains("index opened"))?;
    let h = line.split("height=").nth(1)?;
    if h.starts_with("None") {
        return Some(0);
    }
    h.trim_start_matches("Some(").split(')').next()?.parse().ok()
}

fn balance(w: &ElectrumWallet) -> (u64, u64) {
    let b = w.run(&["getbalance"]).unwrap();
    let sat = |k: &str| b.get(k).and_then(Value::as_str).map_or(0, |s| btc_to_sat(s).unwrap());
    (sat("confirmed"), sat("unconfirmed"))
}

fn synced(w: &ElectrumWallet) -> bool {
    let info = w.run(&["getinfo"]).unwrap();
    let h = height();
    info["connected"] == json!(true) && info["server_height"] == json!(h) && info["blockchain_height"] == json!(h)
}

/// Generates the compose file as BTCPay does, in `<dir>/Generated/`, from the fragments in
/// `<dir>/docker-compose-generator/docker-fragments/`.
fn generate(dir: &Path) -> std::path::PathBuf {
    let fragments = dir.join("docker-compose-generator/docker-fragments");
    std::fs::create_dir_all(&fragments).unwrap();
    std::fs::copy(repo().join("ferrum/tests/data/btcpay/bitcoin.yml"), fragments.join("bitcoin.yml")).unwrap();
    std::fs::copy(repo().join("deploy/btcpay/opt-add-ferrum.custom.yml"), fragments.join("opt-add-ferrum.custom.yml"))
        .unwrap();
    let mut compose = testkit::btcpay::generate(&fragments, &["bitcoin", "opt-add-ferrum.custom"], &[]).unwrap();
    // Regtest's empty blocks are so small that a whole sync fits in one commit (128 MB); a
    // commit every 200 blocks gives a stop in the middle of a sync something to keep, as
    // mainnet's blocks do.
    compose["services"]["electrumx"]["environment"]["FERRUM_INDEX_CHUNK_BLOCKS"] = "200".into();
    let generated = dir.join("Generated");
    std::fs::create_dir_all(&generated).unwrap();
    let file = generated.join("docker-compose.generated.yml");
    std::fs::write(&file, serde_yaml::to_string(&compose).unwrap()).unwrap();
    file
}

/// How many times Ferrum has opened its index, by its container's log.
fn starts() -> usize {
    logs().matches("index opened").count()
}

/// Stops (`docker stop`: SIGTERM) or kills (`docker kill`: SIGKILL) Ferrum's container while it
/// indexes `blocks` it has not seen, then starts it again. Its CPU is throttled meanwhile, so
/// that the signal comes mid-sync. Returns the exit code after the signal, and the heights
/// before, at the next start and of the node's tip.
fn interrupt_sync(compose: &Compose, blocks: u32, signal: &[&str]) -> (String, u64, u64, u64) {
    compose.run(&["stop", "electrumx"], WAIT).unwrap();
    let before = height();
    for _ in 0..blocks / 1000 {
        mine(1000, &nobody());
    }
    let target = height();
    docker(&["update", "--cpus", "0.05", FERRUM]).unwrap();
    compose.run(&["start", "electrumx"], WAIT).unwrap();
    // Throttled, its first commit takes minutes rather than seconds, and how many varies: on one
    // machine, 0.05 of a CPU gave 2.6 to 25.6 blocks a second from one run to the next, and
    // opening the index 23 to 80 s.
    testkit::wait_for("Ferrum indexing the new blocks", THROTTLED_WAIT, || {
        getinfo().and_then(|i| i["index"]["height"].as_u64()).filter(|h| *h > before).map(|_| ())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let started = starts();
    let mut command = signal.to_vec();
    command.push(FERRUM);
    docker(&command).unwrap();
    until("Ferrum's container exited", || {
        (docker(&["inspect", "-f", "{{.State.Running}}", FERRUM]).unwrap().trim() == "false").then_some(())
    });
    let code = docker(&["inspect", "-f", "{{.State.ExitCode}}", FERRUM]).unwrap().trim().to_string();
    // `--cpus 0` leaves a stopped container's limit as it was: the whole machine lifts it.
    let all = std::thread::available_parallelism().map_or(1, |n| n.get()).to_string();
    docker(&["update", "--cpus", &all, FERRUM]).unwrap();
    let limit = docker(&["inspect", "-f", "{{.HostConfig.NanoCpus}}", FERRUM]).unwrap();
    assert_eq!(limit.trim(), format!("{all}000000000"), "Ferrum's CPU limit lifted");
    compose.run(&["start", "electrumx"], WAIT).unwrap();
    until("Ferrum started again", || (starts() > started).then_some(()));
    let opened = opened_at(&logs()).unwrap();
    until("Ferrum at the node's tip after the interruption", || serving_at(target).then_some(()));
    (code, before, opened, target)
}

#[test]
fn btcpay_deployment_with_real_wallets() {
    let ferrum_image = std::env::var("FERRUM_IMAGE").expect("FERRUM_IMAGE: run scripts/docker-e2e.sh");
    std::env::var("BITCOIND_IMAGE").expect("BITCOIND_IMAGE: run scripts/docker-e2e.sh");
    let dir = tempfile::tempdir().unwrap();
    let file = generate(dir.path());
    let compose = Compose::new(&file, &[("NBITCOIN_NETWORK", "regtest")]);
    // The image is never pulled (pull_policy: never); pulling the service is not an error.
    compose.run(&["pull", "electrumx"], WAIT).unwrap();

    // A host that ran ElectrumX: its index volume is still there, its files root's. Ferrum
    // says it cannot use it; the README's migration removes it.
    let bitcoind_image = std::env::var("BITCOIND_IMAGE").unwrap();
    docker(&["volume", "create", "generated_electrumx_datadir"]).unwrap();
    docker(&[
        "run",
        "--rm",
        "--entrypoint",
        "sh",
        "-v",
        "generated_electrumx_datadir:/data",
        &bitcoind_image,
        "-c",
        "mkdir /data/meta /data/hist /data/utxo && touch /data/electrumx.crt /data/electrumx.key",
    ])
    .unwrap();
    compose.run(&["up", "-d"], Duration::from_secs(300)).unwrap();
    let refused = until("Ferrum refusing ElectrumX's volume", || {
        let log = logs();
        log.contains("ElectrumX's index").then_some(log)
    });
    eprintln!("with ElectrumX's volume left:\n{}", refused.lines().rev().take(3).collect::<Vec<_>>().join("\n"));
    assert!(
        refused.contains("/data/index holds ElectrumX's index") && refused.contains("generated_electrumx_datadir"),
        "{refused}"
    );
    compose.run(&["down", "-t", "60"], WAIT).unwrap();
    docker(&["volume", "rm", "generated_electrumx_datadir"]).unwrap();
    compose.run(&["up", "-d"], Duration::from_secs(300)).unwrap();

    // The image: an unprivileged user, and its size for the note.
    let user = docker(&["image", "inspect", "-f", "{{.Config.User}}", &ferrum_image]).unwrap();
    assert_eq!(user.trim(), "1000:1000");
    assert_eq!(exec(FERRUM, &["id", "-u"]).unwrap().trim(), "1000");
    let size: u64 = docker(&["image", "inspect", "-f", "{{.Size}}", &ferrum_image]).unwrap().trim().parse().unwrap();
    eprintln!("image {ferrum_image}: {:.1} MB", size as f64 / 1e6);

    // The node, then Ferrum at its tip.
    height();
    mine(10, &nobody());
    until("Ferrum serving the node's tip", || serving_at(height()).then_some(()));
    let info = getinfo().unwrap();
    assert_eq!(info["node"]["address"], json!("bitcoind:43782"), "{info}");
    let fingerprint = info["tls"]["sha256"].as_str().unwrap().to_string();
    let cert = exec(FERRUM, &["cat", "/data/ferrum.crt"]).unwrap();

    // The admin RPC answers inside Ferrum's container only; other containers of the network
    // reach the Electrum ports and the status page, not it.
    let reach = |port: u16| exec(NODE, &["bash", "-c", &format!("exec 3<>/dev/tcp/electrumx/{port}")]).is_ok();
    assert!(reach(50001) && reach(8080), "the compose network reaches Ferrum");
    assert!(!reach(8000), "the admin RPC is not reachable from other containers");

    // BTCPay's ElectrumX commands, and the README's: the container's log, getinfo, the
    // certificate file.
    assert!(logs().contains("index at the node's tip"));
    let text = exec(FERRUM, &["ferrum", "rpc", "getinfo"]).unwrap();
    assert!(text.contains("serving") && text.contains(&fingerprint), "{text}");
    let copied = dir.path().join("ferrum.crt");
    docker(&["cp", &format!("{FERRUM}:/data/ferrum.crt"), copied.to_str().unwrap()]).unwrap();
    assert_eq!(std::fs::read_to_string(&copied).unwrap(), cert);
    assert_eq!(sha256_fingerprint(&copied).unwrap(), fingerprint);
    // The README's step 3: `ferrum connect --host` prints the wallet's lines for that host,
    // with the certificate's fingerprint and a QR code.
    let connect = exec(FERRUM, &["ferrum", "connect", "--host", "127.0.0.1"]).unwrap();
    for line in [
        format!("electrum --regtest --oneserver --server 127.0.0.1:50002:s --serverfingerprint {fingerprint}"),
        "electrum --regtest --offline setconfig auto_connect false".to_string(),
    ] {
        assert!(connect.contains(&line), "no {line:?} in:\n{connect}");
    }
    assert!(connect.contains('\u{2588}'), "no QR code in:\n{connect}");

    // Both wallets, on one seed, from this machine over TLS, set up as docs/wallets.md says:
    // 4.3 with `--oneserver --server HOST:50002:s`, 4.8 with its config file and the
    // certificate's fingerprint.
    let server = "127.0.0.1:50002:s";
    let wallets = [
        ElectrumWallet::start_with_flags(Release::Debian, server).unwrap(),
        ElectrumWallet::start(Release::V4_8_1, server, &[("serverfingerprint", json!(fingerprint))]).unwrap(),
    ];
    for w in &wallets {
        w.restore_and_load(SEED).unwrap();
    }
    for w in &wallets {
        until("the wallet connected at the node's height", || synced(w).then_some(()));
        let pinned = std::fs::read_to_string(w.pinned_cert_path("127.0.0.1")).unwrap();
        assert_eq!(pinned.trim(), cert.trim(), "{:?} pinned Ferrum's certificate", w.release());
        assert_eq!(sha256_fingerprint(&w.pinned_cert_path("127.0.0.1")).unwrap(), fingerprint);
    }
    let sessions = exec(FERRUM, &["ferrum", "rpc", "--json", "sessions"]).unwrap();
    for (client, version) in [("electrum/4.3.4", "1.4"), ("electrum/4.8.1", "1.6")] {
        assert!(
            serde_json::from_str::<Value>(&sessions)
                .unwrap()
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["client"] == json!(client)
                    && s["protocol_version"] == json!(version)
                    && s["protocol"] == json!("ssl")),
            "{client} at {version}: {sessions}"
        );
    }

    // Coins mined to the wallet, seen by both; a payment from 4.8.1 through Ferrum.
    let (old, new) = (&wallets[0], &wallets[1]);
    let to = old.run(&["getunusedaddress"]).unwrap();
    let block = mine(1, to.as_str().unwrap()).remove(0);
    mine(100, &nobody());
    let coinbase: Value = serde_json::from_str(&cli(&["getblock", &block, "2"])).unwrap();
    let reward = (coinbase["tx"][0]["vout"][0]["value"].as_f64().unwrap() * 1e8).round() as u64;
    for w in &wallets {
        until("the mined coins in both wallets", || (balance(w) == (reward, 0)).then_some(()));
    }
    let tx = new.run(&["payto", &nobody(), "1.5"]).unwrap();
    let txid = new.run(&["broadcast", tx.as_str().unwrap()]).unwrap().as_str().unwrap().to_string();
    let entry: Value = serde_json::from_str(&cli(&["getmempoolentry", &txid])).unwrap();
    let fee = (entry["fees"]["base"].as_f64().unwrap() * 1e8).round() as u64;
    mine(1, &nobody());
    let left = reward - 150_000_000 - fee;
    for w in &wallets {
        until("the payment confirmed in both wallets", || {
            (balance(w) == (left, 0)
                && w.history()
                    .unwrap()
                    .iter()
                    .any(|h| h.txid == txid && h.confirmations == 1 && h.fee_sat == Some(fee)))
            .then_some(())
        });
    }

    // `docker compose restart electrumx`: the same certificate; the wallets come back.
    compose.run(&["restart", "electrumx"], WAIT).unwrap();
    mine(1, &nobody());
    until("Ferrum back after restart", || serving_at(height()).then_some(()));
    assert_eq!(exec(FERRUM, &["cat", "/data/ferrum.crt"]).unwrap(), cert);
    assert_eq!(getinfo().unwrap()["tls"]["sha256"], json!(fingerprint));
    for w in &wallets {
        until("the wallet back after the restart", || synced(w).then_some(()));
    }

    // `down` and `up`: the volumes stay, so does the index: no resync.
    let at_down = height();
    compose.run(&["down", "-t", "60"], WAIT).unwrap();
    compose.run(&["up", "-d"], WAIT).unwrap();
    until("Ferrum back after down and up", || serving_at(at_down).then_some(()));
    assert_eq!(opened_at(&logs()), Some(at_down), "the index was kept:\n{}", logs());
    assert_eq!(exec(FERRUM, &["cat", "/data/ferrum.crt"]).unwrap(), cert);
    mine(1, &nobody());
    for w in &wallets {
        until("the wallet back after down and up", || (synced(w) && balance(w) == (left, 0)).then_some(()));
    }

    // `docker stop` (SIGTERM: Ferrum finishes its chunk and exits 0) and `docker kill` (SIGKILL)
    // while it indexes: the next start goes on from what was committed.
    for (signal, exit_code) in [(["stop", "-t", "60"], "0"), (["kill", "-s", "KILL"], "137")] {
        let (code, before, opened, target) = interrupt_sync(&compose, 5000, &signal);
        eprintln!("docker {}: exit code {code}, index {before} → found at {opened} of {target}", signal[0]);
        assert_eq!(code, exit_code, "docker {}", signal[0]);
        assert!(
            before < opened && opened < target,
            "docker {} came mid-sync: {before} < {opened} < {target}",
            signal[0]
        );
    }
    for w in &wallets {
        until("the wallets at the tip after the interrupted syncs", || {
            (synced(w) && balance(w) == (left, 0)).then_some(())
        });
    }

    // The image on its own, as docs/install.md runs it next to a node reachable at an address
    // (here bitcoind's container on the compose network), with the image's defaults otherwise.
    let daemon_url = "http://ferrum:G1qIpwsO5kevHkXPmCc_SCfIahjUkg8y3meAn7d2cgs@bitcoind:43782";
    let standalone = testkit::process::docker::Container::run(
        "ferrum-standalone",
        &[
            "--restart",
            "unless-stopped",
            "--stop-timeout",
            "120",
            "--network",
            "generated_default",
            "-v",
            "ferrum-standalone-data:/data",
            "-p",
            "127.0.0.1:58002:50002",
            "-p",
            "127.0.0.1:58080:8080",
            "-e",
            "NET=regtest",
            "-e",
            &format!("DAEMON_URL={daemon_url}"),
            "-e",
            "FERRUM_DAEMON_P2P_ADDR=bitcoind:39388",
            &ferrum_image,
        ],
        &["ferrum-standalone-data"],
    )
    .unwrap();
    let tip = height();
    until("the standalone container serving", || {
        let info: Value =
            serde_json::from_str(&exec(&standalone.name, &["ferrum", "rpc", "--json", "getinfo"]).ok()?).ok()?;
        (info["index"]["serving"] == json!(true) && info["index"]["height"] == json!(tip)).then_some(())
    });
    assert_eq!(http::request("127.0.0.1:58080", "GET", "/health").unwrap().0, 200);
    // Its TLS port, published on the host, with the certificate it made in its own volume.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tls = electrum_client::Client::from_config(
        "ssl://127.0.0.1:58002",
        electrum_client::ConfigBuilder::new().validate_domain(false).build(),
    )
    .unwrap();
    assert_eq!(electrum_client::ElectrumApi::block_headers_subscribe(&tls).unwrap().height as u64, tip);
    // Its health check (`ferrum rpc getinfo`, every 30 s): healthy.
    until("the container's health check passing", || {
        let status = docker(&["inspect", "-f", "{{.State.Health.Status}}", &standalone.name]).ok()?;
        (status.trim() == "healthy").then_some(())
    });
    docker(&["stop", "-t", "120", &standalone.name]).unwrap();
    assert_eq!(docker(&["inspect", "-f", "{{.State.ExitCode}}", &standalone.name]).unwrap().trim(), "0");
    drop(standalone);

    // The image saved, gone (as after a prune or on a new host) and loaded again, as the
    // README says: Compose never pulls it, and says it is missing.
    compose.run(&["down", "-t", "60"], WAIT).unwrap();
    let saved = dir.path().join("ferrum-image.tar.gz");
    let shell = |script: String| {
        let out = std::process::Command::new("sh").arg("-c").arg(&script).output().unwrap();
        assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
    };
    shell(format!("docker save {ferrum_image} | gzip > '{}'", saved.display()));
    docker(&["image", "rm", &ferrum_image]).unwrap();
    let up = compose.output(&["up", "-d"], WAIT).unwrap();
    assert!(!up.status.success(), "up without the image");
    assert!(String::from_utf8_lossy(&up.stderr).contains("No such image"), "{}", String::from_utf8_lossy(&up.stderr));
    shell(format!("gunzip -c '{}' | docker load", saved.display()));
    compose.run(&["up", "-d"], WAIT).unwrap();
    until("Ferrum back on the loaded image", || serving_at(height()).then_some(()));

    // btcpay-backup.sh archives the volumes named generated_* except, among others,
    // generated_electrumx_datadir: the certificate is kept, the index is not.
    let root = docker(&["info", "-f", "{{.DockerRootDir}}"]).unwrap();
    let listing = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cd '{}' && tar -cf - --exclude=volumes/generated_electrumx_datadir volumes/generated_* | tar -tf -",
            root.trim()
        ))
        .output()
        .unwrap();
    assert!(listing.status.success(), "{}", String::from_utf8_lossy(&listing.stderr));
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.contains("volumes/generated_ferrum_datadir/_data/ferrum.crt"), "{listing}");
    assert!(!listing.contains("rocksdb") && !listing.contains("txids.dat"), "the index is not in the backup");
}
