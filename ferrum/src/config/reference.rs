//! The configuration reference, `docs/configuration.md`, written from the definitions themselves:
//! the options' help and environment names (clap), and ElectrumX's variables.

use super::cli::Cli;
use super::electrumx::{ElectrumxVar, ELECTRUMX_VARS};

/// The configuration reference, `docs/configuration.md`: generated from the same definitions
/// as `--help` and the ElectrumX table, so the two cannot disagree.
pub fn reference() -> String {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    cmd.build();
    let mut out = String::from(
        "# Configuration\n\n\
         <!-- Written by `ferrum config-reference` from ferrum/src/config/ (cli.rs, electrumx.rs); edit those, not this file. -->\n\n\
         Every setting can come from four places. The first that gives it wins:\n\n\
         1. the command line (`--network regtest`);\n\
         2. the environment: Ferrum's own `FERRUM_*` name, then ElectrumX's name where there is one \
         (`FERRUM_NETWORK`, then `NET`);\n\
         3. the TOML config file (`network = \"regtest\"`): `--config`/`FERRUM_CONFIG`, or else the first \
         that exists of `<db-dir>/ferrum.toml` (when the data directory is given by `--db-dir`, \
         `FERRUM_DB_DIR` or `DB_DIRECTORY`), `~/.ferrum/ferrum.toml` and `/etc/ferrum/ferrum.toml`;\n\
         4. the default.\n\n\
         In the file, a setting's key is its long option without the dashes, with `_` for `-` \
         (`--daemon-rpc-addr` is `daemon_rpc_addr`); lists are TOML arrays (`tcp = [\"127.0.0.1:50001\"]`). \
         A key the file does not know is an error, as is an invalid value anywhere: Ferrum names the \
         setting and stops (exit code 2) rather than start with a configuration it was not given.\n\n\
         The RPC password is never read from the command line, where other users could see it: set \
         `FERRUM_DAEMON_PASSWORD`, `daemon_password` in the file, or the password in `DAEMON_URL`. \
         Passwords are never logged or printed.\n\n\
         ## Options\n\n",
    );
    for arg in cmd.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if matches!(long, "help" | "version") || arg.is_hide_set() {
            continue;
        }
        let value = arg
            .get_value_names()
            .and_then(|v| v.first())
            .map(|v| format!(" <{v}>"))
            .filter(|_| arg.get_action().takes_values())
            .unwrap_or_default();
        out.push_str(&format!("### `--{long}{value}`\n\n"));
        let help = arg.get_long_help().or(arg.get_help()).map(|h| h.to_string()).unwrap_or_default();
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ").replace('<', "&lt;").replace('>', "&gt;");
        out.push_str(&format!("{help}\n\n"));
        let mut sources = Vec::new();
        if let Some(env) = arg.get_env().and_then(|e| e.to_str()) {
            sources.push(format!("environment `{env}`"));
        }
        let flag = format!("--{long}");
        for (name, what) in ELECTRUMX_VARS {
            if matches!(what, ElectrumxVar::Setting(s) if *s == flag || s.starts_with(&format!("{flag} "))) {
                sources.push(format!("ElectrumX's `{name}`"));
            }
        }
        if !matches!(long, "config" | "reindex") {
            sources.push(format!("file key `{}`", long.replace('-', "_")));
        }
        if sources.is_empty() {
            out.push_str("Command line only.\n\n");
        } else {
            out.push_str(&format!("Also: {}.\n\n", sources.join(", ")));
        }
    }
    out.push_str(
        "### RPC password\n\n\
         With `--daemon-user`: environment `FERRUM_DAEMON_PASSWORD`, file key `daemon_password`.\n\n\
         ## ElectrumX's environment variables\n\n\
         Ferrum reads ElectrumX's environment, so a container or unit file written for ElectrumX \
         starts Ferrum unchanged. Variables for things Ferrum does not do are accepted and logged \
         once at start-up as ignored; the ones ElectrumX itself no longer accepts stop Ferrum too.\n\n\
         | Variable | In Ferrum |\n|---|---|\n",
    );
    for (name, what) in ELECTRUMX_VARS {
        let meaning = match what {
            ElectrumxVar::Setting(s) if s.starts_with("--") && !s.contains(' ') => format!("as `{s}`"),
            ElectrumxVar::Setting(s) => (*s).to_string(),
            ElectrumxVar::Ignored(why) => format!("accepted and ignored: {why}"),
            ElectrumxVar::Obsolete(why) => format!("a start-up error: {why}"),
        };
        out.push_str(&format!("| `{name}` | {meaning} |\n"));
    }
    out.push_str(
        "\n`DAEMON_URL` is `[http://][user[:password]@]host[:port][/]`; without a user, bitcoind's \
         cookie file is used (`--daemon-dir`, `--cookie-file`). `SERVICES` takes `tcp://`, `ssl://`, \
         `ws://`, `wss://` and `rpc://` as ElectrumX, and `http://` for the status page and metrics; \
         an empty host means every interface, except for `rpc://`, which defaults to loopback and port \
         8000.\n\n\
         A `FERRUM_*` variable that is no setting is logged as probably misspelt.\n\n\
         ## Commands\n\n",
    );
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        let about = sub.get_long_about().or(sub.get_about()).map(|a| a.to_string()).unwrap_or_default();
        let about = about.replace('<', "&lt;").replace('>', "&gt;");
        let mut lines = about.lines();
        let first = lines.next().unwrap_or_default().trim();
        out.push_str(&format!("- `ferrum {}`: {first}", sub.get_name()));
        let rest: Vec<&str> = lines.map(str::trim).filter(|l| !l.is_empty()).collect();
        if !rest.is_empty() {
            out.push_str(&format!(" {}", rest.join(" ")));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn the_configuration_reference_is_current() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md");
        let written = std::fs::read_to_string(&path).unwrap_or_default();
        let current = reference();
        assert!(
            written == current,
            "docs/configuration.md is out of date: run `cargo run -p ferrum -- config-reference > docs/configuration.md`"
        );
        for (name, _) in ELECTRUMX_VARS {
            assert!(current.contains(&format!("`{name}`")), "{name} is not documented");
        }
        assert!(current.contains("### `--request-timeout"));
    }

    /// The help states each default in words (clap's `default_value` would make every option look
    /// given, and the sources could not be layered): they must say what the `Default`s hold.
    #[test]
    fn the_stated_defaults_are_the_defaults() {
        use clap::CommandFactory;

        use crate::config::{IndexSettings, DEFAULT_LOG};
        use crate::electrum::ElectrumConfig;
        use crate::server::Limits;

        let (index, electrum, limits) = (IndexSettings::default(), ElectrumConfig::default(), Limits::default());
        let expected = [
            ("prevout-mode", if index.prevout_mode.is_none() { "auto".to_string() } else { String::new() }),
            ("cache-mb", index.cache_mb.to_string()),
            ("reindex-on-format-change", index.reindex_on_format_change.to_string()),
            ("poll-interval-ms", index.poll_interval.as_millis().to_string()),
            ("max-send", electrum.max_send.to_string()),
            ("history-cache-mb", (electrum.script_cache.bytes >> 20).to_string()),
            ("max-recv", limits.max_recv.to_string()),
            ("max-sessions", limits.max_sessions.to_string()),
            ("max-sessions-per-ip", limits.max_sessions_per_ip.to_string()),
            ("max-subs-per-session", limits.max_subs_per_session.to_string()),
            ("max-subs-per-ip", limits.max_subs_per_ip.to_string()),
            ("max-subs", limits.max_subs_total.to_string()),
            ("cost-soft-limit", limits.cost.soft.to_string()),
            ("cost-hard-limit", limits.cost.hard.to_string()),
            ("max-batch", limits.max_batch.to_string()),
            ("session-timeout", limits.idle_timeout.as_secs().to_string()),
            ("request-timeout", limits.request_timeout.as_secs().to_string()),
            ("log", DEFAULT_LOG.to_string()),
        ];
        let cmd = Cli::command();
        for (long, value) in expected {
            let arg = cmd.get_arguments().find(|a| a.get_long() == Some(long)).unwrap();
            let help = arg.get_long_help().or(arg.get_help()).unwrap().to_string();
            let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(help.contains(&format!("[default: {value}]")), "--{long} says {help:?}, the default is {value}");
        }
        // The subnets, as `--session-limit-exempt` reads them.
        let arg = cmd.get_arguments().find(|a| a.get_long() == Some("session-limit-exempt")).unwrap();
        let help = arg.get_help().unwrap().to_string();
        let stated = help.split("[default: ").nth(1).unwrap().trim_end_matches(']');
        let stated: Vec<String> = stated.split(',').map(str::to_string).collect();
        assert_eq!(
            format!("{:?}", crate::config::parse::subnets("--session-limit-exempt", &stated).unwrap()),
            format!("{:?}", limits.exempt)
        );
    }
}
