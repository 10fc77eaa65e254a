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
        update: WatchUpdate::Started,
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
