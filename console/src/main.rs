//! `cetera-console`: see the crate docs of `console`.

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
    let result = runtime.block_on(term::run(config, &tls, credentials, theme, args.mouse));
    // Background tasks (polls in flight) must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    result
}
