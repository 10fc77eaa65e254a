//! Rendering snapshots on ratatui's `TestBackend` (symbols only; colour is
//! checked separately), at 80x24, 160x48 and below the minimum size, with a
//! fixed clock and fixed member ids.

use crossterm::event::KeyCode;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::Color;

use crate::app::{App, Event, WatchUpdate};
use crate::fixtures::{Harness, cluster3, member, probe};
use crate::model::{KeyValue, Lease, WatchEvent};
use crate::ui::{Theme, draw};

fn render(app: &App, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    terminal
        .draw(|f| draw(f, app, Theme { color: true }))
        .unwrap();
    terminal
}

fn screen(app: &App, w: u16, h: u16) -> String {
    render(app, w, h).backend().to_string()
}

fn keys_with_value() -> Harness {
    let mut h = Harness::healthy();
    let cmds = h.char('2');
    h.answer_keys(
        &cmds,
        &[
            "/registry/pods/a",
            "/registry/pods/b",
            "config.json",
            "greeting",
            "user:1:name",
        ],
        false,
        3,
    );
    let cmds = h.char('j');
    let cmds = h.answer_value(
        &cmds,
        r#"{"replicas":3,"image":"web:1.2","ports":[80,443]}"#,
        3,
    );
    let req = cmds
        .iter()
        .find_map(|c| match c {
            crate::app::Command::GetHistory { req, .. } => Some(*req),
            _ => None,
        })
        .unwrap();
    let v = |rev: i64, version: i64, value: &str| KeyValue {
        key: b"config.json".to_vec(),
        value: value.as_bytes().to_vec(),
        create_revision: 5,
        mod_revision: rev,
        version,
        lease: 0,
    };
    let at = h.at(3);
    h.app.update(Event::History {
        req,
        at,
        result: Ok(crate::app::History {
            entries: vec![
                v(9, 2, r#"{"replicas":3,"image":"web:1.2","ports":[80,443]}"#),
                v(5, 1, r#"{"replicas":2,"image":"web:1.1","ports":[80,443]}"#),
            ],
            end: "key absent at revision 4".into(),
        }),
    });
    h.tick(5);
    h
}

#[test]
fn cluster_view_80x24() {
    insta::assert_snapshot!(screen(&Harness::healthy().app, 80, 24));
}

#[test]
fn cluster_view_160x48() {
    insta::assert_snapshot!(screen(&Harness::healthy().app, 160, 48));
}

#[test]
fn cluster_view_with_a_member_down_and_stale_data() {
    let mut h = Harness::healthy();
    let leader = member(2, false).id;
    let mut snap = cluster3(2);
    snap.members[0] = probe(member(1, false), leader, false, 0.0, 0);
    h.poll(4, Ok(snap));
    h.poll(
        6,
        Err("http://127.0.0.1:2389: tcp connect error: Connection refused".into()),
    );
    h.tick(18);
    let text = screen(&h.app, 120, 30);
    assert!(text.contains("STALE 14s"), "{text}");
    assert!(text.contains("✖ down"));
    insta::assert_snapshot!(text);
}

#[test]
fn too_small_screen() {
    let text = screen(&Harness::healthy().app, 40, 10);
    assert!(text.contains("terminal too small"));
    assert!(text.contains("need 60x16, have 40x10"));
    insta::assert_snapshot!(text);
}

#[test]
fn no_size_panics() {
    let mut h = keys_with_value();
    h.char('x');
    h.char('?');
    for w in [0, 1, 2, 10, 59, 60, 61, 80, 200] {
        for hgt in [0, 1, 5, 15, 16, 17, 24, 60] {
            for view in ['1', '2', '3', '4'] {
                let mut app_view = Harness::healthy();
                app_view.char(view);
                render(&app_view.app, w, hgt);
            }
            render(&h.app, w, hgt);
        }
    }
}

#[test]
fn keys_view_80x24() {
    insta::assert_snapshot!(screen(&keys_with_value().app, 80, 24));
}

#[test]
fn keys_view_160x48_with_diff_and_watch() {
    let mut h = keys_with_value();
    h.key(KeyCode::Tab);
    h.key(KeyCode::Tab);
    h.char('d');
    let cmds = h.char('w');
    let id = cmds
        .iter()
        .find_map(|c| match c {
            crate::app::Command::Watch { id, .. } => Some(*id),
            _ => None,
        })
        .unwrap();
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
            delete: true,
            kv: KeyValue {
                key: b"greeting".to_vec(),
                mod_revision: 18,
                ..KeyValue::default()
            },
        }]),
    });
    insta::assert_snapshot!(screen(&h.app, 160, 48));
}

#[test]
fn leases_view() {
    let mut h = Harness::healthy();
    let cmds = h.char('3');
    let req = cmds
        .iter()
        .find_map(|c| match c {
            crate::app::Command::ListLeases { req } => Some(*req),
            _ => None,
        })
        .unwrap();
    let at = h.at(3);
    h.app.update(Event::Leases {
        req,
        at,
        result: Ok(vec![
            Lease {
                id: 0x694d7a1b2c3d4e5f,
                ttl: 55,
                granted_ttl: 60,
                keys: vec![b"/locks/a".to_vec(), b"/locks/b".to_vec()],
            },
            Lease {
                id: 0x694d7a1b2c3d4e60,
                ttl: 3,
                granted_ttl: 10,
                keys: vec![],
            },
        ]),
    });
    h.tick(8);
    let text = screen(&h.app, 80, 24);
    assert!(
        text.contains("⏱ 50s"),
        "the countdown follows the clock:\n{text}"
    );
    insta::assert_snapshot!(text);
}

#[test]
fn actions_view_with_remove_preview() {
    let mut h = Harness::healthy();
    h.char('4');
    for _ in 0..3 {
        h.char('j');
    }
    insta::assert_snapshot!(screen(&h.app, 100, 30));
}

#[test]
fn confirm_modal_80x24_and_160x48() {
    let mut h = Harness::healthy();
    h.char(':');
    h.text("member remove n2");
    h.key(KeyCode::Enter);
    let small = screen(&h.app, 80, 24);
    assert!(small.contains("Remove member?"));
    assert!(small.contains("3 -> 2 voters, tolerates 0 failures"));
    assert!(small.contains("It is the leader"));
    insta::assert_snapshot!("confirm_80x24", small);
    insta::assert_snapshot!("confirm_160x48", screen(&h.app, 160, 48));
}

#[test]
fn refused_modal_offers_the_override() {
    let mut h = Harness::healthy();
    h.char(':');
    h.text("member remove n1");
    let leader = member(2, false).id;
    let mut snap = cluster3(2);
    snap.members[2] = probe(member(3, false), leader, false, 0.0, 0);
    h.poll(4, Ok(snap));
    h.key(KeyCode::Enter);
    let text = screen(&h.app, 80, 24);
    assert!(
        text.contains("✖ REFUSED: this would break quorum"),
        "{text}"
    );
    insta::assert_snapshot!(text);
}

#[test]
fn help_overlay_is_generated_from_the_keymap() {
    let mut h = Harness::healthy();
    h.char('2');
    h.char('?');
    let text = screen(&h.app, 80, 48);
    for b in crate::keymap::bindings_for(crate::keymap::Scope::Keys, false) {
        assert!(text.contains(b.help), "help lacks {:?}", b.help);
    }
    insta::assert_snapshot!(text);
}

#[test]
fn colour_is_paired_with_glyphs_and_off_without_colour() {
    let app = Harness::healthy().app;
    let mut t = Terminal::new(TestBackend::new(100, 24)).unwrap();
    t.draw(|f| draw(f, &app, Theme { color: false })).unwrap();
    let plain = t.backend().buffer().clone();
    assert!(
        plain
            .content
            .iter()
            .all(|c| c.fg == Color::Reset && c.bg == Color::Reset)
    );
    let coloured = render(&app, 100, 24);
    let buf = coloured.backend().buffer();
    // The leader's role cell is yellow and carries its glyph and word.
    let pos = (0..buf.area.height)
        .flat_map(|y| (0..buf.area.width).map(move |x| (x, y)))
        .find(|&(x, y)| buf[(x, y)].symbol() == "★")
        .unwrap();
    assert_eq!(buf[pos].fg, Color::Yellow);
    assert_eq!(plain[pos].symbol(), "★");
}

// ----- Every view and overlay at 80x24 and 160x48 ---------------------------

/// Snapshots `app` at both reference sizes, as `{name}_80x24` and
/// `{name}_160x48`, after checking that each shows `expect`.
fn both(name: &str, app: &App, expect: &[&str]) {
    for (w, h) in [(80, 24), (160, 48)] {
        let text = screen(app, w, h);
        for e in expect {
            assert!(text.contains(e), "{name} at {w}x{h} lacks {e:?}:\n{text}");
        }
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), text);
    }
}

fn request<T>(cmds: &[crate::app::Command], f: impl Fn(&crate::app::Command) -> Option<T>) -> T {
    cmds.iter().find_map(f).expect("the expected command")
}

fn with_leases() -> Harness {
    let mut h = Harness::healthy();
    let cmds = h.char('3');
    let req = request(&cmds, |c| match c {
        crate::app::Command::ListLeases { req } => Some(*req),
        _ => None,
    });
    let at = h.at(3);
    h.app.update(Event::Leases {
        req,
        at,
        result: Ok(vec![
            Lease {
                id: 0x694d7a1b2c3d4e5f,
                ttl: 55,
                granted_ttl: 60,
                keys: vec![b"/locks/a".to_vec(), b"/locks/b".to_vec()],
            },
            Lease {
                id: 0x694d7a1b2c3d4e60,
                ttl: 3,
                granted_ttl: 10,
                keys: vec![],
            },
        ]),
    });
    h.tick(5);
    h
}

fn palette(h: &mut Harness, line: &str) {
    h.char(':');
    h.text(line);
    h.key(KeyCode::Enter);
}

#[test]
fn cluster_view_with_a_member_down_and_stale_data_at_both_sizes() {
    let mut h = Harness::healthy();
    let leader = member(2, false).id;
    let mut snap = cluster3(2);
    snap.members[0] = probe(member(1, false), leader, false, 0.0, 0);
    h.poll(4, Ok(snap));
    h.poll(6, Err("http://127.0.0.1:2389: connection refused".into()));
    h.tick(18);
    both(
        "cluster_down_member_and_stale",
        &h.app,
        &[
            "STALE 14s",
            "✖ unreachable · STALE 16s",
            "✖ disconnected (retry #1)",
        ],
    );
}

#[test]
fn cluster_view_when_no_endpoint_answers_then_reconnected() {
    let mut h = Harness::healthy();
    h.poll(4, Err("http://127.0.0.1:2389: connection refused".into()));
    h.tick(9);
    both(
        "cluster_no_endpoint_answers",
        &h.app,
        &[
            "Members (3) · STALE 7s",
            "0/3 answering, quorum unknown",
            "leader none",
            "✖ unreachable · STALE 7s",
        ],
    );
    let text = screen(&h.app, 160, 48);
    assert_eq!(
        text.matches("✖ down").count(),
        3 + 1,
        "3 rows and the detail"
    );
    assert!(!text.contains("★ leader") && !text.contains("● follower"));
    let styled = render(&h.app, 160, 48);
    let buffer = styled.backend().buffer();
    let row = (0..48)
        .find(|&y| {
            (0..160)
                .map(|x| buffer[(x, y)].symbol())
                .collect::<String>()
                .contains("n3    ✖ down")
        })
        .expect("n3's row");
    let down = (0..160)
        .find(|&x| buffer[(x, row)].symbol() == "✖")
        .expect("the down glyph");
    assert_eq!(
        buffer[(down, row)].fg,
        Color::Red,
        "down is red, as a single down member"
    );

    h.poll(10, Ok(cluster3(3)));
    h.tick(10);
    let text = screen(&h.app, 160, 48);
    assert!(
        !text.contains("STALE") && !text.contains("✖ down"),
        "{text}"
    );
    assert!(text.contains("★ leader") && text.contains("3/3 healthy, tolerates 1 failure"));
}

#[test]
fn cluster_view_lists_alarms() {
    let mut h = Harness::healthy();
    let mut snap = cluster3(2);
    snap.alarms = Ok(vec![crate::model::Alarm {
        member_id: member(3, false).id,
        kind: "NOSPACE".into(),
    }]);
    h.poll(4, Ok(snap));
    both(
        "cluster_alarms",
        &h.app,
        &["⚠ ALARMS", "NOSPACE on 1000000000000003"],
    );
}

#[test]
fn cluster_view_paused() {
    let mut h = Harness::healthy();
    h.char('f');
    h.tick(9);
    both("cluster_paused", &h.app, &["⏸ PAUSED", "resume"]);
}

#[test]
fn read_only_shows_no_mutation() {
    let mut h = Harness::new(true);
    h.poll(0, Ok(cluster3(0)));
    h.poll(2, Ok(cluster3(1)));
    h.tick(3);
    both("read_only_cluster", &h.app, &["READ-ONLY"]);
    let cmds = h.char('2');
    let cmds = h.answer_keys(&cmds, &["config.json", "greeting"], false, 3);
    h.answer_value(&cmds, "hello", 3);
    for (w, hgt) in [(80, 24), (160, 48)] {
        let text = screen(&h.app, w, hgt);
        assert!(!text.contains("delete") && !text.contains("edit"), "{text}");
    }
    both("read_only_keys", &h.app, &["READ-ONLY"]);
    h.char('?');
    let help = screen(&h.app, 160, 48);
    assert!(!help.contains("delete the selected key"), "{help}");
}

#[test]
fn keys_tree_with_a_json_value() {
    both(
        "keys_tree_json",
        &keys_with_value().app,
        &[
            "[tree]",
            "▸ / (2)",
            "config.json · JSON",
            "\"replicas\": 3",
            "version 2",
        ],
    );
}

#[test]
fn keys_flat_listing() {
    let mut h = keys_with_value();
    let cmds = h.char('t');
    h.answer_keys(
        &cmds,
        &[
            "/registry/pods/a",
            "/registry/pods/b",
            "config.json",
            "greeting",
            "user:1:name",
        ],
        false,
        4,
    );
    both(
        "keys_flat",
        &h.app,
        &["[flat]", "/registry/pods/a", "user:1:name"],
    );
}

#[test]
fn keys_history_and_diff() {
    let mut h = keys_with_value();
    h.key(KeyCode::Tab);
    h.key(KeyCode::Tab);
    h.char('d');
    both(
        "keys_history_diff",
        &h.app,
        &[
            "diff rev 5 -> 9",
            "-   \"image\": \"web:1.1\",",
            "+   \"image\": \"web:1.2\",",
            "(current)",
        ],
    );
    // An older revision selected: its value is shown, marked as older.
    h.char('d');
    h.char('j');
    both(
        "keys_history_older_revision",
        &h.app,
        &["showing an older revision (5)", "\"image\": \"web:1.1\""],
    );
}

#[test]
fn keys_watch_mode() {
    let mut h = keys_with_value();
    let cmds = h.char('w');
    let id = request(&cmds, |c| match c {
        crate::app::Command::Watch { id, .. } => Some(*id),
        _ => None,
    });
    let at = h.at(4);
    h.app.update(Event::Watch {
        id,
        at,
        update: WatchUpdate::Started { revision: 17 },
    });
    h.app.update(Event::Watch {
        id,
        at,
        update: WatchUpdate::Events(vec![
            WatchEvent {
                delete: false,
                kv: KeyValue {
                    key: b"user:2:name".to_vec(),
                    value: b"ada".to_vec(),
                    mod_revision: 18,
                    ..KeyValue::default()
                },
            },
            WatchEvent {
                delete: true,
                kv: KeyValue {
                    key: b"greeting".to_vec(),
                    mod_revision: 19,
                    ..KeyValue::default()
                },
            },
        ]),
    });
    h.tick(6);
    both(
        "keys_watch",
        &h.app,
        &[
            "● LIVE",
            "PUT user:2:name @18",
            "DEL greeting @19",
            "unwatch",
        ],
    );
}

#[test]
fn keys_filter() {
    let mut h = keys_with_value();
    h.char('/');
    h.text("gree");
    both(
        "keys_filter",
        &h.app,
        &["/gree█", "1 match(es)", "greeting"],
    );
}

#[test]
fn keys_listing_goes_stale_when_a_reload_fails() {
    let mut h = keys_with_value();
    let cmds = h.char('r');
    let req = request(&cmds, |c| match c {
        crate::app::Command::ListKeys { req, .. } => Some(*req),
        _ => None,
    });
    let at = h.at(6);
    h.app.update(Event::Keys {
        req,
        at,
        result: Err("deadline exceeded".into()),
    });
    h.tick(20);
    both("keys_stale", &h.app, &["STALE 17s", "config.json"]);
}

#[test]
fn put_value_editor_then_its_confirmation() {
    let mut h = keys_with_value();
    h.char('e');
    h.key(KeyCode::Char('u'));
    h.app.update(Event::Key(crossterm::event::KeyEvent::new(
        KeyCode::Char('u'),
        crossterm::event::KeyModifiers::CONTROL,
    )));
    h.text(r#"{"replicas":4}"#);
    both(
        "put_editor",
        &h.app,
        &["Put value", "key: config.json", r#"value: {"replicas":4}█"#],
    );
    h.key(KeyCode::Enter);
    both(
        "put_confirm",
        &h.app,
        &[
            "Put key?",
            "target  config.json",
            r#"value: {"replicas":4} (14 bytes)"#,
            "[ No ]",
        ],
    );
}

#[test]
fn delete_key_confirmation() {
    let mut h = keys_with_value();
    h.char('x');
    both(
        "delete_confirm",
        &h.app,
        &[
            "Delete key?",
            "target  config.json",
            "version 2, mod revision 9",
            "[ No ]",
        ],
    );
}

#[test]
fn leases_view_at_both_sizes() {
    both(
        "leases",
        &with_leases().app,
        &["694d7a1b2c3d4e5f", "⏱ 53s", "/locks/a"],
    );
}

#[test]
fn lease_revoke_confirmation() {
    let mut h = with_leases();
    h.char('x');
    both(
        "lease_revoke_confirm",
        &h.app,
        &[
            "Revoke lease?",
            "lease 694d7a1b2c3d4e5f (TTL 60s)",
            "/locks/a, /locks/b",
            "[ No ]",
        ],
    );
}

#[test]
fn actions_view_at_both_sizes() {
    let mut h = Harness::healthy();
    h.char('4');
    h.char('j');
    h.char('j');
    h.char('j');
    both(
        "actions_remove_preview",
        &h.app,
        &["Remove member", "3 -> 2 voters, tolerates 0 failures"],
    );
}

#[test]
fn member_add_form_result_and_initial_cluster_line() {
    let mut h = Harness::healthy();
    h.char('4');
    h.key(KeyCode::Enter);
    h.text("127.0.0.1:2420");
    h.key(KeyCode::Enter);
    h.text("n4");
    both(
        "member_add_form",
        &h.app,
        &[
            "Add member as learner",
            "peer URL: http://127.0.0.1:2420",
            "name: n4█",
        ],
    );
    h.key(KeyCode::Enter);
    both(
        "member_add_confirm",
        &h.app,
        &[
            "Add learner?",
            "n4 at http://127.0.0.1:2420",
            "voters unchanged (3), tolerates 1 failure",
        ],
    );
    let cmds = h.char('y');
    let op = request(&cmds, |c| match c {
        crate::app::Command::Run(op) => Some(op.clone()),
        _ => None,
    });
    let mut members: Vec<(u64, String, Vec<String>)> = (1..=3)
        .map(|i| {
            let m = member(i, false);
            (m.id, m.name, m.peer_urls)
        })
        .collect();
    members.push((0x4004, String::new(), vec!["http://127.0.0.1:2420".into()]));
    let text = crate::data::member_added_text(
        "n4",
        0x4004,
        true,
        &["http://127.0.0.1:2420".into()],
        &members,
    );
    h.app.update(Event::Done {
        op,
        result: Ok(text),
    });
    both(
        "member_add_result",
        &h.app,
        &[
            "Member added",
            "--initial-cluster",
            "n1=http://127.0.0.1:2390,n2=",
            "--initial-cluster-state existing",
            "n4=",
        ],
    );
}

#[test]
fn refused_and_overridden_removal() {
    let mut h = Harness::healthy();
    let leader = member(2, false).id;
    let mut snap = cluster3(2);
    snap.members[2] = probe(member(3, false), leader, false, 0.0, 0);
    h.poll(4, Ok(snap));
    palette(&mut h, "member remove n1");
    both(
        "remove_refused",
        &h.app,
        &["✖ REFUSED: this would break quorum", "press ! to override"],
    );
    h.char('!');
    h.key(KeyCode::Right);
    both(
        "remove_overridden",
        &h.app,
        &["⚠ OVERRIDDEN: this would break quorum", "[ Yes ]"],
    );
}

#[test]
fn move_leader_confirmation() {
    let mut h = Harness::healthy();
    palette(&mut h, "move-leader n3");
    both(
        "move_leader_confirm",
        &h.app,
        &[
            "Move leader?",
            "Leadership moves from n2 to n3.",
            "voters unchanged (3), tolerates 1 failure",
        ],
    );
}

#[test]
fn compaction_form_and_confirmation() {
    let mut h = Harness::healthy();
    palette(&mut h, "compact");
    both(
        "compact_form",
        &h.app,
        &["Compact keyspace", "revision: 17█"],
    );
    h.key(KeyCode::Enter);
    both(
        "compact_confirm",
        &h.app,
        &[
            "Compact keyspace?",
            "revision 17 (current revision 17)",
            "cannot be undone",
        ],
    );
}

#[test]
fn defrag_confirmation() {
    let mut h = Harness::healthy();
    palette(&mut h, "defrag n1");
    both(
        "defrag_confirm",
        &h.app,
        &[
            "Defragment member?",
            "target  n1 (1000000000000001",
            "voters unchanged (3), tolerates 0 failures while it runs",
        ],
    );
}

#[test]
fn alarm_disarm_confirmation() {
    let mut h = Harness::healthy();
    let mut snap = cluster3(2);
    snap.alarms = Ok(vec![crate::model::Alarm {
        member_id: member(3, false).id,
        kind: "NOSPACE".into(),
    }]);
    h.poll(4, Ok(snap));
    palette(&mut h, "alarm disarm");
    both(
        "alarm_disarm_confirm",
        &h.app,
        &["Disarm alarms?", "1 active alarm(s)", "[ No ]"],
    );
}

#[test]
fn help_overlay_at_both_sizes_and_scrolled() {
    let mut h = Harness::healthy();
    h.char('?');
    both("help_cluster", &h.app, &["Help", "Everywhere"]);
    // At 80x24 it scrolls: the title says which lines show.
    let first = screen(&h.app, 80, 24);
    assert!(
        first.contains("lines 1-22 of 45 · j/k PgUp/PgDn scroll"),
        "{first}"
    );
    assert!(!first.contains(":quit"));
    h.char('G');
    both(
        "help_cluster_scrolled_to_the_end",
        &h.app,
        &[":quit", "quit, always"],
    );
    assert!(screen(&h.app, 80, 24).contains("lines 24-45 of 45"));
    h.key(KeyCode::Esc);
    assert!(!h.app.help.open && h.app.help.scroll == 0);
}

#[test]
fn command_palette_with_completions() {
    let mut h = Harness::healthy();
    h.char(':');
    h.text("mem");
    h.key(KeyCode::Tab);
    both(
        "palette_completion",
        &h.app,
        &[":member█", ":members", ":member add", ":member promote"],
    );
    h.text(" remove n");
    h.key(KeyCode::Tab);
    both(
        "palette_member_names",
        &h.app,
        &[
            ":member remove n█",
            ":member remove n1",
            ":member remove n3",
        ],
    );
}

#[test]
fn no_color_rendering_keeps_glyphs_and_drops_colours() {
    let app = keys_with_value().app;
    let mut t = Terminal::new(TestBackend::new(80, 24)).unwrap();
    t.draw(|f| draw(f, &app, Theme { color: false })).unwrap();
    // Styles included: only modifiers (bold, dim, reversed), no colour.
    insta::assert_snapshot!("no_color_keys_80x24", format!("{:?}", t.backend().buffer()));
    let app = Harness::healthy().app;
    let mut t = Terminal::new(TestBackend::new(160, 48)).unwrap();
    t.draw(|f| draw(f, &app, Theme { color: false })).unwrap();
    let buffer = t.backend().buffer();
    assert!(
        buffer
            .content
            .iter()
            .all(|c| c.fg == Color::Reset && c.bg == Color::Reset)
    );
    insta::assert_snapshot!("no_color_cluster_160x48", format!("{buffer:?}"));
}

#[test]
fn too_small_at_the_boundaries() {
    let app = Harness::healthy().app;
    for (w, h) in [(59, 24), (80, 15), (160, 15), (59, 48)] {
        let text = screen(&app, w, h);
        assert!(text.contains("terminal too small"), "{w}x{h}:\n{text}");
    }
    for (w, h) in [(60, 16), (80, 24)] {
        assert!(!screen(&app, w, h).contains("terminal too small"));
    }
    insta::assert_snapshot!("too_small_59x24", screen(&app, 59, 24));
}

#[test]
fn once_prints_the_cluster_as_plain_text() {
    let text = crate::ui::cluster_text(&Harness::healthy().app, 160);
    assert!(!text.contains('\u{1b}'));
    assert!(text.lines().all(|l| l == l.trim_end()));
    insta::assert_snapshot!("once_plain_text", text);
}

#[test]
fn defragmenting_a_member_is_refused_when_its_pause_would_break_quorum() {
    let mut h = Harness::healthy();
    let leader = member(2, false).id;
    let mut snap = cluster3(2);
    snap.members[2] = probe(member(3, false), leader, false, 0.0, 0);
    h.poll(4, Ok(snap));
    palette(&mut h, "defrag n1");
    both(
        "defrag_refused",
        &h.app,
        &[
            "✖ REFUSED: this would break quorum while it runs",
            "press ! to override",
        ],
    );
    assert!(h.char('y').is_empty(), "refused");
    h.char('!');
    assert!(matches!(
        &h.char('y')[..],
        [crate::app::Command::Run(crate::app::Op::Defrag { .. })]
    ));
}

#[test]
fn a_lost_watch_says_so_and_when_it_resumes() {
    let mut h = keys_with_value();
    let cmds = h.char('w');
    let id = request(&cmds, |c| match c {
        crate::app::Command::Watch { id, .. } => Some(*id),
        _ => None,
    });
    let at = h.at(4);
    h.app.update(Event::Watch {
        id,
        at,
        update: WatchUpdate::Started { revision: 17 },
    });
    h.app.update(Event::Watch {
        id,
        at,
        update: WatchUpdate::Failed("error reading a body from connection".into()),
    });
    both(
        "keys_watch_lost",
        &h.app,
        &[
            "✖ WATCH LOST · retry #1",
            "resumes at revision 18 on the next good poll",
        ],
    );
}

#[test]
fn the_value_pane_scrolls() {
    let mut h = keys_with_value();
    h.key(KeyCode::Enter);
    assert_eq!(h.app.keys.pane, crate::components::keys::KeysPane::Value);
    for _ in 0..4 {
        h.char('j');
    }
    assert_eq!(h.app.keys.value_scroll, 4);
    for (w, hgt) in [(80, 24), (160, 48)] {
        let text = screen(&h.app, w, hgt);
        assert!(!text.contains("create rev"), "{text}");
        assert!(text.contains("\"ports\": ["), "{text}");
    }
    both("keys_value_scrolled", &h.app, &["\"replicas\": 3"]);
    h.char('g');
    assert_eq!(h.app.keys.value_scroll, 0);
}

#[test]
fn a_member_under_an_alarm_still_counts_for_the_quorum() {
    let mut h = Harness::healthy();
    let mut snap = cluster3(2);
    for p in &mut snap.members {
        p.health = Some(false);
        if let Ok(s) = &mut p.status {
            s.errors = vec![format!("memberID:{} alarm:NOSPACE ", p.member.id)];
        }
    }
    snap.alarms = Ok(vec![crate::model::Alarm {
        member_id: member(1, false).id,
        kind: "NOSPACE".into(),
    }]);
    h.poll(4, Ok(snap));
    assert_eq!(
        h.app.shared.cluster.quorum().verdict(),
        "3/3 healthy, tolerates 1 failure"
    );
    both(
        "cluster_nospace",
        &h.app,
        &["⚠ alarm NOSPACE", "⚠ ALARMS  NOSPACE on 1000000000000001"],
    );
}
