//! A size-limited filesystem under an instance's binlog directory, to fill up: what a
//! primary whose disk is full looks like. A `tmpfs` with a `size=` limit answers ENOSPC
//! like a small loop-mounted disk, without a loop device. Needs root.

use std::path::{Path, PathBuf};

use crate::{Error, Result, io_err};

/// A mounted size-limited filesystem; lazily unmounted on drop.
#[derive(Debug)]
pub struct SmallFs {
    at: PathBuf,
}

impl SmallFs {
    /// Mounts a `mb`-MiB filesystem at `at` (an existing, empty directory).
    pub fn mount(at: &Path, mb: u32) -> Result<Self> {
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mb}m,mode=0750"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .map_err(io_err("run mount"))?;
        if !out.status.success() {
            return Err(Error::Command {
                what: format!("mount a {mb} MiB filesystem at {}", at.display()),
                detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        Ok(Self { at: at.to_owned() })
    }

    pub fn path(&self) -> &Path {
        &self.at
    }

    /// Writes a filler file until the filesystem is full: no byte is left for anyone.
    pub fn fill(&self) -> Result<PathBuf> {
        use std::io::Write;
        let filler = self.at.join("filler");
        let mut f = std::fs::File::create(&filler).map_err(io_err("create the filler"))?;
        // The bulk at once (a large filesystem fills in well under a second), then the
        // rest written until the filesystem refuses.
        if let Ok(st) = nix::sys::statvfs::statvfs(&self.at) {
            let free = st.blocks_available() * st.fragment_size();
            let bulk = free.saturating_sub(1 << 20);
            if bulk > 0 {
                let _ = nix::fcntl::fallocate(
                    &f,
                    nix::fcntl::FallocateFlags::empty(),
                    0,
                    bulk as nix::libc::off_t,
                );
                use std::io::Seek;
                f.seek(std::io::SeekFrom::End(0))
                    .map_err(io_err("seek the filler"))?;
            }
        }
        let block = vec![0u8; 64 * 1024];
        loop {
            match f.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(nix::libc::ENOSPC) => break,
                Err(e) => return Err(io_err("fill the filesystem")(e)),
            }
        }
        // The last partial block, byte by byte in larger steps first.
        for size in [4096usize, 512, 1] {
            let small = vec![0u8; size];
            while f.write(&small).is_ok_and(|n| n > 0) {}
        }
        Ok(filler)
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.at)
            .output();
    }
}
