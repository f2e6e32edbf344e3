//! The failover's step machine (DESIGN §5) as two pure decisions: what to do before a
//! step runs ([`before`]: run it, wait, roll back, abort or finish) and what the step's
//! outcome leads to ([`after`]). The orchestrator executes what these say and journals
//! each decision; promotion, the record and every end of a pass wait for the journal to
//! be written, so a new leader resumes from the journal alone (at worst redoing the
//! idempotent steps before promotion).
//!
//! Safety lives here: nothing is promoted before the old primary's self-fence has surely
//! fired when its agent could not fence it; a switchover that fails before promotion is
//! rolled back rather than retried (its primary is read-only meanwhile); an operator's
//! abort is honoured until promotion starts and refused from then on (going forward is then the only
//! way to a single writable primary). A failing step is retried with exponential backoff,
//! never in a tight loop.

use super::journal::{Journal, Kind, Step};

/// How failing steps are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// Wait before the first retry.
    pub retry_first_ms: u64,
    /// Longest wait between retries.
    pub retry_max_ms: u64,
    /// A fence hook is configured: a host can be fenced without its agent (powered off).
    pub fence_hook: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            retry_first_ms: 200,
            retry_max_ms: 10_000,
            fence_hook: false,
        }
    }
}

/// What running a step came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// It failed; it may succeed when tried again.
    Failed {
        error: String,
    },
    /// The pre-failover hook said no (before anything was done).
    Refused {
        reason: String,
    },
    /// The chosen candidate's agent does not answer any more.
    CandidateLost {
        error: String,
    },
}

/// What the orchestrator does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Run this step now.
    Run(Step),
    /// The step failed: journal the failure and try it again at `at_ms`.
    RetryAt { step: Step, at_ms: u64 },
    /// Promotion waits until the old primary's self-fence has surely fired.
    AwaitSelfFence { until_ms: u64 },
    /// A switchover that failed before promotion: make the old primary writable again.
    RollBack { reason: String },
    /// An operator aborted before promotion: end without a new primary.
    Abort { reason: String },
    /// The pre-failover hook refused: end, nothing was done.
    Refuse { reason: String },
    /// The candidate is lost before its promotion: choose another one (the lost one
    /// excluded).
    Rechoose { reason: String },
    /// The candidate was lost while it was being promoted (it may be writable): fence it
    /// with the fence hook if another host can be chosen, then see
    /// [`after_candidate_fence`]. Never for a switchover.
    FenceCandidate { reason: String },
    /// The failover is over (its record is written).
    Finish,
}

/// Before running the journal's current step. `abort` is an operator's abort request.
pub fn before(j: &Journal, abort: Option<&str>, now_ms: u64) -> Next {
    if j.step == Step::Done {
        return Next::Finish;
    }
    if let Some(reason) = &j.aborting {
        return Next::RollBack {
            reason: reason.clone(),
        };
    }
    if let Some(reason) = abort
        && abortable(j)
    {
        return match j.kind {
            // A fenced switchover primary is unfenced: that is its abort.
            Kind::Switchover => Next::RollBack {
                reason: format!("aborted by an operator: {reason}"),
            },
            _ => Next::Abort {
                reason: reason.to_owned(),
            },
        };
    }
    if let Some(at_ms) = j.retry_at_ms
        && at_ms > now_ms
    {
        return Next::RetryAt {
            step: j.step,
            at_ms,
        };
    }
    if j.step == Step::Promote
        && let Some(until_ms) = j.promote_not_before_ms
        && until_ms > now_ms
    {
        return Next::AwaitSelfFence { until_ms };
    }
    Next::Run(j.step)
}

/// Whether an operator may still abort: promotion has not started. (Once it has, the
/// candidate may be writable whatever the journal says: only going forward leaves one
/// writable primary.)
pub fn abortable(j: &Journal) -> bool {
    j.step < Step::Promote
}

/// After running `step` (the journal's current step) with `outcome`.
pub fn after(j: &Journal, step: Step, outcome: &Outcome, now_ms: u64, rules: Rules) -> Next {
    match outcome {
        Outcome::Done if step >= Step::Record => Next::Finish,
        Outcome::Done => Next::Run(step.next()),
        Outcome::Refused { reason } => Next::Refuse {
            reason: reason.clone(),
        },
        // Rolled back, not retried: the primary is read-only until then.
        Outcome::Failed { error } if j.kind == Kind::Switchover && step < Step::Promote => {
            Next::RollBack {
                reason: error.clone(),
            }
        }
        // Never asked to promote, so never writable: choose another at once (a switchover
        // rolls back, as above). From promotion on a lost candidate may be writable
        // without its agent able to fence it (its lease can outlive the orchestrator's
        // reach): lost during its promotion, it is fenced by the hook when there is one
        // and then replaced; otherwise its promotion is retried, never replaced.
        Outcome::CandidateLost { error } if step < Step::Promote => match j.kind {
            Kind::Switchover => Next::RollBack {
                reason: error.clone(),
            },
            _ => Next::Rechoose {
                reason: error.clone(),
            },
        },
        // (A switchover keeps retrying: its old primary stays read-only meanwhile.)
        Outcome::CandidateLost { error }
            if step == Step::Promote && rules.fence_hook && j.kind != Kind::Switchover =>
        {
            Next::FenceCandidate {
                reason: error.clone(),
            }
        }
        Outcome::Failed { .. } | Outcome::CandidateLost { .. } => Next::RetryAt {
            step,
            at_ms: now_ms + backoff_ms(j.attempts + 1, rules),
        },
    }
}

/// What became of a candidate lost during its promotion ([`Next::FenceCandidate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CandidateFence {
    /// No other host could be chosen: the hook was not run (powering the only
    /// candidate off would leave the cluster without one for good).
    NoOtherCandidate,
    /// The hook ran and did not report the host off: it may still be writable.
    NotOff,
    /// The hook reported the host off: it can take no write.
    Off,
}

/// After a candidate lost during its promotion was (or was not) fenced by the hook. Off,
/// another is chosen; otherwise its promotion is retried as without a hook.
pub fn after_candidate_fence(
    j: &Journal,
    reason: &str,
    fence: CandidateFence,
    now_ms: u64,
    rules: Rules,
) -> Next {
    match fence {
        CandidateFence::Off => Next::Rechoose {
            reason: format!("{reason}; the fence hook powered it off"),
        },
        CandidateFence::NotOff | CandidateFence::NoOtherCandidate => Next::RetryAt {
            step: Step::Promote,
            at_ms: now_ms + backoff_ms(j.attempts + 1, rules),
        },
    }
}

/// The wait before retry number `attempt` (1-based): doubling from the first, capped.
pub fn backoff_ms(attempt: u32, rules: Rules) -> u64 {
    let doublings = attempt.saturating_sub(1).min(32);
    rules
        .retry_first_ms
        .saturating_mul(1u64 << doublings)
        .min(rules.retry_max_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal(kind: Kind, step: Step) -> Journal {
        let mut j = Journal::new(
            "f1".into(),
            "c1".into(),
            2,
            "db1".into(),
            "mysql_down".into(),
            0,
            Vec::new(),
        );
        j.kind = kind;
        j.step = step;
        j
    }

    const R: Rules = Rules {
        retry_first_ms: 200,
        retry_max_ms: 10_000,
        fence_hook: false,
    };
    const HOOKED: Rules = Rules {
        fence_hook: true,
        ..R
    };

    #[test]
    fn a_step_that_succeeds_leads_to_the_next_and_record_finishes() {
        for w in Step::ALL.windows(2) {
            let j = journal(Kind::Automatic, w[0]);
            let want = if w[0] == Step::Record {
                Next::Finish
            } else {
                Next::Run(w[1])
            };
            assert_eq!(after(&j, w[0], &Outcome::Done, 5, R), want, "{:?}", w[0]);
        }
    }

    #[test]
    fn the_current_step_runs_when_nothing_holds_it() {
        for step in Step::ALL {
            let j = journal(Kind::Automatic, step);
            let want = if step == Step::Done {
                Next::Finish
            } else {
                Next::Run(step)
            };
            assert_eq!(before(&j, None, 5), want);
        }
    }

    #[test]
    fn a_failed_step_is_retried_later_with_doubling_waits() {
        let mut j = journal(Kind::Automatic, Step::Choose);
        let fail = Outcome::Failed {
            error: "no candidate".into(),
        };
        assert_eq!(
            after(&j, Step::Choose, &fail, 1000, R),
            Next::RetryAt {
                step: Step::Choose,
                at_ms: 1200
            }
        );
        j.attempts = 3;
        assert_eq!(
            after(&j, Step::Choose, &fail, 1000, R),
            Next::RetryAt {
                step: Step::Choose,
                at_ms: 1000 + 1600
            }
        );
        j.attempts = 40;
        assert_eq!(
            after(&j, Step::Choose, &fail, 1000, R),
            Next::RetryAt {
                step: Step::Choose,
                at_ms: 11_000
            }
        );
    }

    #[test]
    fn a_step_waiting_for_its_retry_is_not_run_before_then() {
        let mut j = journal(Kind::Automatic, Step::CatchUp);
        j.retry_at_ms = Some(500);
        assert_eq!(
            before(&j, None, 499),
            Next::RetryAt {
                step: Step::CatchUp,
                at_ms: 500
            }
        );
        assert_eq!(before(&j, None, 500), Next::Run(Step::CatchUp));
    }

    #[test]
    fn backoff_doubles_from_the_first_wait_and_is_capped() {
        let waits: Vec<u64> = (1..=8).map(|a| backoff_ms(a, R)).collect();
        assert_eq!(waits, [200, 400, 800, 1600, 3200, 6400, 10_000, 10_000]);
        assert_eq!(backoff_ms(u32::MAX, R), 10_000);
    }

    #[test]
    fn a_switchover_failing_before_promotion_is_rolled_back_not_retried() {
        for step in [Step::Fence, Step::Choose, Step::CatchUp, Step::Salvage] {
            let j = journal(Kind::Switchover, step);
            let fail = Outcome::Failed {
                error: "lagging".into(),
            };
            assert_eq!(
                after(&j, step, &fail, 0, R),
                Next::RollBack {
                    reason: "lagging".into()
                },
                "{step:?}"
            );
        }
        // From promotion on it only goes forward.
        let j = journal(Kind::Switchover, Step::Repoint);
        let fail = Outcome::Failed { error: "x".into() };
        assert!(matches!(
            after(&j, Step::Repoint, &fail, 0, R),
            Next::RetryAt { .. }
        ));
    }

    #[test]
    fn a_rollback_in_progress_resumes_as_a_rollback() {
        let mut j = journal(Kind::Switchover, Step::CatchUp);
        j.aborting = Some("lagging".into());
        assert_eq!(
            before(&j, None, 0),
            Next::RollBack {
                reason: "lagging".into()
            }
        );
    }

    #[test]
    fn a_refused_hook_ends_the_failover() {
        let j = journal(Kind::Automatic, Step::Fence);
        let o = Outcome::Refused {
            reason: "hook said no".into(),
        };
        assert_eq!(
            after(&j, Step::Fence, &o, 0, R),
            Next::Refuse {
                reason: "hook said no".into()
            }
        );
    }

    #[test]
    fn promotion_waits_for_the_old_primarys_self_fence_and_only_promotion() {
        let mut j = journal(Kind::Automatic, Step::CatchUp);
        j.promote_not_before_ms = Some(9_000);
        assert_eq!(before(&j, None, 1_000), Next::Run(Step::CatchUp));
        j.step = Step::Promote;
        assert_eq!(
            before(&j, None, 1_000),
            Next::AwaitSelfFence { until_ms: 9_000 }
        );
        assert_eq!(before(&j, None, 9_000), Next::Run(Step::Promote));
    }

    fn lost() -> Outcome {
        Outcome::CandidateLost {
            error: "db2 unreachable".into(),
        }
    }

    #[test]
    fn a_candidate_lost_before_promotion_is_replaced_at_once() {
        for step in [Step::CatchUp, Step::Salvage] {
            let j = journal(Kind::Automatic, step);
            assert_eq!(
                after(&j, step, &lost(), 0, R),
                Next::Rechoose {
                    reason: "db2 unreachable".into()
                },
                "{step:?}"
            );
        }
        // A switchover rolls back instead.
        let j = journal(Kind::Switchover, Step::CatchUp);
        assert!(matches!(
            after(&j, Step::CatchUp, &lost(), 0, R),
            Next::RollBack { .. }
        ));
    }

    #[test]
    fn a_candidate_lost_from_promotion_on_is_retried_never_replaced() {
        for kind in [Kind::Automatic, Kind::Switchover] {
            for step in [Step::Promote, Step::Repoint, Step::Publish] {
                let mut j = journal(kind, step);
                j.attempts = 10;
                assert!(
                    matches!(after(&j, step, &lost(), 0, R), Next::RetryAt { .. }),
                    "{kind:?} {step:?}"
                );
            }
        }
    }

    #[test]
    fn a_candidate_lost_during_its_promotion_is_fenced_by_the_hook_when_there_is_one() {
        // A switchover keeps retrying (its old primary is read-only meanwhile).
        let s = journal(Kind::Switchover, Step::Promote);
        assert!(matches!(
            after(&s, Step::Promote, &lost(), 0, HOOKED),
            Next::RetryAt { .. }
        ));
        for kind in [Kind::Automatic, Kind::Forced] {
            let j = journal(kind, Step::Promote);
            assert_eq!(
                after(&j, Step::Promote, &lost(), 0, HOOKED),
                Next::FenceCandidate {
                    reason: "db2 unreachable".into()
                },
                "{kind:?}"
            );
            // Promoted already (repoint, publish): it is the primary, lost or not.
            for step in [Step::Repoint, Step::Publish] {
                let j = journal(kind, step);
                assert!(
                    matches!(after(&j, step, &lost(), 0, HOOKED), Next::RetryAt { .. }),
                    "{kind:?} {step:?}"
                );
            }
            // A promotion that failed with its candidate answering is retried.
            let failed = Outcome::Failed {
                error: "read_only refused".into(),
            };
            assert!(matches!(
                after(&j, Step::Promote, &failed, 0, HOOKED),
                Next::RetryAt { .. }
            ));
        }
    }

    #[test]
    fn a_candidate_the_hook_powered_off_is_replaced_and_one_it_did_not_is_retried() {
        let j = journal(Kind::Automatic, Step::Promote);
        assert_eq!(
            after_candidate_fence(&j, "db2 lost", CandidateFence::Off, 0, HOOKED),
            Next::Rechoose {
                reason: "db2 lost; the fence hook powered it off".into()
            }
        );
        for fence in [CandidateFence::NotOff, CandidateFence::NoOtherCandidate] {
            assert_eq!(
                after_candidate_fence(&j, "db2 lost", fence, 1_000, HOOKED),
                Next::RetryAt {
                    step: Step::Promote,
                    at_ms: 1_200
                },
                "{fence:?}"
            );
        }
    }

    #[test]
    fn an_operator_abort_before_promotion_ends_the_failover() {
        for step in [Step::Fence, Step::Choose, Step::CatchUp, Step::Salvage] {
            let j = journal(Kind::Automatic, step);
            assert_eq!(
                before(&j, Some("manual recovery"), 0),
                Next::Abort {
                    reason: "manual recovery".into()
                },
                "{step:?}"
            );
        }
        // Even while a retry holds it.
        let mut j = journal(Kind::Forced, Step::CatchUp);
        j.retry_at_ms = Some(10_000);
        assert!(matches!(before(&j, Some("x"), 0), Next::Abort { .. }));
    }

    #[test]
    fn an_operator_abort_of_a_switchover_rolls_it_back() {
        let j = journal(Kind::Switchover, Step::CatchUp);
        assert_eq!(
            before(&j, Some("wrong host"), 0),
            Next::RollBack {
                reason: "aborted by an operator: wrong host".into()
            }
        );
    }

    #[test]
    fn an_abort_once_promotion_started_is_refused_and_the_failover_goes_on() {
        for step in [Step::Promote, Step::Repoint, Step::Publish, Step::Record] {
            let j = journal(Kind::Automatic, step);
            assert!(!abortable(&j));
            assert_eq!(before(&j, Some("x"), 0), Next::Run(step));
        }
    }
}
