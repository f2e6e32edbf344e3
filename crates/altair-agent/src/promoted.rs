//! The fork point a promotion read, kept per epoch in `<state_dir>/promoted`: a Promote
//! retried for the same epoch (its answer lost, its deadline passed after the server
//! became writable) answers the fork point read while the server was still read-only,
//! never a position that may already hold writes taken as the primary.

use std::path::Path;

const FILE: &str = "promoted";

/// The fork point saved for `epoch`, if the last promotion on this host was for it.
pub(crate) fn saved_for(state_dir: &Path, epoch: u64) -> Option<String> {
    let text = std::fs::read_to_string(state_dir.join(FILE)).ok()?;
    parse(&text, epoch)
}

fn parse(text: &str, epoch: u64) -> Option<String> {
    let (saved, fork) = text.trim_end_matches('\n').split_once(' ')?;
    (saved.parse::<u64>().ok()? == epoch).then(|| fork.to_owned())
}

/// Keeps `fork` as the promotion of `epoch` (a temp file renamed over the old one). It is
/// consulted only by a retry of the same promotion, so it is not synced: a host crash in
/// between restarts mysqld read-only and ends that promotion anyway.
pub(crate) fn save(state_dir: &Path, epoch: u64, fork: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(state_dir)?;
    let tmp = state_dir.join("promoted.tmp");
    std::fs::write(&tmp, format!("{epoch} {fork}\n"))?;
    std::fs::rename(&tmp, state_dir.join(FILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_epoch_gets_its_fork_back() {
        assert_eq!(parse("7 0-1-42\n", 7).as_deref(), Some("0-1-42"));
        assert_eq!(
            parse("7 0-1-42,1-2-3\n", 7).as_deref(),
            Some("0-1-42,1-2-3")
        );
        assert_eq!(parse("7 \n", 7).as_deref(), Some(""));
        assert_eq!(parse("7 0-1-42\n", 8), None);
        assert_eq!(parse("", 7), None);
        assert_eq!(parse("x 0-1-1", 7), None);
    }

    #[test]
    fn saved_and_read_back_in_a_directory() {
        let dir = std::env::temp_dir().join(format!("altair-promoted-{}", std::process::id()));
        save(&dir, 3, "0-1-9").expect("save");
        assert_eq!(saved_for(&dir, 3).as_deref(), Some("0-1-9"));
        save(&dir, 4, "0-1-12").expect("save again");
        assert_eq!(saved_for(&dir, 3), None);
        assert_eq!(saved_for(&dir, 4).as_deref(), Some("0-1-12"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
