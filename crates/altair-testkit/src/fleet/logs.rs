//! The services' logs: what a failing test prints to explain itself.

use std::path::{Path, PathBuf};

use super::Fleet;

impl Fleet {
    /// The last `per_file` WARN and ERROR lines of every service's log (colours removed),
    /// each prefixed by the service: what a failing test prints to explain itself.
    pub fn warnings(&self, per_file: usize) -> String {
        let mut out = String::new();
        for log in self.logs() {
            let Ok(text) = std::fs::read(&log) else {
                continue;
            };
            let text = strip_ansi(&String::from_utf8_lossy(&text));
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
                .collect();
            let name = log.file_stem().map(|s| s.to_string_lossy().into_owned());
            for line in &lines[lines.len().saturating_sub(per_file)..] {
                let line: String = line.chars().take(400).collect();
                out.push_str(&format!("[{}] {line}\n", name.as_deref().unwrap_or("?")));
            }
        }
        out
    }

    /// Where every service's log ends now: `LogMarks::timeline` prints what was logged
    /// after.
    pub fn log_marks(&self) -> LogMarks {
        let dir = self.dir.path().to_owned();
        let ends = logs_in(&dir)
            .into_iter()
            .map(|p| {
                let len = std::fs::metadata(&p).map_or(0, |m| m.len());
                (p, len)
            })
            .collect();
        LogMarks { dir, ends }
    }

    fn logs(&self) -> Vec<PathBuf> {
        logs_in(self.dir.path())
    }
}

/// Removes terminal colour sequences (`ESC [ ... m`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Where each service's log ended at some moment (`Fleet::log_marks`). Owns what it
/// needs: a test holds it beside a `&mut` world and prints it when it panics.
#[derive(Debug, Clone, Default)]
pub struct LogMarks {
    dir: PathBuf,
    ends: Vec<(PathBuf, u64)>,
}

impl LogMarks {
    /// What every service logged (INFO and above) since these marks, merged in time
    /// order (the lines' own timestamps), each prefixed by the service; the last `max`
    /// lines. What a failing chaos round prints: what each component saw, in order.
    pub fn timeline(&self, max: usize) -> String {
        let mut lines: Vec<(String, String)> = Vec::new();
        for log in logs_in(&self.dir) {
            let from = self
                .ends
                .iter()
                .find(|(p, _)| *p == log)
                .map_or(0, |(_, len)| *len);
            let Ok(bytes) = std::fs::read(&log) else {
                continue;
            };
            let tail = bytes.get(from as usize..).unwrap_or_default();
            let text = strip_ansi(&String::from_utf8_lossy(tail));
            let name = log
                .file_stem()
                .map_or_else(|| "?".into(), |s| s.to_string_lossy().into_owned());
            // A line without a stamp of its own (a panic, a backtrace, the rest of a
            // line cut by the mark) takes the one before it, and so keeps its place.
            let mut last = String::new();
            for line in text.lines() {
                if line.is_empty() || line.contains(" DEBUG ") || line.contains(" TRACE ") {
                    continue;
                }
                let first = line.split_whitespace().next().unwrap_or_default();
                if is_stamp(first) {
                    first.clone_into(&mut last);
                }
                let line: String = line.chars().take(400).collect();
                lines.push((last.clone(), format!("[{name}] {line}")));
            }
        }
        // RFC 3339 UTC stamps of one format sort as text; the sort is stable.
        lines.sort_by(|a, b| a.0.cmp(&b.0));
        let skip = lines.len().saturating_sub(max);
        let mut out = String::new();
        if skip > 0 {
            out.push_str(&format!("({skip} earlier lines left out)\n"));
        }
        for (_, line) in &lines[skip..] {
            out.push_str(line);
            out.push('\n');
        }
        out
    }
}

/// `2026-12-06T03:41:20.056923Z`: the stamp tracing puts first on a line.
fn is_stamp(word: &str) -> bool {
    let b = word.as_bytes();
    b.len() >= 20 && b[4] == b'-' && b[10] == b'T' && word.ends_with('Z')
}

/// The `.log` files of a fleet's directory, by name.
fn logs_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut logs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    logs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeline_merges_services_by_time_after_the_marks() {
        let dir = tempfile::tempdir().expect("temp dir");
        let a = dir.path().join("agent-db1.log");
        let m = dir.path().join("monitor-m1.log");
        std::fs::write(&a, "2026-12-06T03:00:00.000000Z  INFO before the mark\n").expect("write");
        let marks = LogMarks {
            dir: dir.path().to_owned(),
            ends: vec![(a.clone(), std::fs::metadata(&a).expect("len").len())],
        };
        let more = "2026-12-06T03:00:01.000000Z  WARN agent first\n\
                    thread 'x' panicked at here\n\
                    2026-12-06T03:00:03.000000Z ERROR agent third\n\
                    2026-12-06T03:00:03.500000Z DEBUG left out\n";
        std::fs::write(
            &a,
            format!("2026-12-06T03:00:00.000000Z  INFO before the mark\n{more}"),
        )
        .expect("write");
        std::fs::write(&m, "2026-12-06T03:00:02.000000Z  INFO monitor second\n").expect("write");
        let t = marks.timeline(10);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4, "{t}");
        assert!(lines[0].ends_with("agent first"), "{t}");
        assert!(lines[1].ends_with("panicked at here"), "{t}");
        assert!(lines[2].starts_with("[monitor-m1]"), "{t}");
        assert!(lines[3].ends_with("agent third"), "{t}");
        assert!(marks.timeline(2).starts_with("(2 earlier lines left out)"));
    }
}
