//! Tests of the core: key handling, freshness, tree building from key
//! pages, quorum verdicts, modal defaults and read-only mode.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::app::{Command, Event, Op, View};
use crate::cluster_state::Role;
use crate::components::keys::KeysPane;
use crate::components::modal::Modal;
use crate::fixtures::{Harness, cluster3, member, probe};

#[test]
fn starts_by_polling_and_quits_on_q_and_ctrl_c() {
    let mut h = Harness::new(false);
    assert_eq!(h.app.start(), [Command::Poll]);
    assert_eq!(h.char('q'), [Command::Quit]);
    assert!(h.app.quit);

    let mut h = Harness::healthy();
    h.char(':');
    assert!(h.app.palette.is_open());
    let cmds = h.app.update(Event::Key(KeyEvent::new(
        KeyCode::Char('c'),
        KeyModifiers::CONTROL,
    )));
    assert_eq!(cmds, [Command::Quit], "Ctrl-C quits even while typing");
}

#[test]
fn members_get_roles_and_the_quorum_verdict() {
    let h = Harness::healthy();
    let roles: Vec<(String, Role)> = h
        .app
        .shared
        .cluster
        .rows
        .iter()
        .map(|r| (r.name(), r.role))
        .collect();
    assert_eq!(
        roles,
        [
            ("n1".into(), Role::Follower),
            ("n2".into(), Role::Leader),
            ("n3".into(), Role::Follower)
        ]
    );
    assert_eq!(
        h.app.shared.cluster.quorum().verdict(),
        "3/3 healthy, tolerates 1 failure"
    );
    assert_eq!(h.app.shared.cluster.leader().unwrap().name(), "n2");
    assert_eq!(h.app.shared.cluster.term(), Some(3));
    // Rates from counter deltas over the 2 s between polls.
    assert_eq!(h.app.shared.cluster.series.proposals.back(), Some(&4));
    let n1 = &h.app.shared.cluster.rows[0];
    assert_eq!(n1.recv_rate, Some(10.0));
    assert_eq!(n1.uptime.map(|d| d.as_secs()), Some(3723));
}

#[test]
fn a_member_down_and_quorum_lost_are_reported() {
    let mut h = Harness::healthy();
    let mut snap = cluster3(2);
    let leader = member(2, false).id;
    snap.members[1] = probe(member(2, false), leader, false, 0.0, 0);
    h.poll(4, Ok(snap.clone()));
    assert_eq!(h.app.shared.cluster.rows[1].role, Role::Down);
    assert_eq!(
        h.app.shared.cluster.quorum().verdict(),
        "2/3 healthy, tolerates 0 failures"
    );
    snap.members[2] = probe(member(3, false), leader, false, 0.0, 0);
    h.poll(6, Ok(snap));
    assert_eq!(
        h.app.shared.cluster.quorum().verdict(),
        "1/3 healthy, QUORUM LOST: 1 of 3 voters up, 2 needed"
    );
}

#[test]
fn older_answers_never_overwrite_newer_ones_and_failures_go_stale() {
    let mut h = Harness::healthy();
    // A late answer of poll 1 arrives after poll 2: ignored.
    let late = h.app.update(Event::Cluster {
        seq: 1,
        at: h.at(0),
        result: Err("late".into()),
    });
    assert!(late.is_empty());
    assert!(h.app.shared.cluster.snapshot.error.is_none());
    h.poll(4, Err("connection refused".into()));
    h.tick(14);
    assert!(
        h.app.shared.cluster.snapshot.stale(),
        "last good data kept, marked stale"
    );
    assert_eq!(
        h.app
            .shared
            .cluster
            .age(h.app.shared.now)
            .unwrap()
            .as_secs(),
        12
    );
    assert_eq!(h.app.shared.cluster.snapshot.failures, 1);
    assert_eq!(h.app.shared.cluster.rows.len(), 3);
    h.poll(16, Ok(cluster3(3)));
    assert!(
        !h.app.shared.cluster.snapshot.stale(),
        "reconnect clears the badge"
    );
}

#[test]
fn no_endpoint_answering_marks_every_member_down_until_reconnect() {
    let mut h = Harness::healthy();
    h.poll(4, Err("http://127.0.0.1:2389: connection refused".into()));
    h.tick(9);
    let rows: Vec<(String, Role, bool)> = h
        .app
        .shared
        .cluster
        .rows
        .iter()
        .map(|r| (r.name(), r.role, r.healthy))
        .collect();
    assert_eq!(
        rows,
        [
            ("n1".into(), Role::Down, false),
            ("n2".into(), Role::Down, false),
            ("n3".into(), Role::Down, false)
        ],
        "nobody answers: nobody is shown up, leader included"
    );
    assert!(h.app.shared.cluster.leader().is_none());
    for r in &h.app.shared.cluster.rows {
        let (at, status) = r.last_good.clone().expect("the last good status is kept");
        assert_eq!(at, h.at(2), "as read by the last good poll");
        assert_eq!(status.raft_term, 3);
        assert!(
            r.probe
                .status
                .as_ref()
                .unwrap_err()
                .contains("connection refused")
        );
    }
    assert!(h.app.shared.cluster.snapshot.stale());
    assert_eq!(
        h.app
            .shared
            .cluster
            .age(h.app.shared.now)
            .unwrap()
            .as_secs(),
        7
    );
    assert_eq!(
        h.app.shared.cluster.term(),
        Some(3),
        "the header keeps the last term (dimmed)"
    );

    h.poll(10, Ok(cluster3(3)));
    let roles: Vec<Role> = h.app.shared.cluster.rows.iter().map(|r| r.role).collect();
    assert_eq!(roles, [Role::Follower, Role::Leader, Role::Follower]);
    assert!(
        h.app
            .shared
            .cluster
            .rows
            .iter()
            .all(|r| r.healthy && r.last_good.is_none())
    );
    assert!(
        !h.app.shared.cluster.snapshot.stale(),
        "reconnect clears the badge"
    );
    assert_eq!(
        h.app.shared.cluster.quorum().verdict(),
        "3/3 healthy, tolerates 1 failure"
    );
}

#[test]
fn views_switch_with_digits_and_keys_open_at_the_root() {
    let mut h = Harness::healthy();
    let cmds = h.char('2');
    assert_eq!(h.app.shared.view, View::Keys);
    assert!(
        matches!(&cmds[..], [Command::ListKeys { prefix, start, limit: 500, .. }] if prefix.is_empty() && start.is_empty())
    );
    let cmds = h.char('3');
    assert_eq!(h.app.shared.view, View::Leases);
    assert!(matches!(&cmds[..], [Command::ListLeases { .. }]));
    h.char('4');
    assert_eq!(h.app.shared.view, View::Actions);
    h.char('1');
    assert_eq!(h.app.shared.view, View::Cluster);
    h.char('j');
    assert_eq!(h.app.shared.cluster.selected, 1);
    h.char('G');
    assert_eq!(h.app.shared.cluster.selected, 2);
    h.char('g');
    assert_eq!(h.app.shared.cluster.selected, 0);
}

#[test]
fn key_pages_build_a_tree_and_paging_skips_whole_dirs() {
    let mut h = Harness::healthy();
    let cmds = h.char('2');
    let next = h.answer_keys(
        &cmds,
        &["/registry/a", "/registry/b", "greeting", "user:1", "user:2"],
        true,
        3,
    );
    let names: Vec<String> = h
        .app
        .keys
        .visible_entries()
        .iter()
        .map(|e| e.display())
        .collect();
    assert_eq!(names, ["/", "greeting", "user:"]);
    // The selection is near the end of what is loaded, so the next page is
    // read, starting past the whole "user:" dir.
    assert!(
        matches!(&next[..], [Command::ListKeys { start, .. }] if start == b"user;"),
        "{next:?}"
    );
    // Enter on a dir opens it.
    let cmds = h.key(KeyCode::Enter);
    assert!(matches!(&cmds[..], [Command::ListKeys { prefix, .. }] if prefix == b"/"));
    h.answer_keys(&cmds, &["/registry/a", "/registry/b"], false, 4);
    let names: Vec<String> = h
        .app
        .keys
        .visible_entries()
        .iter()
        .map(|e| e.display())
        .collect();
    assert_eq!(names, ["registry/"]);
    // Esc goes back up and reselects the dir we came from.
    let cmds = h.key(KeyCode::Esc);
    h.answer_keys(&cmds, &["/registry/a", "greeting"], false, 5);
    assert_eq!(h.app.keys.selected_entry().unwrap().display(), "/");
}

#[test]
fn selecting_a_key_reads_its_value_then_its_history() {
    let mut h = Harness::healthy();
    let cmds = h.char('2');
    h.answer_keys(&cmds, &["a", "b"], false, 3);
    // The first row is a key: its value was requested with the page.
    let cmds = h.char('j');
    assert!(matches!(&cmds[..], [Command::GetKey { key, .. }] if key == b"b"));
    let cmds = h.answer_value(&cmds, "{\"x\":1}", 4);
    assert!(matches!(&cmds[..], [Command::GetHistory { key, limit: 20, .. }] if key == b"b"));
    assert_eq!(h.app.keys.value_key.as_deref(), Some(&b"b"[..]));
    h.key(KeyCode::Enter);
    assert_eq!(h.app.keys.pane, KeysPane::Value);
}

#[test]
fn the_filter_narrows_loaded_rows_and_esc_clears_it() {
    let mut h = Harness::healthy();
    let cmds = h.char('2');
    h.answer_keys(&cmds, &["alpha", "beta", "gamma"], false, 3);
    h.char('/');
    h.text("mm");
    assert_eq!(h.app.keys.visible_entries().len(), 1);
    assert_eq!(h.app.keys.selected_entry().unwrap().display(), "gamma");
    h.key(KeyCode::Enter);
    assert!(!h.app.typing());
    assert_eq!(h.app.keys.filter, "mm");
    h.key(KeyCode::Esc);
    assert_eq!(h.app.keys.visible_entries().len(), 3);
}

#[test]
fn delete_asks_first_and_defaults_to_no() {
    let mut h = Harness::healthy();
    let cmds = h.char('2');
    let cmds = h.answer_keys(&cmds, &["a"], false, 3);
    h.answer_value(&cmds, "v", 3);
    let cmds = h.char('x');
    assert!(cmds.is_empty(), "nothing runs before confirmation");
    let Some(Modal::Confirm(c)) = &h.app.modal.shown else {
        panic!("no modal")
    };
    assert!(!c.yes, "the default is No");
    assert_eq!(c.target, "a");
    // Enter on the default button cancels.
    assert!(h.key(KeyCode::Enter).is_empty());
    assert!(!h.app.modal.is_open());
    // n and Esc cancel; y runs.
    h.char('x');
    assert!(h.char('n').is_empty());
    h.char('x');
    assert!(h.key(KeyCode::Esc).is_empty());
    h.char('x');
    assert_eq!(
        h.char('y'),
        [Command::Run(Op::Delete { key: b"a".to_vec() })]
    );
}

#[test]
fn removing_a_member_names_it_and_refuses_to_break_quorum_unless_overridden() {
    let mut h = Harness::healthy();
    let leader = member(2, false).id;
    let mut snap = cluster3(2);
    snap.members[2] = probe(member(3, false), leader, false, 0.0, 0);
    h.poll(4, Ok(snap));
    h.char(':');
    h.text("member remove n1");
    h.key(KeyCode::Enter);
    let Some(Modal::Confirm(c)) = h.app.modal.shown.clone() else {
        panic!("no modal")
    };
    assert!(c.target.starts_with("n1 (1000000000000001"), "{}", c.target);
    let impact = c.impact.clone().unwrap();
    assert_eq!(
        impact.summary,
        "3 -> 2 voters, QUORUM LOST: 1 of 2 voters up, 2 needed"
    );
    assert_eq!(impact.refusal.as_deref(), Some("this would break quorum"));
    assert!(h.char('y').is_empty(), "refused");
    assert!(
        h.app
            .toasts
            .list
            .last()
            .unwrap()
            .text
            .contains("press ! to override")
    );
    h.char('!');
    assert_eq!(
        h.char('y'),
        [Command::Run(Op::MemberRemove {
            id: member(1, false).id
        })]
    );
}

#[test]
fn member_add_shows_the_impact_and_then_the_flags() {
    let mut h = Harness::healthy();
    h.char(':');
    h.text("member add http://127.0.0.1:2420 --learner --name n4");
    h.key(KeyCode::Enter);
    let Some(Modal::Confirm(c)) = h.app.modal.shown.clone() else {
        panic!("no modal")
    };
    assert_eq!(
        c.impact.unwrap().summary,
        "voters unchanged (3), tolerates 1 failure"
    );
    let cmds = h.char('y');
    let [Command::Run(op)] = &cmds[..] else {
        panic!("{cmds:?}")
    };
    h.app.update(Event::Done {
        op: op.clone(),
        result: Ok("--initial-cluster n1=…".into()),
    });
    assert!(
        matches!(&h.app.modal.shown, Some(Modal::Info { lines, .. }) if lines[0].contains("--initial-cluster"))
    );
}

#[test]
fn read_only_removes_every_mutation() {
    let mut h = Harness::new(true);
    h.poll(0, Ok(cluster3(0)));
    let cmds = h.char('2');
    let cmds = h.answer_keys(&cmds, &["a"], false, 1);
    h.answer_value(&cmds, "v", 1);
    assert!(h.char('x').is_empty());
    assert!(!h.app.modal.is_open());
    h.char('4');
    h.key(KeyCode::Enter);
    assert!(!h.app.modal.is_open() && !h.app.typing());
    h.char(':');
    h.text("member remove n1");
    h.key(KeyCode::Enter);
    assert!(!h.app.modal.is_open());
    assert!(h.app.toasts.list.last().unwrap().text.contains("read-only"));
}

#[test]
fn freeze_and_refresh() {
    let mut h = Harness::healthy();
    assert_eq!(h.char('f'), [Command::SetPaused(true)]);
    assert!(h.app.shared.paused);
    assert_eq!(h.char('r'), [Command::Poll]);
    assert_eq!(h.char('f'), [Command::SetPaused(false)]);
}

#[test]
fn help_opens_and_closes() {
    let mut h = Harness::healthy();
    h.char('?');
    assert!(h.app.help.open);
    assert!(h.char('j').is_empty(), "keys do not leak through the help");
    assert_eq!(h.app.shared.cluster.selected, 0);
    h.key(KeyCode::Esc);
    assert!(!h.app.help.open);
}

fn press(h: &mut Harness, code: KeyCode, modifiers: KeyModifiers) -> Vec<Command> {
    h.app.update(Event::Key(KeyEvent::new(code, modifiers)))
}

#[test]
fn every_navigation_key_of_the_issue_works() {
    let mut h = Harness::healthy();
    let none = KeyModifiers::NONE;
    // j/k and the arrows, g/G and Home/End, PgDn/PgUp.
    for (code, want) in [
        (KeyCode::Char('j'), 1),
        (KeyCode::Down, 2),
        (KeyCode::Char('k'), 1),
        (KeyCode::Up, 0),
        (KeyCode::Char('G'), 2),
        (KeyCode::Char('g'), 0),
        (KeyCode::End, 2),
        (KeyCode::Home, 0),
        (KeyCode::PageDown, 2),
        (KeyCode::PageUp, 0),
    ] {
        press(&mut h, code, none);
        assert_eq!(h.app.shared.cluster.selected, want, "after {code:?}");
    }
    // Shift-G as terminals report it.
    press(&mut h, KeyCode::Char('G'), KeyModifiers::SHIFT);
    assert_eq!(h.app.shared.cluster.selected, 2);

    // 1..4 switch views; Enter drills in (Cluster -> Actions for the member).
    for (c, view) in [
        ('2', View::Keys),
        ('3', View::Leases),
        ('4', View::Actions),
        ('1', View::Cluster),
    ] {
        let cmds = press(&mut h, KeyCode::Char(c), none);
        assert_eq!(h.app.shared.view, view);
        if view == View::Keys {
            h.answer_keys(&cmds, &["dir/a", "key"], false, 3);
        }
    }
    press(&mut h, KeyCode::Enter, none);
    assert_eq!(h.app.shared.view, View::Actions);

    // Tab / Shift-Tab cycle the panes of the Keys view, both ways.
    press(&mut h, KeyCode::Char('2'), none);
    for (code, mods, pane) in [
        (KeyCode::Tab, none, KeysPane::Value),
        (KeyCode::Tab, none, KeysPane::History),
        (KeyCode::Tab, none, KeysPane::List),
        (KeyCode::BackTab, KeyModifiers::SHIFT, KeysPane::History),
        (KeyCode::BackTab, KeyModifiers::SHIFT, KeysPane::Value),
        (KeyCode::BackTab, KeyModifiers::SHIFT, KeysPane::List),
    ] {
        press(&mut h, code, mods);
        assert_eq!(h.app.keys.pane, pane, "after {code:?}");
    }
    // Enter opens the dir, Esc goes back up.
    let cmds = press(&mut h, KeyCode::Enter, none);
    assert!(matches!(&cmds[..], [Command::ListKeys { prefix, .. }, ..] if prefix == b"dir/"));
    let cmds = press(&mut h, KeyCode::Esc, none);
    assert!(matches!(&cmds[..], [Command::ListKeys { prefix, .. }, ..] if prefix.is_empty()));

    // q quits; Ctrl-C quits from anywhere, even a modal or the help.
    h.char('?');
    assert_eq!(
        press(&mut h, KeyCode::Char('c'), KeyModifiers::CONTROL),
        [Command::Quit]
    );
    let mut h = Harness::healthy();
    palette_line(&mut h, "member remove n1");
    assert!(h.app.modal.is_open());
    assert_eq!(
        press(&mut h, KeyCode::Char('c'), KeyModifiers::CONTROL),
        [Command::Quit]
    );
    let mut h = Harness::healthy();
    assert_eq!(press(&mut h, KeyCode::Char('q'), none), [Command::Quit]);
}

fn palette_line(h: &mut Harness, line: &str) {
    h.char(':');
    h.text(line);
    h.key(KeyCode::Enter);
}

#[test]
fn the_palette_runs_its_commands() {
    let mut h = Harness::healthy();
    let cmds = {
        h.char(':');
        h.text("keys /registry/");
        h.key(KeyCode::Enter)
    };
    assert_eq!(h.app.shared.view, View::Keys);
    assert!(matches!(&cmds[..], [Command::ListKeys { prefix, .. }] if prefix == b"/registry/"));
    palette_line(&mut h, "flat");
    assert!(h.app.keys.flat);
    palette_line(&mut h, "members");
    assert_eq!(h.app.shared.view, View::Cluster);
    palette_line(&mut h, "leases");
    assert_eq!(h.app.shared.view, View::Leases);
    palette_line(&mut h, "help");
    assert!(h.app.help.open);
    h.key(KeyCode::Esc);
    palette_line(&mut h, "frobnicate");
    assert!(
        h.app
            .toasts
            .list
            .last()
            .unwrap()
            .text
            .contains("unknown command")
    );
    h.char(':');
    h.text("q");
    assert_eq!(h.key(KeyCode::Enter), [Command::Quit]);
}

#[test]
fn pressing_the_movement_keys_in_the_help_scrolls_it() {
    let mut h = Harness::healthy();
    h.char('?');
    h.char('j');
    h.key(KeyCode::PageDown);
    assert!(h.app.help.scroll > 1);
    h.char('g');
    assert_eq!(h.app.help.scroll, 0);
    h.char('?');
    assert!(!h.app.help.open);
}

#[test]
fn a_lost_watch_resumes_after_the_last_revision_it_saw() {
    use crate::app::WatchUpdate;
    use crate::model::{KeyValue, WatchEvent};
    let mut h = Harness::healthy();
    let cmds = h.char('2');
    h.answer_keys(&cmds, &["a"], false, 3);
    let cmds = h.char('w');
    let [
        Command::Watch {
            id,
            start_revision: 0,
            ..
        },
    ] = cmds[..]
    else {
        panic!("{cmds:?}")
    };
    let at = h.at(4);
    h.app.update(Event::Watch {
        id,
        at,
        update: WatchUpdate::Started { revision: 17 },
    });
    h.app.update(Event::Watch {
        id,
        at,
        update: WatchUpdate::Events(vec![WatchEvent {
            delete: false,
            kv: KeyValue {
                key: b"a".to_vec(),
                mod_revision: 21,
                ..KeyValue::default()
            },
        }]),
    });
    h.app.update(Event::Watch {
        id,
        at,
        update: WatchUpdate::Failed("transport error".into()),
    });
    // Still failing cluster: no resume yet.
    assert!(
        h.poll(5, Err("refused".into()))
            .iter()
            .all(|c| !matches!(c, Command::Watch { .. }))
    );
    // The next good poll resumes it, after revision 21, under a new id.
    let cmds = h.poll(7, Ok(cluster3(3)));
    let resumed = cmds
        .iter()
        .find_map(|c| match c {
            Command::Watch {
                id: new,
                prefix,
                start_revision,
            } => Some((*new, prefix.clone(), *start_revision)),
            _ => None,
        })
        .expect("resumed");
    assert!(cmds.contains(&Command::Unwatch { id }));
    assert_ne!(resumed.0, id);
    assert_eq!((resumed.1.as_slice(), resumed.2), (&b""[..], 22));
    let w = h.app.keys.watch.as_ref().unwrap();
    assert_eq!((w.failures, w.events.len()), (1, 1), "events are kept");
    // Late news of the old watch is ignored; the new one clears the error.
    h.app.update(Event::Watch {
        id,
        at,
        update: WatchUpdate::Started { revision: 30 },
    });
    assert!(h.app.keys.watch.as_ref().unwrap().error.is_some());
    h.app.update(Event::Watch {
        id: resumed.0,
        at,
        update: WatchUpdate::Started { revision: 30 },
    });
    let w = h.app.keys.watch.as_ref().unwrap();
    assert!(w.live && w.error.is_none() && w.failures == 0);
    // Once live, good polls do not restart it.
    assert!(
        h.poll(9, Ok(cluster3(4)))
            .iter()
            .all(|c| !matches!(c, Command::Watch { .. }))
    );
}

#[test]
fn error_toasts_carry_a_glyph_not_only_a_colour() {
    let mut h = Harness::healthy();
    h.char(':');
    h.text("frobnicate");
    h.key(KeyCode::Enter);
    let t = h.app.toasts.list.last().unwrap();
    assert!(t.error && t.text.starts_with("✖ unknown command"), "{t:?}");
}

#[test]
fn a_late_answer_for_an_older_selection_is_dropped() {
    let mut h = Harness::healthy();
    let cmds = h.char('2');
    let first = h.answer_keys(&cmds, &["a", "b"], false, 3);
    // The selection moves on before the value of "a" arrives.
    let second = h.char('j');
    let late = h.answer_value(&first, "value of a", 4);
    assert!(late.is_empty(), "no history read for a stale answer");
    assert!(
        h.app.keys.value.data.is_none(),
        "the late answer was dropped"
    );
    h.answer_value(&second, "value of b", 5);
    let kv = h.app.keys.value.data.clone().flatten().unwrap();
    assert_eq!((kv.key, kv.value), (b"b".to_vec(), b"value of b".to_vec()));
}

#[test]
fn g_reads_every_page_and_lands_on_the_last_key() {
    let mut h = Harness::new(false);
    h.poll(0, Ok(cluster3(0)));
    let page =
        |from: usize| -> Vec<String> { (from..from + 500).map(|i| format!("k{i:05}")).collect() };
    let cmds = h.char('2');
    let first = page(0);
    let refs: Vec<&str> = first.iter().map(String::as_str).collect();
    h.answer_keys(&cmds, &refs, true, 1);
    assert_eq!(h.app.keys.visible_entries().len(), 500);
    // G: the last loaded row, and the next page is read at once.
    let mut cmds = h.char('G');
    for (n, from) in [(1000, 500), (1500, 1000), (1730, 1500)] {
        let keys: Vec<String> = if n == 1730 {
            (from..1730).map(|i| format!("k{i:05}")).collect()
        } else {
            page(from)
        };
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        assert!(
            matches!(&cmds[..], [Command::ListKeys { start, limit: 500, .. }, ..] if *start == format!("k{:05}\0", from - 1).into_bytes()),
            "{cmds:?}"
        );
        cmds = h.answer_keys(&cmds, &refs, n < 1730, 2);
        assert_eq!(h.app.keys.visible_entries().len(), n);
        assert_eq!(h.app.keys.selected, n - 1, "the selection follows the end");
    }
    assert!(!h.app.keys.follow_bottom);
    assert!(
        cmds.iter().all(|c| !matches!(c, Command::ListKeys { .. })),
        "no page past the end"
    );
    assert_eq!(h.app.keys.selected_entry().unwrap().display(), "k01729");
    // Any other move stops following.
    h.char('k');
    assert!(!h.app.keys.follow_bottom);
}

#[test]
fn the_keys_view_follows_the_polls() {
    let mut h = Harness::healthy();
    let cmds = h.char('2');
    let cmds = h.answer_keys(&cmds, &["a", "b"], false, 3);
    h.answer_value(&cmds, "v", 3);
    // A good poll re-reads the one-page listing and the selected key.
    let cmds = h.poll(4, Ok(cluster3(2)));
    assert!(
        cmds.iter().any(|c| matches!(c, Command::ListKeys { .. })),
        "{cmds:?}"
    );
    assert!(
        cmds.iter()
            .any(|c| matches!(c, Command::GetKey { key, .. } if key == b"a"))
    );
    // A failed poll, or a paused console, reads nothing.
    let mut h = Harness::healthy();
    let cmds = h.char('2');
    h.answer_keys(&cmds, &["a"], false, 3);
    assert!(h.poll(4, Err("down".into())).is_empty());
    h.char('f');
    assert!(h.poll(6, Ok(cluster3(3))).is_empty());
}

#[test]
fn a_long_listing_is_not_reset_by_the_polls() {
    let mut h = Harness::healthy();
    let cmds = h.char('2');
    let cmds = h.answer_keys(&cmds, &["a", "b"], true, 3);
    // Its last page read: the listing is complete, but longer than a page,
    // and re-reading its first page would drop the others.
    h.answer_keys(&cmds, &["c"], false, 3);
    assert_eq!(h.app.keys.visible_entries().len(), 3);
    let cmds = h.poll(4, Ok(cluster3(2)));
    assert!(
        cmds.iter().all(|c| !matches!(c, Command::ListKeys { .. })),
        "{cmds:?}"
    );
}

#[test]
fn r_rereads_as_many_pages_as_were_loaded_and_keeps_the_selection() {
    let mut h = Harness::healthy();
    let cmds = h.char('2');
    let cmds = h.answer_keys(&cmds, &["a", "b"], true, 3);
    h.answer_keys(&cmds, &["c", "d"], true, 3);
    h.char('j');
    h.char('j');
    h.char('j');
    assert_eq!(h.app.keys.selected_entry().unwrap().display(), "d");
    let cmds = h.char('r');
    assert!(
        cmds.iter()
            .any(|c| matches!(c, Command::ListKeys { start, .. } if start.is_empty()))
    );
    // The first page alone does not replace the listing: the next is read.
    let cmds = h.answer_keys(&cmds, &["a", "b2"], true, 5);
    assert!(
        matches!(&cmds[..], [Command::ListKeys { start, .. }] if start == b"b2\0"),
        "{cmds:?}"
    );
    assert_eq!(
        h.app.keys.visible_entries().len(),
        4,
        "the old rows stay meanwhile"
    );
    h.answer_keys(&cmds, &["c", "d", "e"], true, 5);
    let names: Vec<String> = h
        .app
        .keys
        .visible_entries()
        .iter()
        .map(|e| e.display())
        .collect();
    assert_eq!(names, ["a", "b2", "c", "d", "e"]);
    assert_eq!(h.app.keys.selected_entry().unwrap().display(), "d");
}

#[test]
fn lease_ids_print_as_etcdctl_prints_them() {
    assert_eq!(
        Op::LeaseRevoke {
            id: 0x0eb4_bebe_6520_418f
        }
        .describe(),
        "lease revoke 0eb4bebe6520418f"
    );
}

#[test]
fn components_answer_actions_with_follow_up_actions_and_send_io_as_actions() {
    use crate::action::Action;
    use crate::components::cluster::ClusterView;
    use crate::components::leases::LeasesView;
    use crate::components::modal::{Confirm, ModalView};
    use crate::components::{Component, Ctx};
    use crate::keymap::Intent;

    let h = Harness::healthy();
    let (mut next_id, mut sent) = (0, Vec::new());
    let mut ctx = Ctx::new(&h.app.shared, &mut next_id, &mut sent);

    // The Cluster view: a movement selects a member, Enter asks for the
    // Actions view; neither changes shared state itself.
    let mut cluster = ClusterView;
    let down = cluster.update(Action::Intent(Intent::Down), &mut ctx);
    assert!(matches!(down, Some(Action::SelectMember(1))), "{down:?}");
    let enter = cluster.update(Action::Intent(Intent::Enter), &mut ctx);
    assert!(matches!(enter, Some(Action::ActOnSelected)), "{enter:?}");

    // The modal: "y" on a confirmation becomes the mutation it names.
    let mut modal = ModalView::default();
    let op = Op::Delete { key: b"k".to_vec() };
    let confirm = Confirm::new("Delete key?".into(), "k".into(), vec![], None, op.clone());
    assert!(
        modal
            .update(Action::Confirm(Box::new(confirm)), &mut ctx)
            .is_none()
    );
    let yes = modal.update(
        Action::Key(KeyEvent::new(KeyCode::Char('y'), KeyModifiers::NONE)),
        &mut ctx,
    );
    assert!(
        matches!(yes, Some(Action::Run(ref o)) if *o == op),
        "{yes:?}"
    );
    assert!(!modal.is_open());

    // The Leases view asks for its list as an I/O action, with a fresh id.
    let mut leases = LeasesView::default();
    assert!(leases.update(Action::Shown, &mut ctx).is_none());
    assert!(
        matches!(&sent[..], [Action::Io(Command::ListLeases { req: 1 })]),
        "{sent:?}"
    );
    assert!(leases.leases.loading);
}
