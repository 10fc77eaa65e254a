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
/// `flags` caches the auth store's flags for the rest of the apply
/// transaction; an auth change empties it.
pub(super) fn screen(
    conn: &Connection,
    command: Command,
    index: u64,
    changes: &mut Vec<AppliedChange>,
    flags: &mut Option<AuthStore>,
) -> Result<Screened, StorageError> {
    let (caller, command) = match command {
        Command::Authorized { caller, command } => (Some(caller), *command),
        other => (None, other),
    };
    if let Command::Auth(op) = &command {
        *flags = None;
        let result = apply_op(conn, op, caller.as_ref(), index, changes)?;
        return Ok(Screened::Done(CommandResult::Auth(result)));
    }
    if caller.is_some() || is_checked_write(&command) {
        let flags = match flags {
            Some(flags) => flags,
            None => flags.insert(SqliteAuth(conn).flags()?),
        };
        if let Err(refused) = flags.admit(caller.as_ref(), false) {
            return Ok(Screened::Done(CommandResult::Auth(Err(refused))));
        }
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

    /// Screens commands on one connection, as one apply transaction
    /// (`shared`: the flags cached across commands) or as one transaction
    /// per command.
    struct Screener {
        conn: Connection,
        flags: Option<AuthStore>,
        shared: bool,
    }

    impl Screener {
        fn new(shared: bool) -> Self {
            let conn = Connection::open_in_memory().unwrap();
            conn.execute_batch(crate::storage::SCHEMA).unwrap();
            Self {
                conn,
                flags: None,
                shared,
            }
        }

        fn applied(&mut self, command: Command, index: u64) -> Option<CommandResult> {
            if !self.shared {
                self.flags = None;
            }
            match screen(&self.conn, command, index, &mut Vec::new(), &mut self.flags).unwrap() {
                Screened::Done(result) => Some(result),
                Screened::Apply(_) => None,
            }
        }

        fn auth(&mut self, op: AuthOp, caller: Option<Caller>) -> CommandResult {
            let command = match caller {
                Some(caller) => Command::Authorized {
                    caller,
                    command: Box::new(Command::Auth(op)),
                },
                None => Command::Auth(op),
            };
            self.applied(command, 7).expect("auth ops are applied here")
        }
    }

    fn put_as(caller: &Caller) -> Command {
        Command::Authorized {
            caller: caller.clone(),
            command: Box::new(Command::Put(PutRequest::default())),
        }
    }

    #[test]
    fn writes_are_screened_against_the_stored_auth_revision() {
        for shared in [false, true] {
            screen_against_the_stored_auth_revision(Screener::new(shared));
        }
    }

    fn screen_against_the_stored_auth_revision(mut s: Screener) {
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
            assert_eq!(s.auth(op, None), ok);
        }
        let revision = SqliteAuth(&s.conn).flags().unwrap().revision;
        let root = Caller {
            user: Some("root".into()),
            revision,
        };
        // Checked against the current revision: on to the keyspace.
        assert_eq!(s.applied(put_as(&root), 8), None);
        // Unchecked while auth is on: refused.
        let plain = Command::Put(PutRequest::default());
        assert_eq!(
            s.applied(plain, 9),
            Some(CommandResult::Auth(Err(AuthError::UserEmpty)))
        );
        // An auth change without root's token is refused at apply too.
        let role_add = AuthOp::RoleAdd { name: "r".into() };
        assert_eq!(
            s.auth(role_add.clone(), None),
            CommandResult::Auth(Err(AuthError::UserEmpty))
        );
        assert_eq!(s.auth(role_add, Some(root.clone())), ok);
        // The store moved on since `root` was checked.
        assert_eq!(
            s.applied(put_as(&root), 10),
            Some(CommandResult::Auth(Err(AuthError::AuthOldRevision)))
        );
        let token = s.auth(
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
