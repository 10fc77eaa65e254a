use super::*;

fn user_add(name: &str) -> AuthOp {
    AuthOp::UserAdd {
        name: name.into(),
        password_hash: Some(format!("hash-of-{name}")),
    }
}

fn grant(user: &str, role: &str) -> AuthOp {
    AuthOp::UserGrantRole {
        user: user.into(),
        role: role.into(),
    }
}

fn perm(access: Access, key: &str, end: &str) -> KeyPermission {
    KeyPermission {
        access,
        key: key.into(),
        range_end: end.into(),
    }
}

fn grant_perm(role: &str, p: KeyPermission) -> AuthOp {
    AuthOp::RoleGrantPermission {
        name: role.into(),
        perm: p,
    }
}

fn apply_all(store: &mut AuthStore, ops: &[AuthOp]) {
    for (i, op) in ops.iter().enumerate() {
        store.apply(op, i as u64 + 1).unwrap();
    }
}

/// root (with the root role), bob with role `r` (read [/a, /c), write /w
/// prefix), auth enabled.
fn enabled_store() -> AuthStore {
    let mut store = AuthStore::default();
    apply_all(
        &mut store,
        &[
            user_add("root"),
            grant("root", "root"),
            user_add("bob"),
            AuthOp::RoleAdd { name: "r".into() },
            grant_perm("r", perm(Access::Read, "/a", "/c")),
            grant_perm("r", perm(Access::Write, "/w", "/x")),
            grant("bob", "r"),
            AuthOp::Enable,
        ],
    );
    store
}

fn caller(store: &AuthStore, name: &str) -> Caller {
    Caller {
        user: Some(name.into()),
        revision: store.revision,
    }
}

#[test]
fn enabling_needs_root_with_the_root_role() {
    let mut store = AuthStore::default();
    assert_eq!(
        store.apply(&AuthOp::Enable, 1),
        Err(AuthError::RootUserNotExist)
    );
    store.apply(&user_add("root"), 2).unwrap();
    assert_eq!(
        store.apply(&AuthOp::Enable, 3),
        Err(AuthError::RootRoleNotExist)
    );
    store.apply(&grant("root", "root"), 4).unwrap();
    let before = store.revision;
    store.apply(&AuthOp::Enable, 5).unwrap();
    assert!(store.enabled);
    assert_eq!(store.revision, before + 1);
    // Enabling again changes nothing.
    store.apply(&AuthOp::Enable, 6).unwrap();
    assert_eq!(store.revision, before + 1);
}

#[test]
fn every_change_bumps_the_revision_and_refusals_do_not() {
    let mut store = AuthStore::default();
    store.apply(&user_add("a"), 1).unwrap();
    assert_eq!(store.revision, 1);
    assert_eq!(
        store.apply(&user_add("a"), 2),
        Err(AuthError::UserAlreadyExists)
    );
    assert_eq!(store.revision, 1);
    store
        .apply(&AuthOp::RoleAdd { name: "r".into() }, 3)
        .unwrap();
    assert_eq!(store.revision, 2);
    // A second grant of the same role is ignored.
    store.apply(&grant("a", "r"), 4).unwrap();
    store.apply(&grant("a", "r"), 5).unwrap();
    assert_eq!(store.revision, 3);
}

#[test]
fn user_and_role_errors_are_etcds() {
    let mut store = AuthStore::default();
    let err = |store: &mut AuthStore, op: AuthOp| store.apply(&op, 9).unwrap_err();
    assert_eq!(err(&mut store, user_add("")), AuthError::UserEmpty);
    assert_eq!(
        err(&mut store, AuthOp::RoleAdd { name: "".into() }),
        AuthError::RoleEmpty
    );
    assert_eq!(
        err(
            &mut store,
            AuthOp::UserDelete {
                name: "nobody".into()
            }
        ),
        AuthError::UserNotFound
    );
    store.apply(&user_add("u"), 1).unwrap();
    assert_eq!(
        err(&mut store, grant("u", "nosuch")),
        AuthError::RoleNotFound
    );
    assert_eq!(
        err(&mut store, grant("nobody", "root")),
        AuthError::UserNotFound
    );
    assert_eq!(
        err(
            &mut store,
            AuthOp::UserRevokeRole {
                name: "u".into(),
                role: "nosuch".into()
            }
        ),
        AuthError::RoleNotGranted
    );
    store
        .apply(&AuthOp::RoleAdd { name: "r".into() }, 2)
        .unwrap();
    assert_eq!(
        err(
            &mut store,
            AuthOp::RoleRevokePermission {
                role: "r".into(),
                key: b"/q".to_vec(),
                range_end: vec![]
            }
        ),
        AuthError::PermissionNotGranted
    );
    assert_eq!(
        err(&mut store, AuthOp::RoleDelete { role: "x".into() }),
        AuthError::RoleNotFound
    );
}

#[test]
fn root_cannot_be_removed_while_enabled() {
    let mut store = enabled_store();
    let revoke_root = AuthOp::UserRevokeRole {
        name: "root".into(),
        role: "root".into(),
    };
    assert_eq!(
        store.apply(&revoke_root, 1),
        Err(AuthError::InvalidAuthMgmt)
    );
    let delete_root = AuthOp::UserDelete {
        name: "root".into(),
    };
    assert_eq!(
        store.apply(&delete_root, 2),
        Err(AuthError::InvalidAuthMgmt)
    );
    store
        .apply(
            &AuthOp::RoleAdd {
                name: "root".into(),
            },
            3,
        )
        .unwrap();
    let delete_role = AuthOp::RoleDelete {
        role: "root".into(),
    };
    assert_eq!(
        store.apply(&delete_role, 4),
        Err(AuthError::InvalidAuthMgmt)
    );
    assert_eq!(
        store.apply(&AuthOp::Disable, 5),
        Ok(TokenEffect::InvalidateAll)
    );
    store.apply(&revoke_root, 6).unwrap();
    store.apply(&delete_root, 7).unwrap();
}

#[test]
fn granted_permissions_stay_sorted_and_merge_on_the_same_range() {
    let mut store = AuthStore::default();
    apply_all(
        &mut store,
        &[
            AuthOp::RoleAdd { name: "r".into() },
            grant_perm("r", perm(Access::Read, "/m", "/n")),
            grant_perm("r", perm(Access::Read, "/a", "")),
            grant_perm("r", perm(Access::Write, "/m", "/n")),
            grant_perm("r", perm(Access::Read, "/m", "/z")),
        ],
    );
    assert_eq!(
        store.roles["r"].perms,
        vec![
            perm(Access::Read, "/a", ""),
            perm(Access::Read, "/m", "/z"),
            perm(Access::Write, "/m", "/n"),
        ]
    );
}

#[test]
fn deleting_a_role_takes_it_from_its_users() {
    let mut store = enabled_store();
    store
        .apply(&AuthOp::RoleDelete { role: "r".into() }, 1)
        .unwrap();
    assert!(store.users["bob"].roles.is_empty());
}

#[test]
fn authenticating_names_the_token_after_the_entry_index() {
    let mut store = enabled_store();
    let op = AuthOp::Authenticate {
        name: "bob".into(),
        token_prefix: "abcdefghijklmnop".into(),
    };
    let revision = store.revision;
    assert_eq!(
        store.apply(&op, 42),
        Ok(TokenEffect::Assign {
            token: "abcdefghijklmnop.42".into(),
            user: "bob".into()
        })
    );
    assert_eq!(store.revision, revision);
    let nobody = AuthOp::Authenticate {
        name: "nobody".into(),
        token_prefix: "x".into(),
    };
    assert_eq!(store.apply(&nobody, 43), Err(AuthError::AuthFailed));
    store.apply(&AuthOp::Disable, 44).unwrap();
    assert_eq!(store.apply(&op, 45), Err(AuthError::NotEnabled));
}

#[test]
fn no_password_users_cannot_authenticate() {
    let mut store = enabled_store();
    store
        .apply(
            &AuthOp::UserAdd {
                name: "np".into(),
                password_hash: None,
            },
            1,
        )
        .unwrap();
    assert_eq!(store.password_hash_of("np"), Err(AuthError::AuthFailed));
    assert_eq!(store.password_hash_of("bob"), Ok("hash-of-bob"));
}

#[test]
fn new_passwords_and_deletions_void_the_users_tokens() {
    let mut store = enabled_store();
    let change = AuthOp::UserChangePassword {
        name: "bob".into(),
        password_hash: Some("new".into()),
    };
    assert_eq!(
        store.apply(&change, 1),
        Ok(TokenEffect::InvalidateUser("bob".into()))
    );
    let delete = AuthOp::UserDelete { name: "bob".into() };
    assert_eq!(
        store.apply(&delete, 2),
        Ok(TokenEffect::InvalidateUser("bob".into()))
    );
}

#[test]
fn key_checks_follow_the_roles_permissions() {
    let store = enabled_store();
    let bob = caller(&store, "bob");
    assert_eq!(store.check_key(&bob, b"/b", b"", Access::Read), Ok(()));
    assert_eq!(
        store.check_key(&bob, b"/b", b"", Access::Write),
        Err(AuthError::PermissionDenied)
    );
    assert_eq!(store.check_key(&bob, b"/wq", b"", Access::Write), Ok(()));
    assert_eq!(
        store.check_key(&bob, b"/a", b"/d", Access::Read),
        Err(AuthError::PermissionDenied)
    );
    let root = caller(&store, "root");
    assert_eq!(store.check_key(&root, b"\0", b"\0", Access::Write), Ok(()));
    let stranger = caller(&store, "nobody");
    assert_eq!(
        store.check_key(&stranger, b"/b", b"", Access::Read),
        Err(AuthError::PermissionDenied)
    );
    assert_eq!(
        store.check_key(&Caller::default(), b"/b", b"", Access::Read),
        Err(AuthError::UserEmpty)
    );
    let disabled = AuthStore::default();
    assert_eq!(
        disabled.check_key(&Caller::default(), b"/b", b"", Access::Write),
        Ok(())
    );
}

#[test]
fn admin_calls_need_the_root_role() {
    let store = enabled_store();
    assert_eq!(store.check_admin(&caller(&store, "root")), Ok(()));
    assert_eq!(
        store.check_admin(&caller(&store, "bob")),
        Err(AuthError::PermissionDenied)
    );
    assert_eq!(
        store.check_admin(&Caller::default()),
        Err(AuthError::UserEmpty)
    );
    assert_eq!(
        store.check_admin(&caller(&store, "nobody")),
        Err(AuthError::UserNotFound)
    );
}

/// A request checked before an auth change and applied after it fails at
/// apply, and so does one proposed without a check while auth was off.
#[test]
fn requests_checked_against_an_older_revision_are_refused_at_apply() {
    let mut store = enabled_store();
    let bob = caller(&store, "bob");
    assert_eq!(store.admit(Some(&bob), false), Ok(()));
    store
        .apply(&AuthOp::RoleAdd { name: "r2".into() }, 1)
        .unwrap();
    assert_eq!(
        store.admit(Some(&bob), false),
        Err(AuthError::AuthOldRevision)
    );
    assert_eq!(
        store.check_key(&bob, b"/b", b"", Access::Read),
        Err(AuthError::AuthOldRevision)
    );
    assert_eq!(store.admit(None, false), Err(AuthError::UserEmpty));
    // Auth changes are checked for the root role again instead.
    let root = Caller {
        user: Some("root".into()),
        revision: 1,
    };
    assert_eq!(store.admit(Some(&root), true), Ok(()));
    assert_eq!(
        store.admit(Some(&bob), true),
        Err(AuthError::PermissionDenied)
    );
    assert_eq!(AuthStore::default().admit(None, false), Ok(()));
}
