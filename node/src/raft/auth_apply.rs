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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::AuthError;
    use crate::proto::etcdserverpb::PutRequest;

    fn applied(conn: &Connection, command: Command, index: u64) -> Option<CommandResult> {
        match screen(conn, command, index, &mut Vec::new()).unwrap() {
            Screened::Done(result) => Some(result),
            Screened::Apply(_) => None,
        }
    }

    fn auth(conn: &Connection, op: AuthOp, caller: Option<Caller>) -> CommandResult {
        let command = match caller {
            Some(caller) => Command::Authorized {
                caller,
                command: Box::new(Command::Auth(op)),
            },
            None => Command::Auth(op),
        };
        applied(conn, command, 7).expect("auth ops are applied here")
    }

    fn put_as(caller: &Caller) -> Command {
        Command::Authorized {
            caller: caller.clone(),
            command: Box::new(Command::Put(PutRequest::default())),
        }
    }

    #[test]
    fn writes_are_screened_against_the_stored_auth_revision() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(crate::storage::SCHEMA).unwrap();
        let ok = CommandResult::Auth(Ok(None));
        let ops = [
            AuthOp::UserAdd {
                name: "root".into(),
                password_hash: Some("h".into()),
            },
            AuthOp::UserGrantRole {
                user: "root".into(),
                role: "root".into(),
            },
            AuthOp::Enable,
        ];
        for op in ops {
            assert_eq!(auth(&conn, op, None), ok);
        }
        let revision = SqliteAuth(&conn).flags().unwrap().revision;
        let root = Caller {
            user: Some("root".into()),
            revision,
        };
        // Checked against the current revision: on to the keyspace.
        assert_eq!(applied(&conn, put_as(&root), 8), None);
        // Unchecked while auth is on: refused.
        let plain = Command::Put(PutRequest::default());
        assert_eq!(
            applied(&conn, plain, 9),
            Some(CommandResult::Auth(Err(AuthError::UserEmpty)))
        );
        // An auth change without root's token is refused at apply too.
        let role_add = AuthOp::RoleAdd { name: "r".into() };
        assert_eq!(
            auth(&conn, role_add.clone(), None),
            CommandResult::Auth(Err(AuthError::UserEmpty))
        );
        assert_eq!(auth(&conn, role_add, Some(root.clone())), ok);
        // The store moved on since `root` was checked.
        assert_eq!(
            applied(&conn, put_as(&root), 10),
            Some(CommandResult::Auth(Err(AuthError::AuthOldRevision)))
        );
        let token = auth(
            &conn,
            AuthOp::Authenticate {
                name: "root".into(),
                token_prefix: "abcdefghijklmnop".into(),
            },
            None,
        );
        assert_eq!(
            token,
            CommandResult::Auth(Ok(Some("abcdefghijklmnop.7".into())))
        );
    }
}
