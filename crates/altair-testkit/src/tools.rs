//! Finding the external programs the kit runs.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Debian package that ships each tool.
const PACKAGES: &[(&str, &str)] = &[
    ("mariadbd", "mariadb-server"),
    ("mariadb-install-db", "mariadb-server"),
    ("mariadb", "mariadb-client"),
    ("mariadb-binlog", "mariadb-client"),
    ("named", "bind9"),
    ("java", "default-jre-headless (pulled in by zookeeper)"),
    ("ip", "iproute2"),
    ("nft", "nftables"),
    ("haproxy", "haproxy"),
    ("openssl", "openssl"),
    ("chromium", "chromium"),
    ("chromedriver", "chromium-driver"),
    ("curl", "curl"),
];

const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";
const SLF4J_JAR: &str = "/usr/share/java/slf4j-simple.jar";

/// The full path of `tool`, searching `$PATH` and the sbin directories (which a
/// non-root `$PATH` often lacks).
pub fn require_tool(tool: &'static str) -> Result<PathBuf> {
    let package = PACKAGES
        .iter()
        .find(|(t, _)| *t == tool)
        .map_or("(unknown)", |(_, p)| p);
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(tool))
        .find(|p| is_executable(p))
        .ok_or(Error::MissingTool { tool, package })
}

/// The ZooKeeper server classpath (Debian's zookeeper package).
pub(crate) fn zookeeper_classpath() -> Result<String> {
    for jar in [ZOOKEEPER_JAR, SLF4J_JAR] {
        if !Path::new(jar).is_file() {
            return Err(Error::MissingTool {
                tool: "zookeeper",
                package: "zookeeper (and libslf4j-java)",
            });
        }
    }
    Ok(format!("{ZOOKEEPER_JAR}:{SLF4J_JAR}"))
}

/// The Netty jars ZooKeeper's TLS client port needs (`NettyServerCnxnFactory`), from
/// Debian's libnetty-java (a dependency of the zookeeper package).
pub(crate) fn zookeeper_netty_classpath() -> Result<String> {
    let jars: Vec<String> = [
        "buffer",
        "codec",
        "common",
        "handler",
        "resolver",
        "transport",
        "transport-native-epoll",
        "transport-native-unix-common",
    ]
    .iter()
    .map(|j| format!("/usr/share/java/netty-{j}.jar"))
    .collect();
    if let Some(missing) = jars.iter().find(|j| !Path::new(j).is_file()) {
        return Err(Error::Command {
            what: "start ZooKeeper with a TLS client port".into(),
            detail: format!("{missing} is missing: install libnetty-java (make deps does)"),
        });
    }
    Ok(jars.join(":"))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// True when running as root (network namespaces and nft need it).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}
