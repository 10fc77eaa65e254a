//! Quorum arithmetic and its verdicts in words. No I/O.
//!
//! etcd's rules (runtime-configuration guide): a change of membership needs
//! a live majority of voters; learners do not vote; removing a member from
//! a 2-voter cluster is unsafe; a new voter counts towards the quorum from
//! the moment it is added, before it has started.

/// Voter counts of a cluster at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quorum {
    /// Voting members.
    pub voters: usize,
    /// Voting members that answered and are healthy.
    pub healthy_voters: usize,
    /// All members, learners included.
    pub total: usize,
    /// All healthy members, learners included.
    pub healthy: usize,
}

impl Quorum {
    /// Votes needed for a majority (0 for an empty cluster).
    pub fn needed(voters: usize) -> usize {
        if voters == 0 { 0 } else { voters / 2 + 1 }
    }

    /// Whether the healthy voters form a majority.
    pub fn has_quorum(&self) -> bool {
        self.voters > 0 && self.healthy_voters >= Self::needed(self.voters)
    }

    /// How many more voters may fail before quorum is lost.
    pub fn tolerates(&self) -> usize {
        self.healthy_voters
            .saturating_sub(Self::needed(self.voters))
    }

    /// "3/3 healthy, tolerates 1 failure", or why quorum is lost.
    pub fn verdict(&self) -> String {
        let head = format!("{}/{} healthy", self.healthy, self.total);
        let learners = self.total - self.voters;
        let learners = match learners {
            0 => String::new(),
            1 => " (1 learner)".to_string(),
            n => format!(" ({n} learners)"),
        };
        if self.voters == 0 {
            return format!("{head}, no voting members known");
        }
        if self.has_quorum() {
            format!("{head}, {}{learners}", tolerates_words(self.tolerates()))
        } else {
            format!(
                "{head}, QUORUM LOST: {} of {} voters up, {} needed{learners}",
                self.healthy_voters,
                self.voters,
                Self::needed(self.voters)
            )
        }
    }
}

/// "tolerates 1 failure" / "tolerates 0 failures".
pub fn tolerates_words(n: usize) -> String {
    if n == 1 {
        "tolerates 1 failure".to_string()
    } else {
        format!("tolerates {n} failures")
    }
}

/// A change to the set of voters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// A new voter (not started yet, so not healthy yet).
    AddVoter,
    /// A new learner.
    AddLearner,
    /// Remove a member; `voter` and `healthy` describe the member removed.
    Remove {
        /// Whether it votes.
        voter: bool,
        /// Whether it is healthy now.
        healthy: bool,
    },
    /// Promote a learner; `healthy` describes it.
    Promote {
        /// Whether it is healthy now.
        healthy: bool,
    },
    /// Nothing changes in the membership (compaction, alarms, keys, leases).
    Keep,
    /// A member stops answering while the action runs (defragmentation).
    Pause {
        /// Whether it votes.
        voter: bool,
        /// Whether it is healthy now.
        healthy: bool,
    },
}

/// What a change would do to the quorum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Impact {
    /// "3 -> 2 voters, tolerates 0 failures".
    pub summary: String,
    /// Why the console refuses the change (it can be overridden).
    pub refusal: Option<String>,
}

/// Computes what `change` does to a cluster in state `q`.
pub fn impact(q: &Quorum, change: Change) -> Impact {
    let (voters, healthy_voters) = match change {
        Change::AddVoter => (q.voters + 1, q.healthy_voters),
        Change::AddLearner => (q.voters, q.healthy_voters),
        Change::Remove { voter, healthy } => {
            if voter {
                (
                    q.voters.saturating_sub(1),
                    q.healthy_voters.saturating_sub(usize::from(healthy)),
                )
            } else {
                (q.voters, q.healthy_voters)
            }
        }
        Change::Promote { healthy } => (q.voters + 1, q.healthy_voters + usize::from(healthy)),
        Change::Keep => (q.voters, q.healthy_voters),
        Change::Pause { voter, healthy } => (
            q.voters,
            q.healthy_voters - usize::from(voter && healthy && q.healthy_voters > 0),
        ),
    };
    let after = Quorum {
        voters,
        healthy_voters,
        total: q.total,
        healthy: q.healthy,
    };
    let voters_words = if voters == q.voters {
        format!("voters unchanged ({voters})")
    } else {
        format!("{} -> {} voters", q.voters, voters)
    };
    let mut summary = if after.has_quorum() {
        format!("{voters_words}, {}", tolerates_words(after.tolerates()))
    } else {
        format!(
            "{voters_words}, QUORUM LOST: {} of {} voters up, {} needed",
            healthy_voters,
            voters,
            Quorum::needed(voters)
        )
    };
    if matches!(change, Change::Pause { .. }) {
        summary.push_str(" while it runs");
    }
    if change == Change::AddVoter && after.has_quorum() {
        let started = Quorum {
            healthy_voters: healthy_voters + 1,
            ..after
        };
        summary.push_str(&format!(
            " until it starts (then {})",
            tolerates_words(started.tolerates())
        ));
    }
    let refusal = if change == Change::Keep {
        // Nothing to protect: without quorum the request just fails.
        None
    } else if matches!(change, Change::Pause { .. }) {
        (q.has_quorum() && !after.has_quorum())
            .then(|| "this would break quorum while it runs".to_string())
    } else if !q.has_quorum() {
        Some("the cluster has no quorum now; membership changes cannot commit".to_string())
    } else if voters == 0 {
        Some("this would leave no voting member".to_string())
    } else if !after.has_quorum() {
        Some("this would break quorum".to_string())
    } else if matches!(change, Change::Remove { voter: true, .. }) && q.voters <= 2 {
        Some("removing a member from a 2-voter cluster is unsafe".to_string())
    } else {
        None
    };
    Impact { summary, refusal }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(voters: usize, healthy_voters: usize) -> Quorum {
        Quorum {
            voters,
            healthy_voters,
            total: voters,
            healthy: healthy_voters,
        }
    }

    #[test]
    fn verdicts_in_words() {
        assert_eq!(q(3, 3).verdict(), "3/3 healthy, tolerates 1 failure");
        assert_eq!(q(3, 2).verdict(), "2/3 healthy, tolerates 0 failures");
        assert_eq!(q(5, 5).verdict(), "5/5 healthy, tolerates 2 failures");
        assert_eq!(q(1, 1).verdict(), "1/1 healthy, tolerates 0 failures");
        assert_eq!(q(4, 4).verdict(), "4/4 healthy, tolerates 1 failure");
        assert_eq!(
            q(3, 1).verdict(),
            "1/3 healthy, QUORUM LOST: 1 of 3 voters up, 2 needed"
        );
        let with_learner = Quorum {
            voters: 3,
            healthy_voters: 3,
            total: 4,
            healthy: 4,
        };
        assert_eq!(
            with_learner.verdict(),
            "4/4 healthy, tolerates 1 failure (1 learner)"
        );
        assert_eq!(q(0, 0).verdict(), "0/0 healthy, no voting members known");
    }

    #[test]
    fn removing_a_healthy_voter_from_three() {
        let i = impact(
            &q(3, 3),
            Change::Remove {
                voter: true,
                healthy: true,
            },
        );
        assert_eq!(i.summary, "3 -> 2 voters, tolerates 0 failures");
        assert_eq!(i.refusal, None);
    }

    #[test]
    fn removing_a_healthy_voter_when_one_is_down_breaks_quorum() {
        let i = impact(
            &q(3, 2),
            Change::Remove {
                voter: true,
                healthy: true,
            },
        );
        assert_eq!(
            i.summary,
            "3 -> 2 voters, QUORUM LOST: 1 of 2 voters up, 2 needed"
        );
        assert_eq!(i.refusal.as_deref(), Some("this would break quorum"));
        // Removing the member that is down is what an operator should do.
        let i = impact(
            &q(3, 2),
            Change::Remove {
                voter: true,
                healthy: false,
            },
        );
        assert_eq!(i.refusal, None);
    }

    #[test]
    fn removing_from_two_voters_is_refused() {
        let i = impact(
            &q(2, 2),
            Change::Remove {
                voter: true,
                healthy: true,
            },
        );
        assert!(i.refusal.unwrap().contains("2-voter"));
        let i = impact(
            &q(1, 1),
            Change::Remove {
                voter: true,
                healthy: true,
            },
        );
        assert_eq!(
            i.refusal.as_deref(),
            Some("this would leave no voting member")
        );
    }

    #[test]
    fn adding_a_voter_to_one_member_breaks_quorum_until_it_starts() {
        let i = impact(&q(1, 1), Change::AddVoter);
        assert_eq!(
            i.summary,
            "1 -> 2 voters, QUORUM LOST: 1 of 2 voters up, 2 needed"
        );
        assert!(i.refusal.is_some());
        let i = impact(&q(3, 3), Change::AddVoter);
        assert_eq!(
            i.summary,
            "3 -> 4 voters, tolerates 0 failures until it starts (then 1 failure)"
                .replace("(then 1 failure)", "(then tolerates 1 failure)")
        );
        assert_eq!(i.refusal, None);
    }

    #[test]
    fn learners_do_not_change_the_quorum() {
        let i = impact(&q(3, 3), Change::AddLearner);
        assert_eq!(i.summary, "voters unchanged (3), tolerates 1 failure");
        assert_eq!(i.refusal, None);
        let i = impact(&q(3, 3), Change::Promote { healthy: true });
        assert_eq!(i.summary, "3 -> 4 voters, tolerates 1 failure");
        let i = impact(&q(3, 3), Change::Promote { healthy: false });
        assert_eq!(i.summary, "3 -> 4 voters, tolerates 0 failures");
    }

    #[test]
    fn actions_that_keep_the_membership_say_so() {
        let i = impact(&q(3, 3), Change::Keep);
        assert_eq!(i.summary, "voters unchanged (3), tolerates 1 failure");
        assert_eq!(i.refusal, None);
        let i = impact(&q(3, 1), Change::Keep);
        assert!(i.summary.contains("QUORUM LOST"));
        assert_eq!(i.refusal, None);
    }

    #[test]
    fn pausing_a_voter_is_refused_when_it_would_break_quorum() {
        let pause = Change::Pause {
            voter: true,
            healthy: true,
        };
        let i = impact(&q(3, 3), pause);
        assert_eq!(
            i.summary,
            "voters unchanged (3), tolerates 0 failures while it runs"
        );
        assert_eq!(i.refusal, None);
        let i = impact(&q(3, 2), pause);
        assert_eq!(
            i.summary,
            "voters unchanged (3), QUORUM LOST: 1 of 3 voters up, 2 needed while it runs"
        );
        assert_eq!(
            i.refusal.as_deref(),
            Some("this would break quorum while it runs")
        );
        // A learner or a member that is down anyway changes nothing.
        let learner = Change::Pause {
            voter: false,
            healthy: true,
        };
        assert_eq!(impact(&q(3, 2), learner).refusal, None);
        let down = Change::Pause {
            voter: true,
            healthy: false,
        };
        assert_eq!(impact(&q(3, 2), down).refusal, None);
    }

    #[test]
    fn nothing_changes_without_quorum() {
        let i = impact(&q(3, 1), Change::AddLearner);
        assert!(i.refusal.unwrap().contains("no quorum now"));
        let i = impact(&q(3, 1), Change::AddVoter);
        assert!(i.refusal.unwrap().contains("no quorum now"));
    }
}
