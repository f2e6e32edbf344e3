//! Helpers for the end-to-end tests: find the built binaries, write configs.
//!
//! The binaries are built by `cargo build --workspace --bins` (`make test` does it
//! first). A missing binary fails the test with that instruction.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The path of a workspace binary next to this test executable's target directory.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps");
    let path = profile_dir.join(name);
    assert!(
        path.is_file(),
        "{} is not built: run `cargo build --workspace --bins` first (`make test` does)",
        path.display()
    );
    path
}

/// Runs `name` with `args` to completion.
pub fn run(name: &str, args: &[&str]) -> Output {
    Command::new(bin(name))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap_or_else(|e| panic!("run {name}: {e}"))
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A directory of configs and secret files for one test.
pub struct ConfigDir {
    dir: tempfile::TempDir,
}

impl ConfigDir {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `name` and returns its path as a string.
    pub fn write(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).expect("write config file");
        p.display().to_string()
    }
}

impl Default for ConfigDir {
    fn default() -> Self {
        Self::new()
    }
}

/// A valid agent config listening on `listen`, with password files in `dir`.
pub fn agent_config(dir: &ConfigDir, listen: &str) -> String {
    let pw = dir.write("mysql.password", "agent-mysql-pw\n");
    let repl = dir.write("repl.password", "agent-repl-pw\n");
    format!(
        "[agent]\ncluster = \"c1\"\nhost = \"db1\"\nlisten = \"{listen}\"\n\
         [mysql]\nhost = \"127.0.0.1\"\nuser = \"altair\"\npassword_file = \"{pw}\"\n\
         [replication]\nuser = \"repl\"\npassword_file = \"{repl}\"\n\
         [zookeeper]\nservers = [\"127.0.0.1:2181\"]\n"
    )
}

pub fn monitor_config(listen: &str) -> String {
    format!(
        "[monitor]\nid = \"m1\"\nlisten = \"{listen}\"\n\
         [zookeeper]\nservers = [\"127.0.0.1:2181\"]\n"
    )
}

/// A valid orchestrator config; `tsig_secret` is written to the secret file.
pub fn orchestrator_config(dir: &ConfigDir, listen: &str, tsig_secret: &str) -> String {
    let pw = dir.write("mysql.password", "orch-mysql-pw\n");
    let repl = dir.write("repl.password", "orch-repl-pw\n");
    let tsig = dir.write("tsig.secret", tsig_secret);
    format!(
        "[orchestrator]\nid = \"o1\"\nlisten = \"{listen}\"\n\
         [mysql]\nuser = \"altair\"\npassword_file = \"{pw}\"\n\
         [replication]\nuser = \"repl\"\npassword_file = \"{repl}\"\n\
         [dns]\nserver = \"127.0.0.1:53\"\nzone = \"db.altair.test.\"\n\
         tsig_key_name = \"altair-update\"\ntsig_secret_file = \"{tsig}\"\n\
         [zookeeper]\nservers = [\"127.0.0.1:2181\"]\n"
    )
}
