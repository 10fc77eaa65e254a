//! The state machine's auth step: applies auth changes to the stored auth
//! store, and screens every other client write against it before the
//! keyspace sees it. The rules are `crate::auth`'s; this only loads, saves
//! and reports.

use std::sync::Arc;

use tokio_rusqlite::rusqlite::Connection;

use super::{AppliedChange, Command, CommandResult};
use crate::auth::{AuthOp, AuthStore, Caller, TokenEffect};
use crate::storage::{SqliteAuth, StorageError};

/// What the auth step decided about a command.
pub(super) enum Screened {
    /// Fully handled here (an auth change, or a refusal).
    Done(CommandResult),
    /// For the keyspace to apply (unwrapped from its auth check).
    Apply(Command),
}

/// Applies `command` if it is an auth change; otherwise checks that the
/// auth check it was proposed with still holds. `index` is the log index
/// of its entry.
pub(super) fn screen(
    conn: &Connection,
    command: Command,
    index: u64,
    changes: &mut Vec<AppliedChange>,
) -> Result<Screened, StorageError> {
    let (caller, command) = match command {
        Command::Authorized { caller, command } => (Some(caller), *command),
        other => (None, other),
    };
    if let Command::Auth(op) = &command {
        let result = apply_op(conn, op, caller.as_ref(), index, changes)?;
        return Ok(Screened::Done(CommandResult::Auth(result)));
    }
    if (caller.is_some() || is_checked_write(&command))
        && let Err(refused) = SqliteAuth(conn).flags()?.admit(caller.as_ref(), false)
    {
        return Ok(Screened::Done(CommandResult::Auth(Err(refused))));
    }
    Ok(Screened::Apply(command))
}

/// The client writes etcd refuses at apply when they were proposed without
/// an auth check while auth is enabled.
fn is_checked_write(command: &Command) -> bool {
    matches!(
        command,
        Command::Put(_) | Command::DeleteRange(_) | Command::Txn(_)
    )
}

fn apply_op(
    conn: &Connection,
    op: &AuthOp,
    caller: Option<&Caller>,
    index: u64,
    changes: &mut Vec<AppliedChange>,
) -> Result<Result<Option<String>, crate::auth::AuthError>, StorageError> {
    let tables = SqliteAuth(conn);
    let mut store = tables.load()?;
    if op.needs_admin()
        && let Err(refused) = store.admit(caller, true)
    {
        return Ok(Err(refused));
    }
    let revision = store.revision;
    let tokens = match store.apply(op, index) {
        Ok(tokens) => tokens,
        Err(refused) => return Ok(Err(refused)),
    };
    if store.revision != revision {
        tables.save(&store)?;
    }
    let token = match &tokens {
        TokenEffect::Assign { token, .. } => Some(token.clone()),
        _ => None,
    };
    changes.push(AppliedChange::Auth {
        store: Arc::new(store),
        tokens,
    });
    Ok(Ok(token))
}

/// The stored auth store, for observers after a snapshot replaced it.
pub(super) fn load(conn: &Connection) -> Result<AuthStore, StorageError> {
    SqliteAuth(conn).load()
}
