//! The soak's tally (issue 16): what each chaos round did, summed by fault into the
//! table `make soak` prints at the end of a run.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One round, as the chaos run judged it (a round that fails its checks panics first).
#[derive(Debug, Clone)]
pub struct RoundRecord {
    pub fault: String,
    /// The fault requires a failover.
    pub required: bool,
    /// The fault must not fail over.
    pub forbidden: bool,
    pub failed_over: bool,
    /// The longest time without an acknowledged write, from the fault to the round's end.
    pub outage: Duration,
    pub acked: usize,
    pub lost: usize,
    /// An old primary's rejoin had to be forced (errant transactions).
    pub forced_rejoin: bool,
}

/// The longest span of `[from, to]` in which no write was acknowledged (`acks` are the
/// acknowledgement times, in any order): how long the application could not write.
pub fn write_outage(acks: &[Instant], from: Instant, to: Instant) -> Duration {
    let mut inside: Vec<Instant> = acks
        .iter()
        .copied()
        .filter(|a| *a >= from && *a <= to)
        .collect();
    inside.sort();
    let mut last = from;
    let mut longest = Duration::ZERO;
    for a in inside.into_iter().chain(std::iter::once(to)) {
        longest = longest.max(a.saturating_duration_since(last));
        last = a;
    }
    longest
}

/// The nearest-rank percentile `p` (0–100) of `values`; zero when there are none.
pub fn percentile(values: &[Duration], p: f64) -> Duration {
    let mut v = values.to_vec();
    v.sort();
    if v.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

#[derive(Default)]
struct Row {
    rounds: usize,
    required: usize,
    done: usize,
    false_failovers: usize,
    forced: usize,
    outages: Vec<Duration>,
    acked: usize,
    lost: usize,
}

impl Row {
    fn add(&mut self, r: &RoundRecord) {
        self.rounds += 1;
        self.required += usize::from(r.required);
        self.done += usize::from(r.failed_over);
        self.false_failovers += usize::from(r.forbidden && r.failed_over);
        self.forced += usize::from(r.forced_rejoin);
        self.outages.push(r.outage);
        self.acked += r.acked;
        self.lost += r.lost;
    }

    fn line(&self, name: &str) -> String {
        let secs = |d: Duration| format!("{:.1}", d.as_secs_f64());
        format!(
            "| {name:<32} | {:>6} | {:>8} | {:>4} | {:>5} | {:>6} | {:>7} | {:>7} | {:>7} | {:>9} | {:>4} |",
            self.rounds,
            self.required,
            self.done,
            self.false_failovers,
            self.forced,
            secs(percentile(&self.outages, 50.0)),
            secs(percentile(&self.outages, 99.0)),
            secs(self.outages.iter().copied().max().unwrap_or_default()),
            self.acked,
            self.lost,
        )
    }
}

/// The table of a run: a row per fault (rounds; failovers required, done, false; forced
/// rejoins; write outage p50/p99/max in seconds; writes acknowledged and lost), then
/// the totals.
pub fn table(records: &[RoundRecord]) -> String {
    let mut by_fault: BTreeMap<&str, Row> = BTreeMap::new();
    let mut total = Row::default();
    for r in records {
        by_fault.entry(&r.fault).or_default().add(r);
        total.add(r);
    }
    let mut out = String::new();
    out.push_str(
        "| fault                            | rounds | required | done | false | forced | out p50 | out p99 | out max | acked     | lost |\n",
    );
    out.push_str(
        "|----------------------------------|--------|----------|------|-------|--------|---------|---------|---------|-----------|------|\n",
    );
    for (name, row) in &by_fault {
        out.push_str(&row.line(name));
        out.push('\n');
    }
    out.push_str(&total.line("all"));
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outage_is_the_longest_silence_after_the_fault() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let acks = [at(100), at(200), at(1_700), at(1_800), at(50)];
        // Before the fault (50, 100) does not count; 200 → 1,700 is the gap.
        assert_eq!(
            write_outage(&acks, at(150), at(2_000)),
            Duration::from_millis(1_500)
        );
        // No write after the fault at all: the whole window.
        assert_eq!(
            write_outage(&acks, at(1_900), at(3_000)),
            Duration::from_millis(1_100)
        );
        assert_eq!(write_outage(&[], at(0), at(10)), Duration::from_millis(10));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_secs).collect();
        assert_eq!(percentile(&v, 50.0), Duration::from_secs(50));
        assert_eq!(percentile(&v, 99.0), Duration::from_secs(99));
        assert_eq!(
            percentile(&[Duration::from_secs(3)], 99.0),
            Duration::from_secs(3)
        );
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
    }

    #[test]
    fn the_table_sums_by_fault() {
        let r = |fault: &str, required: bool, failed_over: bool, outage_ms: u64| RoundRecord {
            fault: fault.into(),
            required,
            forbidden: !required,
            failed_over,
            outage: Duration::from_millis(outage_ms),
            acked: 100,
            lost: 0,
            forced_rejoin: false,
        };
        let t = table(&[
            r("PrimaryMysqldKilled", true, true, 3_000),
            r("PrimaryMysqldKilled", true, true, 5_000),
            r("MonitorKilled", false, false, 200),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 5, "{t}");
        assert!(lines[2].starts_with("| MonitorKilled "), "{t}");
        assert!(
            lines[3].contains("|      2 |        2 |    2 |     0 |"),
            "{t}"
        );
        assert!(lines[3].contains("|     3.0 |     5.0 |     5.0 |"), "{t}");
        assert!(
            lines[4].contains("| all ") && lines[4].contains("300"),
            "{t}"
        );
    }
}
