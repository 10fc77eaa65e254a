//! The terminal layer: crossterm input and a clock feeding the core, the
//! main loop (generic over the ratatui backend, so tests can drive it on a
//! `TestBackend`), and `--once`.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use cetera::client_auth::Credentials;
use cetera::client_tls::TlsFlags;
use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture,
    Event as TermEvent, EventStream, KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEventKind,
};
use crossterm::execute;
use futures::StreamExt;
use ratatui::Terminal;
use ratatui::backend::Backend;
use tokio::sync::mpsc;

use crate::app::{App, Command, Config, Event};
use crate::data::{Clients, Exec, poll_once, spawn_poller};
use crate::ui::{self, Theme};

/// How often the clock ticks (ages and countdowns advance with it).
pub const TICK: std::time::Duration = std::time::Duration::from_millis(250);

/// Wall-clock unix seconds.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Runs the console on the real terminal until the user quits.
///
/// `panic_on_key` is a test hook (set by `main` from
/// `CETERA_CONSOLE_PANIC_ON_KEY` only): that key makes the main loop panic,
/// so the end-to-end tests can check that a real panic restores the terminal.
pub async fn run(
    config: Config,
    tls: &TlsFlags,
    credentials: Option<Credentials>,
    theme: Theme,
    mouse: bool,
    panic_on_key: Option<char>,
) -> anyhow::Result<()> {
    let (tx, rx) = mpsc::unbounded_channel();
    let clients = Clients::new(config.endpoints.clone(), tls, credentials)?;
    let poller = spawn_poller(clients.clone(), config.refresh, tx.clone());
    let mut exec = Exec::new(clients, tx.clone(), poller);

    let mut terminal = ratatui::try_init()?;
    // Our hook replaces ratatui's: it also turns off mouse capture and
    // bracketed paste, which `ratatui::restore` leaves on.
    install_restoring_panic_hook(move || restore_terminal(mouse));
    let mut stdout = std::io::stdout();
    let _ = execute!(stdout, EnableBracketedPaste);
    if mouse {
        let _ = execute!(stdout, EnableMouseCapture);
    }
    let input = tokio::spawn(read_input(tx.clone()));
    let clock = tokio::spawn(async move {
        let mut interval = tokio::time::interval(TICK);
        loop {
            interval.tick().await;
            if tx.send(Event::Tick(Instant::now(), unix_now())).is_err() {
                return;
            }
        }
    });
    let mut app = App::new(config, Instant::now(), unix_now());
    if let Ok(size) = terminal.size() {
        app.shared.size = (size.width, size.height);
    }
    let panic_hook = |ev: &Event| {
        if let (Some(c), Event::Key(key)) = (panic_on_key, ev)
            && key.code == KeyCode::Char(c)
        {
            panic!("CETERA_CONSOLE_PANIC_ON_KEY: {c:?} pressed");
        }
    };
    let result = main_loop_inspecting(
        &mut terminal,
        app,
        rx,
        |cmd| exec.run(cmd),
        theme,
        panic_hook,
    )
    .await;
    input.abort();
    clock.abort();
    restore_terminal(mouse);
    result
}

/// Leaves the terminal as the console found it: mouse capture and
/// bracketed paste off, main screen, cooked mode, cursor shown.
fn restore_terminal(mouse: bool) {
    let mut stdout = std::io::stdout();
    if mouse {
        let _ = execute!(stdout, DisableMouseCapture);
    }
    let _ = execute!(stdout, DisableBracketedPaste);
    ratatui::restore();
}

/// Chains a panic hook that runs `restore` before the previous hook prints
/// the panic, so the message lands on a usable terminal.
pub fn install_restoring_panic_hook(restore: impl Fn() + Send + Sync + 'static) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous(info);
    }));
}

/// What a terminal event means to the core, if anything: key presses
/// (not releases), pastes, resizes, and (with `--mouse`) the wheel as ↑/↓.
pub fn map_event(ev: TermEvent) -> Option<Event> {
    match ev {
        TermEvent::Key(k) if k.kind != KeyEventKind::Release => Some(Event::Key(k)),
        TermEvent::Paste(text) => Some(Event::Paste(text)),
        TermEvent::Resize(w, h) => Some(Event::Resize(w, h)),
        TermEvent::Mouse(m) => match m.kind {
            MouseEventKind::ScrollDown => {
                Some(Event::Key(KeyEvent::new(KeyCode::Down, KeyModifiers::NONE)))
            }
            MouseEventKind::ScrollUp => {
                Some(Event::Key(KeyEvent::new(KeyCode::Up, KeyModifiers::NONE)))
            }
            _ => None,
        },
        _ => None,
    }
}

async fn read_input(tx: mpsc::UnboundedSender<Event>) {
    let mut events = EventStream::new();
    while let Some(Ok(ev)) = events.next().await {
        let Some(ev) = map_event(ev) else {
            continue;
        };
        if tx.send(ev).is_err() {
            return;
        }
    }
}

/// Feeds events to the core, runs its commands and redraws, until it quits
/// or the event channel closes. Generic over the backend.
pub async fn main_loop<B: Backend>(
    terminal: &mut Terminal<B>,
    app: App,
    rx: mpsc::UnboundedReceiver<Event>,
    exec: impl FnMut(Command),
    theme: Theme,
) -> anyhow::Result<()>
where
    B::Error: Send + Sync + 'static,
{
    main_loop_inspecting(terminal, app, rx, exec, theme, |_| {}).await
}

/// [`main_loop`], showing each event to `inspect` before the core applies
/// it (on the main loop's own task: a panic there ends the process).
async fn main_loop_inspecting<B: Backend>(
    terminal: &mut Terminal<B>,
    mut app: App,
    mut rx: mpsc::UnboundedReceiver<Event>,
    mut exec: impl FnMut(Command),
    theme: Theme,
    mut inspect: impl FnMut(&Event),
) -> anyhow::Result<()>
where
    B::Error: Send + Sync + 'static,
{
    for cmd in app.start() {
        exec(cmd);
    }
    terminal.draw(|f| ui::draw(f, &app, theme))?;
    while let Some(ev) = rx.recv().await {
        inspect(&ev);
        for cmd in app.update(ev) {
            exec(cmd);
        }
        // Everything already queued is applied before the next frame.
        while let Ok(ev) = rx.try_recv() {
            inspect(&ev);
            for cmd in app.update(ev) {
                exec(cmd);
            }
        }
        if app.quit {
            break;
        }
        terminal.draw(|f| ui::draw(f, &app, theme))?;
    }
    Ok(())
}

/// One poll, printed as the Cluster view in plain text (`--once`). Fails
/// when the cluster could not be reached at all.
pub async fn once(
    config: Config,
    tls: &TlsFlags,
    credentials: Option<Credentials>,
) -> anyhow::Result<String> {
    let clients = Clients::new(config.endpoints.clone(), tls, credentials)?;
    let at = Instant::now();
    let result = poll_once(&clients).await;
    if let Err(e) = &result {
        anyhow::bail!("cannot reach the cluster: {e}");
    }
    let mut app = App::new(config, Instant::now(), unix_now());
    app.update(Event::Cluster { seq: 1, at, result });
    Ok(ui::cluster_text(&app, 160))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use crossterm::event::{MouseEvent, MouseEventKind};
    use ratatui::backend::TestBackend;

    use super::*;
    use crate::app::Command;
    use crate::fixtures::{UNIX_NOW, cluster3};

    #[test]
    fn the_panic_hook_restores_before_reporting() {
        let restored = Arc::new(AtomicBool::new(false));
        let flag = restored.clone();
        let previous = std::panic::take_hook();
        // The hook the console chains onto: it must run after the restore.
        let seen_restored_first = Arc::new(AtomicBool::new(false));
        let seen = seen_restored_first.clone();
        let probe = restored.clone();
        std::panic::set_hook(Box::new(move |_| {
            seen.store(probe.load(Ordering::SeqCst), Ordering::SeqCst);
        }));
        install_restoring_panic_hook(move || flag.store(true, Ordering::SeqCst));
        let result = std::panic::catch_unwind(|| panic!("boom"));
        std::panic::set_hook(previous);
        assert!(result.is_err());
        assert!(restored.load(Ordering::SeqCst), "the terminal was restored");
        assert!(
            seen_restored_first.load(Ordering::SeqCst),
            "the panic is reported after the restore"
        );
    }

    #[test]
    fn terminal_events_map_to_core_events() {
        let key = KeyEvent::new(KeyCode::Char('j'), KeyModifiers::NONE);
        assert!(matches!(map_event(TermEvent::Key(key)), Some(Event::Key(k)) if k == key));
        let mut release = key;
        release.kind = KeyEventKind::Release;
        assert!(map_event(TermEvent::Key(release)).is_none());
        assert!(matches!(
            map_event(TermEvent::Resize(100, 30)),
            Some(Event::Resize(100, 30))
        ));
        assert!(matches!(
            map_event(TermEvent::Paste("v".into())),
            Some(Event::Paste(t)) if t == "v"
        ));
        let wheel = |kind| {
            TermEvent::Mouse(MouseEvent {
                kind,
                column: 0,
                row: 0,
                modifiers: KeyModifiers::NONE,
            })
        };
        assert!(matches!(
            map_event(wheel(MouseEventKind::ScrollDown)),
            Some(Event::Key(k)) if k.code == KeyCode::Down
        ));
        assert!(matches!(
            map_event(wheel(MouseEventKind::ScrollUp)),
            Some(Event::Key(k)) if k.code == KeyCode::Up
        ));
        assert!(map_event(wheel(MouseEventKind::Moved)).is_none());
    }

    /// The main loop on a `TestBackend`: it runs the start-up commands,
    /// applies events, draws, and stops on `q`.
    #[tokio::test]
    async fn the_main_loop_runs_on_any_backend() {
        let config = crate::app::Config {
            endpoints: vec!["http://127.0.0.1:2389".into()],
            read_only: false,
            refresh: std::time::Duration::from_secs(2),
        };
        let now = Instant::now();
        let app = App::new(config, now, UNIX_NOW);
        let (tx, rx) = mpsc::unbounded_channel();
        tx.send(Event::Cluster {
            seq: 1,
            at: now,
            result: Ok(cluster3(0)),
        })
        .unwrap();
        tx.send(Event::Key(KeyEvent::new(
            KeyCode::Char('q'),
            KeyModifiers::NONE,
        )))
        .unwrap();
        let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
        let mut commands = Vec::new();
        main_loop(
            &mut terminal,
            app,
            rx,
            |c| commands.push(c),
            Theme { color: false },
        )
        .await
        .unwrap();
        assert_eq!(commands, [Command::Poll, Command::Quit]);
        let screen = terminal.backend().to_string();
        assert!(screen.contains("connecting"), "{screen}");
    }
}
