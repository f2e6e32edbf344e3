//! The orchestrator's failover branches against scripted agents (layer 2, see
//! `altair_e2e::scripted`): the real orchestrator, ZooKeeper and BIND; agents that answer
//! as each test says and log every call with its time. Each test asserts what an
//! operator would check afterwards: who was promoted, where DNS points, what the audit
//! says was lost, and which host was never asked to promote.

use std::time::Duration;

use altair_core::health::Health;
use altair_core::selffence::earliest_promotion_ms;
use altair_e2e::scripted::{
    FenceAnswer, PROBE_INTERVAL_MS, SELF_FENCE_AFTER_MS, Script, Scripted, mysql_ip,
};
use altair_e2e::sim_fleet::unix_ms;

const FAILOVER_WITHIN: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_lost_during_catch_up_is_replaced_and_never_promoted() {
    // db2 has everything and is chosen; it dies when asked to catch up. db3 lacks two
    // transactions, which the old primary's binlog still holds.
    let mut db3 = Script::at("0-1-98");
    db3.gtid_after_apply = Some("0-1-100".into());
    let mut db1 = Script::at("0-1-100");
    db1.salvage = Some((2, "0-1-100".into()));
    let mut db2 = Script::at("0-1-100");
    db2.lost_at_catch_up = true;
    let s = Scripted::start([db1, db2, db3]).await;
    s.fail_primary(Health::MysqlDown, unix_ms()).await;

    let f = s.finished(FAILOVER_WITHIN).await;
    let story = s.story();
    assert_eq!(f.outcome, "succeeded", "{f:?}\n{story}");
    assert_eq!(f.new_primary.as_deref(), Some("db3"), "{f:?}\n{story}");
    let promoted: Vec<String> = s.calls_of("promote").into_iter().map(|c| c.host).collect();
    assert_eq!(
        promoted,
        ["db3"],
        "only db3 is ever asked to promote\n{story}"
    );
    assert!(
        s.calls_of("catch_up").iter().any(|c| c.host == "db2"),
        "db2 was chosen first and lost at catch-up\n{story}"
    );
    assert_eq!(s.calls_of("apply_salvage").len(), 1, "{story}");
    assert_eq!(f.transactions_salvaged, 2, "{f:?}");
    assert_eq!(
        f.gtids_lost, "",
        "db3 got the two missing transactions: {f:?}"
    );
    assert_eq!(s.dns_primary().await, [mysql_ip("db3")], "{story}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_lost_while_applying_the_salvage_is_replaced_and_never_promoted() {
    // db2 is the best candidate but lacks one transaction; it dies while the salvaged
    // events stream into it. With the default policy (promote when salvage fails) the
    // failover must not go on to promote a candidate that no longer answers: it was
    // once retried forever on the dead host, leaving the cluster without a primary.
    let mut db1 = Script::at("0-1-100");
    db1.salvage = Some((2, "0-1-99,0-1-100".into()));
    let mut db2 = Script::at("0-1-99");
    db2.lost_at_apply = true;
    let mut db3 = Script::at("0-1-98");
    db3.gtid_after_apply = Some("0-1-100".into());
    let s = Scripted::start([db1, db2, db3]).await;
    s.fail_primary(Health::MysqlDown, unix_ms()).await;

    let f = s.finished(FAILOVER_WITHIN).await;
    let story = s.story();
    assert_eq!(f.outcome, "succeeded", "{f:?}\n{story}");
    assert_eq!(f.new_primary.as_deref(), Some("db3"), "{f:?}\n{story}");
    let promoted: Vec<String> = s.calls_of("promote").into_iter().map(|c| c.host).collect();
    assert_eq!(
        promoted,
        ["db3"],
        "only db3 is ever asked to promote\n{story}"
    );
    assert!(
        s.calls_of("apply_salvage").iter().any(|c| c.host == "db2"),
        "db2 was chosen first and lost while applying\n{story}"
    );
    assert_eq!(f.gtids_lost, "", "db3 got every transaction: {f:?}");
    assert_eq!(s.dns_primary().await, [mysql_ip("db3")], "{story}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_old_primary_is_promoted_around_only_after_its_self_fence_bound() {
    let mut db1 = Script::at("0-1-100");
    db1.not_listening = true;
    // The monitors last heard db1 now; its failsafe rounds reached both replicas 1.5 s
    // later still (its monitors were cut first): it stays writable until that round
    // + its bound, and the replicas say so when asked whether they reach it.
    let last_heard = unix_ms();
    let last_round = last_heard + 1_500;
    let mut db2 = Script::at("0-1-100");
    let mut db3 = Script::at("0-1-99");
    db2.last_heard_from_primary_ms = last_round;
    db3.last_heard_from_primary_ms = last_round - 200;
    let s = Scripted::start([db1, db2, db3]).await;
    s.fail_primary(Health::Unreachable, last_heard).await;

    let f = s.finished(FAILOVER_WITHIN).await;
    let story = s.story();
    assert_eq!(f.outcome, "succeeded", "{f:?}\n{story}");
    assert_eq!(f.new_primary.as_deref(), Some("db2"), "{f:?}\n{story}");
    let bound = earliest_promotion_ms(
        last_heard,
        last_round,
        SELF_FENCE_AFTER_MS,
        PROBE_INTERVAL_MS,
    );
    let promotes = s.calls_of("promote");
    assert_eq!(promotes.len(), 1, "{story}");
    assert!(
        promotes[0].at_ms >= bound,
        "promoted at {} ms, before the old primary's self-fence bound {bound} ms\n{story}",
        promotes[0].at_ms
    );
    // Catch-up did not wait for the bound: only promotion did.
    let catch_up = s.calls_of("catch_up");
    assert!(
        catch_up.first().is_some_and(|c| c.at_ms < bound),
        "catch-up ran before the bound passed\n{story}"
    );
    assert!(
        f.gtids_lost.starts_with("unknown"),
        "the old host never answered, so what it had is unknown: {:?}",
        f.gtids_lost
    );
    assert_eq!(s.dns_primary().await, [mysql_ip("db2")], "{story}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_primary_whose_agent_the_monitors_still_hear_is_never_left_to_self_fencing() {
    // The orchestrator cannot reach db1's agent, but the monitors still hear it (its
    // health is mysql_down, not unreachable): it keeps its lease, so it will not fence
    // itself however long one waits, and its self-fencing bound proves nothing.
    let mut db1 = Script::at("0-1-100");
    db1.not_listening = true;
    let s = Scripted::start([db1, Script::at("0-1-100"), Script::at("0-1-99")]).await;
    let heard = unix_ms();
    s.fail_primary(Health::MysqlDown, heard).await;
    let bound = earliest_promotion_ms(heard, heard, SELF_FENCE_AFTER_MS, PROBE_INTERVAL_MS);
    tokio::time::sleep(Duration::from_millis(
        (bound + 2_000).saturating_sub(unix_ms()),
    ))
    .await;
    let story = s.story();
    assert!(
        s.calls_of("promote").is_empty(),
        "promoted around a primary whose agent still holds its lease\n{story}"
    );
    let j = s.journal().await.expect("the failover is still running");
    assert_eq!(j.step.as_str(), "fence", "{j:?}\n{story}");
    assert!(
        j.last_error.contains("still heard by the monitors"),
        "status says why it waits: {:?}",
        j.last_error
    );

    // Now no monitor hears it either: its lease lapses, and the bound from that last
    // heartbeat applies.
    let lost = unix_ms();
    s.fail_primary(Health::Unreachable, lost).await;
    let f = s.finished(FAILOVER_WITHIN).await;
    let story = s.story();
    assert_eq!(f.outcome, "succeeded", "{f:?}\n{story}");
    let promotes = s.calls_of("promote");
    assert_eq!(promotes.len(), 1, "{story}");
    // No replica says when it last heard from db1: the failed fence's own time (after
    // `lost`) stands in for its last failsafe round.
    let bound = earliest_promotion_ms(lost, lost, SELF_FENCE_AFTER_MS, PROBE_INTERVAL_MS);
    assert!(
        promotes[0].at_ms >= bound,
        "promoted at {} ms, before the self-fence bound {bound} ms counted from the last heartbeat\n{story}",
        promotes[0].at_ms
    );
    assert_eq!(s.dns_primary().await, [mysql_ip("db2")], "{story}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fence_answered_without_an_outcome_is_not_a_fence() {
    let mut db1 = Script::at("0-1-100");
    db1.fence = FenceAnswer::WithoutOutcome;
    let s = Scripted::start([db1, Script::at("0-1-100"), Script::at("0-1-100")]).await;
    s.fail_primary(Health::MysqlDown, unix_ms()).await;

    // Fence attempts go on with a growing backoff; nothing is promoted meanwhile.
    let started = std::time::Instant::now();
    while s.calls_of("fence").len() < 4 {
        assert!(
            started.elapsed() < FAILOVER_WITHIN,
            "the fence was not retried\n{}",
            s.story()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let story = s.story();
    assert!(
        s.calls_of("promote").is_empty(),
        "promoted without a fence\n{story}"
    );
    assert!(
        s.calls_of("catch_up").is_empty(),
        "went past the fence\n{story}"
    );
    let j = s.journal().await.expect("the failover is still running");
    assert_eq!(j.step.as_str(), "fence", "{j:?}");
    let at: Vec<u64> = s.calls_of("fence").iter().map(|c| c.at_ms).collect();
    let gaps: Vec<u64> = at.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps[0] >= 150 && gaps[2] > gaps[0],
        "retries back off (gaps {gaps:?} ms)\n{story}"
    );

    // The agent now fences for real: the failover goes on from the fence.
    s.edit("db1", |d| d.fence = FenceAnswer::ReadOnly);
    let f = s.finished(FAILOVER_WITHIN).await;
    let story = s.story();
    assert_eq!(f.outcome, "succeeded", "{f:?}\n{story}");
    let promote = s.calls_of("promote");
    assert_eq!(promote.len(), 1, "{story}");
    let real_fence = s
        .calls_of("fence")
        .into_iter()
        .filter(|c| c.at_ms < promote[0].at_ms)
        .count();
    assert!(
        real_fence > 4,
        "promotion came after the answered fence\n{story}"
    );
    assert!(
        f.notes
            .iter()
            .any(|n| n.contains("fenced through its agent (read_only")),
        "{:?}",
        f.notes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_promotion_is_retried_on_the_same_candidate() {
    let mut db2 = Script::at("0-1-100");
    db2.promote_failures = 2;
    let s = Scripted::start([Script::at("0-1-100"), db2, Script::at("0-1-99")]).await;
    s.fail_primary(Health::MysqlDown, unix_ms()).await;

    let f = s.finished(FAILOVER_WITHIN).await;
    let story = s.story();
    assert_eq!(f.outcome, "succeeded", "{f:?}\n{story}");
    assert_eq!(f.new_primary.as_deref(), Some("db2"), "{f:?}\n{story}");
    let promotes = s.calls_of("promote");
    assert!(
        promotes.iter().all(|c| c.host == "db2"),
        "once asked to promote, db2 may be writable: it is never replaced\n{story}"
    );
    assert_eq!(promotes.len(), 3, "two failures, then success\n{story}");
    assert!(
        promotes[1].at_ms - promotes[0].at_ms >= 150,
        "the retry waits\n{story}"
    );
    assert_eq!(s.dns_primary().await, [mysql_ip("db2")], "{story}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_lost_after_its_promotion_is_never_replaced() {
    // Once asked to promote, db2 may be writable with no one able to fence it: going
    // forward with it is the only way to one writable primary.
    let mut db2 = Script::at("0-1-100");
    db2.lost_after_promote = true;
    let s = Scripted::start([Script::at("0-1-100"), db2, Script::at("0-1-100")]).await;
    s.fail_primary(Health::MysqlDown, unix_ms()).await;

    let f = s.finished(FAILOVER_WITHIN).await;
    let story = s.story();
    assert_eq!(f.new_primary.as_deref(), Some("db2"), "{f:?}\n{story}");
    let promoted: Vec<String> = s.calls_of("promote").into_iter().map(|c| c.host).collect();
    assert_eq!(
        promoted,
        ["db2"],
        "db3 is never promoted beside db2\n{story}"
    );
    assert_eq!(s.dns_primary().await, [mysql_ip("db2")], "{story}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_lost_during_its_promotion_is_powered_off_by_the_fence_hook_and_replaced() {
    // db2 is chosen and goes down when asked to promote: it may have become writable,
    // and nothing proves it fenced — so without a hook its promotion is retried until
    // it answers. With a fence hook it is powered off and db3 is promoted instead.
    let hook_dir = tempfile::tempdir().expect("dir");
    let events = hook_dir.path().join("events");
    let hook = hook_dir.path().join("power-off");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\ncat >> {e}\necho >> {e}\ndate +%s%3N > {e}.done\n",
            e = events.display()
        ),
    )
    .expect("write the hook");
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let mut db2 = Script::at("0-1-100");
    db2.lost_at_promote = true;
    let fence = format!(
        "[fence]\ncommand = [{:?}]\ntimeout_ms = 5000\n",
        hook.display().to_string()
    );
    let s = Scripted::start_with([Script::at("0-1-100"), db2, Script::at("0-1-99")], &fence).await;
    s.fail_primary(Health::MysqlDown, unix_ms()).await;

    let f = s.finished(FAILOVER_WITHIN).await;
    let story = s.story();
    assert_eq!(f.outcome, "succeeded", "{f:?}\n{story}");
    assert_eq!(f.new_primary.as_deref(), Some("db3"), "{f:?}\n{story}");
    let promoted: Vec<String> = s.calls_of("promote").into_iter().map(|c| c.host).collect();
    assert_eq!(promoted, ["db2", "db3"], "{story}");
    let fenced = std::fs::read_to_string(&events).expect("the hook ran");
    let fenced: Vec<serde_json::Value> = fenced
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("the hook's event is JSON"))
        .collect();
    assert_eq!(fenced.len(), 1, "{fenced:?}");
    assert_eq!(fenced[0]["host"], "db2", "{fenced:?}");
    assert!(
        fenced[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("lost during its promotion")),
        "{fenced:?}"
    );
    // db3 was promoted only after the hook had powered db2 off, and db2 waits for a
    // rejoin (it may have been writable).
    let off_at: u64 = std::fs::read_to_string(events.with_extension("done"))
        .expect("the hook finished")
        .trim()
        .parse()
        .expect("a time");
    let db3_at = s.calls_of("promote")[1].at_ms;
    assert!(
        db3_at >= off_at,
        "db3 promoted at {db3_at}, before the hook finished at {off_at}\n{story}"
    );
    let c = altair_core::ClusterName::new("c1".to_owned()).expect("name");
    let state: altair_core::registry::ClusterState =
        s.zk.get_record("state", &s.zk.layout().cluster_state(&c))
            .await
            .expect("read")
            .expect("a state");
    assert!(state.needs_rejoin.contains(&"db2".to_owned()), "{state:?}");
    assert_eq!(s.dns_primary().await, [mysql_ip("db3")], "{story}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_lost_during_its_promotion_without_a_fence_hook_is_retried_never_replaced() {
    let mut db2 = Script::at("0-1-100");
    db2.lost_at_promote = true;
    let s = Scripted::start([Script::at("0-1-100"), db2, Script::at("0-1-99")]).await;
    s.fail_primary(Health::MysqlDown, unix_ms()).await;
    s.until_called("promote", "db2", 1, FAILOVER_WITHIN).await;
    // Lost while being promoted, db2 may be writable: nobody else is promoted.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let story = s.story();
    assert!(
        s.calls_of("promote").iter().all(|c| c.host == "db2"),
        "another host promoted beside a candidate that may be writable\n{story}"
    );
    let j = s.journal().await.expect("the failover is still running");
    assert_eq!(j.step.as_str(), "promote", "{j:?}\n{story}");
    // db2 answers again: its promotion goes through.
    s.edit("db2", |d| {
        d.down = false;
        d.lost_at_promote = false;
    });
    let f = s.finished(FAILOVER_WITHIN).await;
    let story = s.story();
    assert_eq!(f.new_primary.as_deref(), Some("db2"), "{f:?}\n{story}");
    assert_eq!(s.dns_primary().await, [mysql_ip("db2")], "{story}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_found_alive_is_verified_again_and_failed_over_once_dead() {
    // Row 4a then a crash: the monitors lost the primary's agent, but db2 still reaches
    // its mysqld, so there is no failover; when db2 stops reaching it, a later
    // verification (not a new health transition) fails it over.
    let mut db2 = Script::at("0-1-100");
    db2.sees_primary = true;
    let s = Scripted::start([Script::at("0-1-100"), db2, Script::at("0-1-100")]).await;
    s.fail_primary(Health::Unreachable, unix_ms()).await;

    // Verified again (a second check through db2), not only at the transition.
    s.until_called("check_reachability", "db2", 2, FAILOVER_WITHIN)
        .await;
    let story = s.story();
    assert!(
        s.calls_of("fence").is_empty(),
        "a reachable primary was fenced\n{story}"
    );
    assert!(
        s.alive_verdicts().await >= 1,
        "the alive verdict is audited\n{story}"
    );

    s.edit("db2", |d| d.sees_primary = false);
    let changed = unix_ms();
    let f = s.finished(FAILOVER_WITHIN).await;
    let story = s.story();
    assert_eq!(f.outcome, "succeeded", "{f:?}\n{story}");
    let fence = s.calls_of("fence");
    // Within 3 verify intervals (2 s each by default) + 2 s.
    assert!(
        fence
            .first()
            .is_some_and(|c| c.at_ms < changed + 3 * 2_000 + 2_000),
        "the dead primary was fenced {} ms after it became unreachable\n{story}",
        fence.first().map_or(0, |c| c.at_ms.saturating_sub(changed))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_without_its_history_parent_still_records_its_failover() {
    let s = Scripted::start([
        Script::at("0-1-100"),
        Script::at("0-1-100"),
        Script::at("0-1-100"),
    ])
    .await;
    // As an older layout (or a hand-cleaned tree) leaves it: no history parent.
    let c = altair_core::ClusterName::new(altair_e2e::scripted::CLUSTER.to_owned()).expect("name");
    s.zk.delete(&s.zk.layout().history(&c))
        .await
        .expect("delete");
    s.fail_primary(Health::MysqlDown, unix_ms()).await;

    let f = s.finished(FAILOVER_WITHIN).await;
    let story = s.story();
    assert_eq!(f.outcome, "succeeded", "{f:?}\n{story}");
    assert_eq!(s.calls_of("promote").len(), 1, "promoted once\n{story}");
    assert!(
        s.journal().await.is_none(),
        "the journal is closed\n{story}"
    );
}
