//! BTCPay Server's docker-compose generator, as far as a fragment author meets it: which
//! fragments are selected and how they are merged into one compose file. The rules are those of
//! btcpayserver-docker's `docker-compose-generator` (read from its source):
//!
//! - a fragment name is lower-cased, a trailing `.yml` dropped, and looked up as
//!   `<dir>/<name>.yml` (so `opt-add-ferrum.custom` is `opt-add-ferrum.custom.yml`); a missing
//!   file is only a warning there, an error here, so a test cannot pass on a typo;
//! - `required` and `recommended` fragments are added until none is new; `exclusive` groups may
//!   be declared by one selected fragment only; `incompatible` names groups that must not be
//!   selected; an excluded fragment that something requires is an error;
//! - services are matched by name. The one entry with an `image` is the base (two are an
//!   error; none drops the service). The others are merged into it key by key: a new key is
//!   added; two mappings are merged one level deep, where a new leaf is added and two scalar
//!   leaves are joined (with a newline if either has one, else a comma); two sequences are
//!   appended; anything else (a mapping meeting a sequence, two scalars) keeps the base's;
//! - top-level `volumes`, `networks` and `configs` are gathered, a name declared twice is an
//!   error; every other top-level key (`version`, `required`...) is dropped.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde_yaml::{Mapping, Value};

/// The compose file the generator would write for `fragments`, found in `dir`, less `excluded`.
pub fn generate(dir: &Path, fragments: &[&str], excluded: &[&str]) -> Result<Value> {
    let name = |n: &str| n.trim().to_lowercase().trim_end_matches(".yml").to_string();
    let excluded: Vec<String> = excluded.iter().map(|n| name(n)).collect();
    let mut selected: Vec<String> = Vec::new();
    for n in fragments.iter().map(|n| name(n)) {
        if !excluded.contains(&n) && !selected.contains(&n) {
            selected.push(n);
        }
    }
    // Read and follow `required`/`recommended` until nothing new appears.
    let mut docs: Vec<(String, Value)> = Vec::new();
    while docs.len() < selected.len() {
        let n = selected[docs.len()].clone();
        let path = dir.join(format!("{n}.yml"));
        let text = std::fs::read_to_string(&path).with_context(|| format!("fragment {n} ({})", path.display()))?;
        let doc: Value = serde_yaml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        for (key, required) in [("required", true), ("recommended", false)] {
            for dep in strings(&doc, key) {
                let dep = name(&dep);
                if excluded.contains(&dep) {
                    if required {
                        bail!("You excluded fragment {dep} but it is required by {n}");
                    }
                    continue;
                }
                if !selected.contains(&dep) {
                    selected.push(dep);
                }
            }
        }
        docs.push((n, doc));
    }
    // Exclusive groups and incompatibilities.
    let mut groups: Vec<(String, String)> = Vec::new();
    for (n, doc) in &docs {
        for g in strings(doc, "exclusive") {
            if let Some((other, _)) = groups.iter().find(|(_, group)| *group == g) {
                bail!("The fragments {other}, {n} can't be used simultaneously (group '{g}')");
            }
            groups.push((n.clone(), g));
        }
    }
    for (n, doc) in &docs {
        for g in strings(doc, "incompatible") {
            if groups.iter().any(|(_, group)| *group == g) {
                bail!("The fragment {n} is incompatible with '{g}'");
            }
        }
    }
    // Services, merged by name onto the entry with an image.
    let mut names: Vec<Value> = Vec::new();
    for (_, doc) in &docs {
        if let Some(services) = doc.get("services").and_then(Value::as_mapping) {
            for (k, _) in services {
                if !names.contains(k) {
                    names.push(k.clone());
                }
            }
        }
    }
    let mut services = Mapping::new();
    for service in names {
        let entries: Vec<(&str, &Mapping)> = docs
            .iter()
            .filter_map(|(n, doc)| {
                doc.get("services")?.as_mapping()?.get(&service)?.as_mapping().map(|m| (n.as_str(), m))
            })
            .collect();
        let with_image: Vec<&(&str, &Mapping)> = entries.iter().filter(|(_, m)| m.contains_key("image")).collect();
        let base = match with_image.as_slice() {
            [] => continue,
            [one] => one.0,
            many => bail!(
                "service {service:?} has an image in several fragments ({}): the generator fails",
                many.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            ),
        };
        let mut merged = entries.iter().find(|(n, _)| *n == base).map(|(_, m)| (*m).clone()).unwrap_or_default();
        for (n, entry) in &entries {
            if *n != base {
                merge_service(&mut merged, entry);
            }
        }
        services.insert(service, Value::Mapping(merged));
    }
    let mut out = Mapping::new();
    out.insert("services".into(), Value::Mapping(services));
    for key in ["volumes", "networks", "configs"] {
        let mut all = Mapping::new();
        for (n, doc) in &docs {
            if let Some(m) = doc.get(key).and_then(Value::as_mapping) {
                for (k, v) in m {
                    if all.insert(k.clone(), v.clone()).is_some() {
                        bail!("{key} {k:?} is declared twice (again in {n}): the generator fails");
                    }
                }
            }
        }
        if !all.is_empty() {
            out.insert(key.into(), Value::Mapping(all));
        }
    }
    Ok(Value::Mapping(out))
}

/// A fragment's sequence of names under `key` (only a sequence counts).
fn strings(doc: &Value, key: &str) -> Vec<String> {
    doc.get(key)
        .and_then(Value::as_sequence)
        .map(|s| s.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Merges one fragment's entry for a service into the base entry.
fn merge_service(base: &mut Mapping, other: &Mapping) {
    for (key, value) in other {
        let Some(existing) = base.get_mut(key) else {
            base.insert(key.clone(), value.clone());
            continue;
        };
        match (existing, value) {
            (Value::Mapping(into), Value::Mapping(from)) => {
                for (leaf, v) in from {
                    match into.get_mut(leaf) {
                        None => {
                            into.insert(leaf.clone(), v.clone());
                        }
                        Some(current) => {
                            if let (Some(a), Some(b)) = (scalar_text(current), scalar_text(v)) {
                                let sep = if a.contains('\n') || b.contains('\n') { "\n" } else { "," };
                                *current = Value::String(format!("{a}{sep}{b}"));
                            }
                        }
                    }
                }
            }
            (Value::Sequence(into), Value::Sequence(from)) => into.extend(from.iter().cloned()),
            // A mapping meeting a sequence, or two scalars: the base's stays.
            _ => {}
        }
    }
}

/// A service of a generated compose file.
pub fn service<'a>(compose: &'a Value, name: &str) -> Result<&'a Mapping> {
    compose
        .get("services")
        .and_then(|s| s.get(name))
        .and_then(Value::as_mapping)
        .ok_or_else(|| anyhow!("no service {name} in the generated compose file"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn merges_as_the_generator_does() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "base.yml",
            "services:\n  node:\n    image: n\n    environment:\n      ARGS: |\n        a=1\n      NAME: x\n    \
             expose:\n      - \"1\"\n    restart: always\nvolumes:\n  data:\nexclusive:\n  - node\n",
        );
        write(
            dir.path(),
            "opt-more.custom.yml",
            "version: \"3\"\nservices:\n  node:\n    environment:\n      ARGS: |\n        b=2\n      NAME: y\n      NEW: z\n    \
             expose:\n      - \"2\"\n    restart: never\n    ports:\n      - \"3:3\"\n  ghost:\n    environment:\n      A: b\n\
             required:\n  - base\n",
        );
        let out = generate(dir.path(), &["OPT-MORE.custom.yml"], &[]).unwrap();
        let node = service(&out, "node").unwrap();
        assert_eq!(node["image"], Value::from("n"));
        assert_eq!(node["environment"]["ARGS"], Value::from("a=1\n\nb=2\n"));
        assert_eq!(node["environment"]["NAME"], Value::from("x,y"));
        assert_eq!(node["environment"]["NEW"], Value::from("z"));
        assert_eq!(node["expose"], serde_yaml::from_str::<Value>("[\"1\", \"2\"]").unwrap());
        assert_eq!(node["restart"], Value::from("always"), "two scalars: the base's stays");
        assert!(node.contains_key("ports"));
        assert!(service(&out, "ghost").is_err(), "a service without an image anywhere is dropped");
        assert!(out.get("version").is_none() && out.get("required").is_none());
        assert!(out["volumes"].get("data").is_some());
    }

    #[test]
    fn a_list_environment_drops_a_mapping_merged_into_it() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.yml", "services:\n  s:\n    image: i\n    environment:\n      - K=v\n");
        write(dir.path(), "b.yml", "services:\n  s:\n    environment:\n      T: u\n");
        let out = generate(dir.path(), &["a", "b"], &[]).unwrap();
        assert_eq!(service(&out, "s").unwrap()["environment"], serde_yaml::from_str::<Value>("[K=v]").unwrap());
    }

    #[test]
    fn conflicts_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.yml", "services:\n  s:\n    image: i\nvolumes:\n  v:\nexclusive:\n  - g\n");
        write(dir.path(), "b.yml", "services:\n  s:\n    image: j\n");
        write(dir.path(), "c.yml", "volumes:\n  v:\n");
        write(dir.path(), "d.yml", "incompatible:\n  - g\n");
        write(dir.path(), "e.yml", "exclusive:\n  - g\n");
        write(dir.path(), "f.yml", "required:\n  - a\n");
        let err = |names: &[&str], excluded: &[&str]| generate(dir.path(), names, excluded).unwrap_err().to_string();
        assert!(err(&["a", "b"], &[]).contains("image in several fragments"));
        assert!(err(&["a", "c"], &[]).contains("declared twice"));
        assert!(err(&["a", "d"], &[]).contains("incompatible"));
        assert!(err(&["a", "e"], &[]).contains("can't be used simultaneously"));
        assert!(err(&["f"], &["a"]).contains("required by f"));
        assert!(err(&["nope"], &[]).contains("fragment nope"));
    }
}
