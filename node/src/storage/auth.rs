//! The auth store's tables (`auth_users`, `auth_roles`) and its two meta
//! rows, seen through one connection or transaction: the whole
//! [`AuthStore`] is loaded and saved at once (auth stores are small and
//! change rarely). The rules live in `crate::auth`.

use tokio_rusqlite::rusqlite::Connection;

use super::{Meta, StorageError};
use crate::auth::{AuthStore, Role, User};

/// The auth tables through one connection; the caller owns the transaction.
pub struct SqliteAuth<'c>(pub &'c Connection);

fn decode<T: serde::de::DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, StorageError> {
    postcard::from_bytes(bytes).map_err(|e| StorageError::Decode {
        what,
        detail: e.to_string(),
    })
}

fn encode<T: serde::Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, StorageError> {
    postcard::to_stdvec(value).map_err(|e| StorageError::Decode {
        what,
        detail: e.to_string(),
    })
}

impl SqliteAuth<'_> {
    /// The stored auth state (empty and disabled on a new member).
    pub fn load(&self) -> Result<AuthStore, StorageError> {
        let mut store = self.flags()?;
        let mut users = self.0.prepare_cached("SELECT user FROM auth_users")?;
        for row in users.query_map([], |r| r.get::<_, Vec<u8>>(0))? {
            let user: User = decode("auth user", &row?)?;
            store.users.insert(user.name.clone(), user);
        }
        let mut roles = self.0.prepare_cached("SELECT role FROM auth_roles")?;
        for row in roles.query_map([], |r| r.get::<_, Vec<u8>>(0))? {
            let role: Role = decode("auth role", &row?)?;
            store.roles.insert(role.name.clone(), role);
        }
        Ok(store)
    }

    /// Replaces the stored auth state with `store`.
    pub fn save(&self, store: &AuthStore) -> Result<(), StorageError> {
        let meta = Meta(self.0);
        meta.set_i64(Meta::AUTH_ENABLED, i64::from(store.enabled))?;
        meta.set_i64(Meta::AUTH_REVISION, store.revision as i64)?;
        self.0
            .execute_batch("DELETE FROM auth_users; DELETE FROM auth_roles;")?;
        let mut users = self
            .0
            .prepare_cached("INSERT INTO auth_users (name, user) VALUES (?1, ?2)")?;
        for user in store.users.values() {
            users.execute((&user.name, encode("auth user", user)?))?;
        }
        let mut roles = self
            .0
            .prepare_cached("INSERT INTO auth_roles (name, role) VALUES (?1, ?2)")?;
        for role in store.roles.values() {
            roles.execute((&role.name, encode("auth role", role)?))?;
        }
        Ok(())
    }

    /// The enabled flag and revision alone, without users or roles: all
    /// that every client write's apply needs to read (two meta rows).
    pub fn flags(&self) -> Result<AuthStore, StorageError> {
        let meta = Meta(self.0);
        Ok(AuthStore {
            enabled: meta.i64(Meta::AUTH_ENABLED)?.unwrap_or(0) != 0,
            revision: meta.i64(Meta::AUTH_REVISION)?.unwrap_or(0) as u64,
            ..AuthStore::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Access, AuthOp, KeyPermission};

    #[test]
    fn the_auth_store_round_trips_through_its_tables() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(crate::storage::SCHEMA).unwrap();
        let tables = SqliteAuth(&conn);
        assert_eq!(tables.load().unwrap(), AuthStore::default());
        let mut store = AuthStore::default();
        let ops = [
            AuthOp::UserAdd {
                name: "root".into(),
                password_hash: Some("h".into()),
            },
            AuthOp::UserGrantRole {
                user: "root".into(),
                role: "root".into(),
            },
            AuthOp::RoleAdd { name: "r".into() },
            AuthOp::RoleGrantPermission {
                name: "r".into(),
                perm: KeyPermission {
                    access: Access::ReadWrite,
                    key: b"/k".to_vec(),
                    range_end: vec![0],
                },
            },
            AuthOp::Enable,
        ];
        for op in &ops {
            store.apply(op, 1).unwrap();
        }
        tables.save(&store).unwrap();
        assert_eq!(tables.load().unwrap(), store);
        let flags = tables.flags().unwrap();
        assert_eq!((flags.enabled, flags.revision), (true, store.revision));
        // Saving replaces: a deleted role is gone from the table.
        store
            .apply(&AuthOp::RoleDelete { role: "r".into() }, 2)
            .unwrap();
        tables.save(&store).unwrap();
        assert_eq!(tables.load().unwrap(), store);
    }
}
