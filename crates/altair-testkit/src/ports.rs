//! Free TCP ports on a local address, safe across parallel test processes.
//!
//! A port is chosen at random below the kernel's ephemeral range (so outgoing
//! connections never take it), checked bindable, and reserved with an advisory lock on
//! a file in the temp dir for as long as the `Port` lives; the kernel drops the lock if
//! the process dies.

use std::fs::File;
use std::net::{IpAddr, TcpListener};

use rand::Rng;

use crate::{Error, Result, io_err};

const RANGE: std::ops::Range<u16> = 20_000..32_000;

#[derive(Debug)]
pub struct Port {
    port: u16,
    _lock: File,
}

impl Port {
    pub fn get(&self) -> u16 {
        self.port
    }
}

/// Reserves a free port on `ip`.
pub fn reserve(ip: IpAddr) -> Result<Port> {
    let dir = std::env::temp_dir().join("altair-testkit-ports");
    std::fs::create_dir_all(&dir).map_err(io_err(format!("create {}", dir.display())))?;
    let mut rng = rand::rng();
    for _ in 0..200 {
        let port = rng.random_range(RANGE);
        let path = dir.join(format!("{port}.lock"));
        let Ok(file) = File::create(&path) else {
            continue;
        };
        if file.try_lock().is_err() {
            continue;
        }
        if TcpListener::bind((ip, port)).is_ok() {
            return Ok(Port { port, _lock: file });
        }
    }
    Err(Error::Command {
        what: format!("reserve a free port on {ip}"),
        detail: "200 random ports in 20000..32000 were taken".into(),
    })
}
