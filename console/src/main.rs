//! `cetera-console`: see the crate docs of `console`.
//!
//! Test hook: `CETERA_CONSOLE_PANIC_ON_KEY=<char>` makes the console panic
//! when that key is pressed, so the end-to-end tests can check that the
//! terminal is restored after a real panic. It is read here and nowhere else.

/// The test hook's variable (see the module docs).
const PANIC_ON_KEY: &str = "CETERA_CONSOLE_PANIC_ON_KEY";

use clap::Parser;
use console::cli::Args;
use console::term;
use console::ui::Theme;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let tls = args.tls().map_err(anyhow::Error::msg)?;
    let config = args.config();
    if config.endpoints.is_empty() {
        anyhow::bail!("--endpoints is empty");
    }
    // Asked before the terminal is taken over.
    let credentials = args
        .user_flags()
        .resolve(|_| cetera::client_auth::ask_password("Password: "))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    if args.once {
        let text = runtime.block_on(term::once(config, &tls, credentials))?;
        print!("{text}");
        return Ok(());
    }
    let theme = Theme {
        color: args.color(),
    };
    let panic_on_key = std::env::var(PANIC_ON_KEY)
        .ok()
        .and_then(|v| v.chars().next());
    let result = runtime.block_on(term::run(
        config,
        &tls,
        credentials,
        theme,
        args.mouse,
        panic_on_key,
    ));
    // Background tasks (polls in flight) must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    result
}
