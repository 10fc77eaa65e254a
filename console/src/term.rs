//! The terminal layer: crossterm input and a clock feeding the core, the
//! main loop (generic over the ratatui backend, so tests can drive it on a
//! `TestBackend`), and `--once`.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

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
pub async fn run(config: Config, theme: Theme, mouse: bool) -> anyhow::Result<()> {
    let (tx, rx) = mpsc::unbounded_channel();
    let clients = Clients::new(config.endpoints.clone())?;
    let poller = spawn_poller(clients.clone(), config.refresh, tx.clone());
    let mut exec = Exec::new(clients, tx.clone(), poller);

    // Installs a panic hook that restores the terminal before printing.
    let mut terminal = ratatui::try_init()?;
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
        app.size = (size.width, size.height);
    }
    let result = main_loop(&mut terminal, app, rx, |cmd| exec.run(cmd), theme).await;
    input.abort();
    clock.abort();
    if mouse {
        let _ = execute!(stdout, DisableMouseCapture);
    }
    let _ = execute!(stdout, DisableBracketedPaste);
    ratatui::restore();
    result
}

async fn read_input(tx: mpsc::UnboundedSender<Event>) {
    let mut events = EventStream::new();
    while let Some(Ok(ev)) = events.next().await {
        let ev = match ev {
            TermEvent::Key(k) if k.kind != KeyEventKind::Release => Event::Key(k),
            TermEvent::Paste(text) => Event::Paste(text),
            TermEvent::Resize(w, h) => Event::Resize(w, h),
            TermEvent::Mouse(m) => match m.kind {
                MouseEventKind::ScrollDown => {
                    Event::Key(KeyEvent::new(KeyCode::Down, KeyModifiers::NONE))
                }
                MouseEventKind::ScrollUp => {
                    Event::Key(KeyEvent::new(KeyCode::Up, KeyModifiers::NONE))
                }
                _ => continue,
            },
            _ => continue,
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
    mut app: App,
    mut rx: mpsc::UnboundedReceiver<Event>,
    mut exec: impl FnMut(Command),
    theme: Theme,
) -> anyhow::Result<()>
where
    B::Error: Send + Sync + 'static,
{
    for cmd in app.start() {
        exec(cmd);
    }
    terminal.draw(|f| ui::draw(f, &app, theme))?;
    while let Some(ev) = rx.recv().await {
        for cmd in app.update(ev) {
            exec(cmd);
        }
        // Everything already queued is applied before the next frame.
        while let Ok(ev) = rx.try_recv() {
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
pub async fn once(config: Config) -> anyhow::Result<String> {
    let clients = Clients::new(config.endpoints.clone())?;
    let at = Instant::now();
    let result = poll_once(&clients).await;
    if let Err(e) = &result {
        anyhow::bail!("cannot reach the cluster: {e}");
    }
    let mut app = App::new(config, Instant::now(), unix_now());
    app.update(Event::Cluster { seq: 1, at, result });
    Ok(ui::cluster_text(&app, 160))
}
