//! Service configuration: the TOML schema of every binary, environment overrides and
//! validation. Parsing is pure (text and environment in, config and warnings out); the
//! binaries read the file and resolve secrets.
//!
//! Every error names the key (`section.key`) and the problem. Unknown keys are returned
//! as warnings, not refused, so a config written for a newer release still starts.

mod agent;
mod common;
mod console;
mod ctl;
mod monitor;
mod mysql_tls;
mod orchestrator;
mod write_stall;

use std::fmt;

use serde::de::DeserializeOwned;

pub use agent::{AgentConfig, AgentSection, Durability, MysqlSection};
pub use common::{
    Credentials, DEFAULT_ZK_ROOT, LogConfig, LogFormat, MetricsConfig, MysqlEndpoint, SecretSource,
    TlsConfig, ZkConfig, is_host, is_host_port,
};
pub use console::{ConsoleAuth, ConsoleConfig};
pub use ctl::CtlConfig;
pub use monitor::{MonitorConfig, MonitorSection};
pub use mysql_tls::{MysqlTls, MysqlTlsMode};
pub use orchestrator::{
    AdmissionConfig, DnsConfig, FenceHookConfig, FenceMode, HooksConfig, OnSalvageTimeout,
    OrchestratorConfig, OrchestratorSection,
};
pub use write_stall::{OnWriteStalled, WriteStallConfig};

/// One problem with a configuration, naming the key it concerns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// Dotted key path, e.g. `zookeeper.servers[1]`, or `(file)` for syntax errors.
    pub key: String,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.problem)
    }
}

impl ConfigError {
    pub fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

/// Every problem found in one configuration (validation does not stop at the first).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            e.fmt(f)?;
        }
        Ok(())
    }
}

/// Collects validation problems.
#[derive(Debug, Default)]
pub struct Problems(Vec<ConfigError>);

impl Problems {
    pub fn add(&mut self, key: impl Into<String>, problem: impl Into<String>) {
        self.0.push(ConfigError::new(key, problem));
    }

    /// Records `problem` at `key` unless `ok`.
    pub fn check(&mut self, ok: bool, key: &str, problem: impl FnOnce() -> String) {
        if !ok {
            self.add(key, problem());
        }
    }

    pub fn into_result(self) -> Result<(), ConfigErrors> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(self.0))
        }
    }
}

/// A config type that can check itself.
pub trait Validate {
    fn validate(&self, problems: &mut Problems);
}

/// A parsed, validated configuration and the keys that were not recognised.
#[derive(Debug)]
pub struct Loaded<T> {
    pub config: T,
    pub unknown_keys: Vec<String>,
}

/// Parses `text` as TOML, applies environment overrides and validates.
///
/// Overrides: a variable `{env_prefix}__SECTION__KEY=value` sets `section.key`; the value
/// is read as a TOML value when it parses as one (`3`, `true`, `["a:1", "b:2"]`) and as
/// a string otherwise. Pass the process environment (the caller reads it).
pub fn parse<T: DeserializeOwned + Validate>(
    text: &str,
    env_prefix: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Loaded<T>, ConfigErrors> {
    let mut doc: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| single("(file)", &syntax_error(text, &e)))?;
    apply_env(&mut doc, env_prefix, env)?;
    let mut unknown_keys = Vec::new();
    let config: T = serde_ignored::deserialize(toml::Value::Table(doc), |path| {
        unknown_keys.push(path.to_string());
    })
    // Deserialized from a parsed value: no source text, so no line is echoed.
    .map_err(|e: toml::de::Error| single("(file)", e.to_string().trim_end()))?;
    let mut problems = Problems::default();
    config.validate(&mut problems);
    problems.into_result()?;
    Ok(Loaded {
        config,
        unknown_keys,
    })
}

/// Where a TOML syntax error is and what it is, without echoing the offending line (it
/// could hold a secret someone pasted inline by mistake).
fn syntax_error(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {}", e.message().trim_end())
        }
        None => e.message().trim_end().to_owned(),
    }
}

fn single(key: &str, problem: &str) -> ConfigErrors {
    ConfigErrors(vec![ConfigError::new(key, problem)])
}

fn apply_env(
    doc: &mut toml::Table,
    prefix: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigErrors> {
    let marker = format!("{prefix}__");
    for (name, raw) in env {
        let Some(path) = name.strip_prefix(&marker) else {
            continue;
        };
        let keys: Vec<String> = path.split("__").map(str::to_ascii_lowercase).collect();
        if keys.iter().any(String::is_empty) {
            return Err(single(&name, "empty key segment in environment override"));
        }
        let value = format!("v = {raw}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.clone()));
        let (last, parents) = keys.split_last().expect("split yields one segment");
        let mut table = &mut *doc;
        for key in parents {
            let entry = table
                .entry(key.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            table = entry.as_table_mut().ok_or_else(|| {
                single(&name, &format!("`{key}` is not a table in the config file"))
            })?;
        }
        table.insert(last.clone(), value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Demo {
        section: DemoSection,
    }
    #[derive(Debug, serde::Deserialize)]
    struct DemoSection {
        port: u16,
        name: String,
    }
    impl Validate for Demo {
        fn validate(&self, p: &mut Problems) {
            p.check(self.section.port != 0, "section.port", || {
                "must not be 0".into()
            });
        }
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn env_overrides_and_unknown_keys() {
        let loaded: Loaded<Demo> = parse(
            "[section]\nport = 1\nname = \"a\"\nextra = 3\n",
            "ALTAIR_X",
            env(&[
                ("ALTAIR_X__SECTION__PORT", "7"),
                ("ALTAIR_X__SECTION__NAME", "db-1"),
                ("OTHER", "1"),
            ]),
        )
        .expect("valid");
        assert_eq!(loaded.config.section.port, 7);
        assert_eq!(loaded.config.section.name, "db-1");
        assert_eq!(loaded.unknown_keys, vec!["section.extra".to_owned()]);
    }

    #[test]
    fn validation_and_syntax_errors_name_the_key() {
        let e = parse::<Demo>("[section]\nport = 0\nname = \"a\"\n", "P", env(&[]))
            .expect_err("invalid");
        assert_eq!(e.to_string(), "section.port: must not be 0");
        let e = parse::<Demo>("[section]\nport = \"x\"\nname = \"a\"\n", "P", env(&[]))
            .expect_err("bad type");
        assert!(e.to_string().contains("port"), "{e}");
        let e = parse::<Demo>("[section\n", "P", env(&[])).expect_err("syntax");
        assert_eq!(e.0[0].key, "(file)");
        // A syntax error says where, never echoes the line (a secret pasted inline).
        let e = parse::<Demo>("[section]\npassword = hunter2-secret\n", "P", env(&[]))
            .expect_err("syntax");
        let msg = e.to_string();
        assert!(msg.contains("line 2"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
        let e = parse::<Demo>("section = 3\n", "P", env(&[("P__SECTION__PORT", "1")]))
            .expect_err("not table");
        assert!(e.to_string().contains("P__SECTION__PORT"), "{e}");
    }
}

#[cfg(test)]
mod deploy_examples {
    //! The annotated examples in deploy/ must stay valid.
    use super::*;

    fn check<T: DeserializeOwned + Validate>(name: &str, text: &str) {
        let loaded = parse::<T>(text, "NONE", Vec::new())
            .unwrap_or_else(|e| panic!("deploy/{name} is invalid: {e}"));
        assert!(
            loaded.unknown_keys.is_empty(),
            "deploy/{name}: unknown keys {:?}",
            loaded.unknown_keys
        );
    }

    #[test]
    fn every_example_config_is_valid() {
        check::<AgentConfig>("agent.toml", include_str!("../../../../deploy/agent.toml"));
        check::<MonitorConfig>(
            "monitor.toml",
            include_str!("../../../../deploy/monitor.toml"),
        );
        check::<OrchestratorConfig>(
            "orchestrator.toml",
            include_str!("../../../../deploy/orchestrator.toml"),
        );
        check::<CtlConfig>(
            "altairctl.toml",
            include_str!("../../../../deploy/altairctl.toml"),
        );
    }
}
