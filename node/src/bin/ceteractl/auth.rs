//! `auth enable|disable`, `user ...` and `role ...`: etcdctl 3.4's
//! authentication commands, their argument checks (exit 128), password
//! prompts and output. The server does the work; this module only builds
//! requests (`auth enable` also creates the `root` role when it is
//! missing, as etcdctl does).

use cetera::client_auth::{ask_password, read_line};
use cetera::proto::authpb::Permission;
use cetera::proto::authpb::UserAddOptions;
use cetera::proto::authpb::permission::Type as PermType;
use cetera::proto::etcdserverpb::{
    AuthDisableRequest, AuthEnableRequest, AuthRoleAddRequest, AuthRoleDeleteRequest,
    AuthRoleGetRequest, AuthRoleGrantPermissionRequest, AuthRoleListRequest,
    AuthRoleRevokePermissionRequest, AuthUserAddRequest, AuthUserChangePasswordRequest,
    AuthUserDeleteRequest, AuthUserGetRequest, AuthUserGrantRoleRequest, AuthUserListRequest,
    AuthUserRevokeRoleRequest,
};
use clap::Subcommand;

use crate::cli::{Ctx, parse_go_bool};
use crate::client::{self, Client};
use crate::error::{CtlError, CtlResult};
use crate::kv::prefix_end;
use crate::printer::out;

/// What the server says when `auth enable` finds no `root` role.
const ROOT_ROLE_MISSING: &str = "etcdserver: root user does not have root role";

#[derive(Subcommand, Debug)]
pub(crate) enum AuthCommand {
    /// Enables authentication
    Enable { args: Vec<String> },
    /// Disables authentication
    Disable { args: Vec<String> },
}

#[derive(Subcommand, Debug)]
pub(crate) enum UserCommand {
    /// Adds a new user
    Add {
        /// <user name or user:password>
        args: Vec<String>,
        /// Read password from stdin instead of interactive terminal
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "true", value_parser = parse_go_bool, action = clap::ArgAction::Set)]
        interactive: bool,
        /// Supply password from the command line flag
        #[arg(long = "new-user-password", default_value = "")]
        new_user_password: String,
        /// Create a user without password (CN based auth only)
        #[arg(long = "no-password", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = parse_go_bool, action = clap::ArgAction::Set)]
        no_password: bool,
    },
    /// Deletes a user
    Delete {
        /// <user name>
        args: Vec<String>,
    },
    /// Gets detailed information of a user
    Get {
        /// <user name>
        args: Vec<String>,
        /// Show permissions of roles granted to the user
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = parse_go_bool, action = clap::ArgAction::Set)]
        detail: bool,
    },
    /// Lists all users
    List { args: Vec<String> },
    /// Changes password of user
    Passwd {
        /// <user name>
        args: Vec<String>,
        /// If true, read password from stdin instead of interactive terminal
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "true", value_parser = parse_go_bool, action = clap::ArgAction::Set)]
        interactive: bool,
    },
    /// Grants a role to a user
    GrantRole {
        /// <user name> <role name>
        args: Vec<String>,
    },
    /// Revokes a role from a user
    RevokeRole {
        /// <user name> <role name>
        args: Vec<String>,
    },
}

/// `--prefix` and `--from-key` of `role grant-permission` and
/// `role revoke-permission`.
#[derive(clap::Args, Debug, Clone, Copy)]
pub(crate) struct PermFlags {
    /// grant (or revoke) a prefix permission
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = parse_go_bool, action = clap::ArgAction::Set)]
    prefix: bool,
    /// grant (or revoke) a permission of keys that are greater than or equal to the given key using byte compare
    #[arg(long = "from-key", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = parse_go_bool, action = clap::ArgAction::Set)]
    from_key: bool,
}

#[derive(Subcommand, Debug)]
pub(crate) enum RoleCommand {
    /// Adds a new role
    Add {
        /// <role name>
        args: Vec<String>,
    },
    /// Deletes a role
    Delete {
        /// <role name>
        args: Vec<String>,
    },
    /// Gets detailed information of a role
    Get {
        /// <role name>
        args: Vec<String>,
    },
    /// Lists all roles
    List { args: Vec<String> },
    /// Grants a key to a role
    GrantPermission {
        /// <role name> <permission type> <key> [endkey]
        args: Vec<String>,
        #[command(flatten)]
        flags: PermFlags,
    },
    /// Revokes a key from a role
    RevokePermission {
        /// <role name> <key> [endkey]
        args: Vec<String>,
        #[command(flatten)]
        flags: PermFlags,
    },
}

pub(crate) async fn auth(ctx: &Ctx, cmd: AuthCommand) -> CtlResult<()> {
    match cmd {
        AuthCommand::Enable { args } => {
            if !args.is_empty() {
                return Err(CtlError::bad_args(
                    "auth enable command does not accept any arguments",
                ));
            }
            let c = ctx.client()?;
            enable(&c).await?;
            out("Authentication Enabled\n");
            Ok(())
        }
        AuthCommand::Disable { args } => {
            if !args.is_empty() {
                return Err(CtlError::bad_args(
                    "auth disable command does not accept any arguments",
                ));
            }
            let c = ctx.client()?;
            c.unary(false, |ch| {
                let r = c.request(AuthDisableRequest {});
                async move { client::auth(ch).auth_disable(r).await }
            })
            .await?;
            out("Authentication Disabled\n");
            Ok(())
        }
    }
}

/// AuthEnable; while the server finds no `root` role, creates it, grants
/// it to `root` and tries again (etcdctl's loop, which stops at the first
/// other error).
async fn enable(c: &Client) -> CtlResult<()> {
    loop {
        let enabled = c
            .unary(false, |ch| {
                let r = c.request(AuthEnableRequest {});
                async move { client::auth(ch).auth_enable(r).await }
            })
            .await;
        match enabled {
            Ok(_) => return Ok(()),
            Err(e) if e.message == ROOT_ROLE_MISSING => {
                c.unary(false, |ch| {
                    let r = c.request(AuthRoleAddRequest {
                        name: "root".to_string(),
                    });
                    async move { client::auth(ch).role_add(r).await }
                })
                .await?;
                c.unary(false, |ch| {
                    let r = c.request(AuthUserGrantRoleRequest {
                        user: "root".to_string(),
                        role: "root".to_string(),
                    });
                    async move { client::auth(ch).user_grant_role(r).await }
                })
                .await?;
            }
            Err(e) => return Err(e),
        }
    }
}

/// etcdctl's `readPasswordInteractive`: asks twice, refuses an empty
/// password or two different ones (exit 128).
fn ask_new_password(name: &str) -> CtlResult<String> {
    let ask = |prompt: String| {
        ask_password(&prompt)
            .map_err(|e| CtlError::bad_args(format!("failed to ask password: {e}")))
    };
    let first = ask(format!("Password of {name}: "))?;
    if first.is_empty() {
        return Err(CtlError::bad_args("empty password"));
    }
    let second = ask(format!("Type password of {name} again for confirmation: "))?;
    if first != second {
        return Err(CtlError::bad_args("given passwords are different"));
    }
    Ok(first)
}

/// The password of `--interactive=false`: the first word on stdin (Go's
/// `fmt.Scanf("%s")`), empty when there is none.
fn password_from_stdin() -> String {
    let line = read_line(&mut std::io::stdin().lock()).unwrap_or_default();
    line.split_whitespace().next().unwrap_or("").to_string()
}

fn new_password(name: &str, interactive: bool) -> CtlResult<String> {
    if interactive {
        ask_new_password(name)
    } else {
        Ok(password_from_stdin())
    }
}

/// The one `<user name>` or `<role name>` argument of `command`.
fn one_name(args: &[String], command: &str, noun: &str) -> CtlResult<String> {
    match args {
        [name] => Ok(name.clone()),
        _ => Err(CtlError::bad_args(format!(
            "{command} command requires {noun} name as its argument"
        ))),
    }
}

fn no_args(args: &[String], what: &str) -> CtlResult<()> {
    if args.is_empty() {
        Ok(())
    } else {
        Err(CtlError::bad_args(format!(
            "{what} command requires no arguments"
        )))
    }
}

/// The user and password of `user add`, in etcdctl's order: `--no-password`,
/// then `--new-user-password`, then `name:password`, then a prompt (or
/// stdin with `--interactive=false`).
fn new_user(
    arg: &str,
    interactive: bool,
    flag_password: &str,
    no_password: bool,
) -> CtlResult<(String, String)> {
    if no_password {
        return Ok((arg.to_string(), String::new()));
    }
    if !flag_password.is_empty() {
        return Ok((arg.to_string(), flag_password.to_string()));
    }
    match arg.split_once(':') {
        Some(("", _)) => Err(CtlError::bad_args("empty user name is not allowed")),
        Some((name, password)) => Ok((name.to_string(), password.to_string())),
        None => Ok((arg.to_string(), new_password(arg, interactive)?)),
    }
}

pub(crate) async fn user(ctx: &Ctx, cmd: UserCommand) -> CtlResult<()> {
    match cmd {
        UserCommand::Add {
            args,
            interactive,
            new_user_password,
            no_password,
        } => {
            let arg = one_name(&args, "user add", "user")?;
            let (name, password) = new_user(&arg, interactive, &new_user_password, no_password)?;
            let c = ctx.client()?;
            let resp = c
                .unary(false, |ch| {
                    let r = c.request(AuthUserAddRequest {
                        name: name.clone(),
                        password: password.clone(),
                        options: Some(UserAddOptions { no_password }),
                        ..AuthUserAddRequest::default()
                    });
                    async move { client::auth(ch).user_add(r).await }
                })
                .await?;
            ctx.printer()?
                .auth_change(format!("User {name} created"), &resp.header, &resp)
        }
        UserCommand::Delete { args } => {
            let name = one_name(&args, "user delete", "user")?;
            let c = ctx.client()?;
            let resp = c
                .unary(false, |ch| {
                    let r = c.request(AuthUserDeleteRequest { name: name.clone() });
                    async move { client::auth(ch).user_delete(r).await }
                })
                .await?;
            ctx.printer()?
                .auth_change(format!("User {name} deleted"), &resp.header, &resp)
        }
        UserCommand::Get { args, detail } => {
            let name = one_name(&args, "user get", "user")?;
            let c = ctx.client()?;
            let resp = c
                .unary(true, |ch| {
                    let r = c.request(AuthUserGetRequest { name: name.clone() });
                    async move { client::auth(ch).user_get(r).await }
                })
                .await?;
            let printer = ctx.printer()?;
            if !detail {
                return printer.user_get(&name, &resp);
            }
            out(format!("User: {name}\n"));
            for role in &resp.roles {
                out("\n");
                let role_resp = get_role(&c, role).await?;
                printer.role_get(role, &role_resp)?;
            }
            Ok(())
        }
        UserCommand::List { args } => {
            no_args(&args, "user list")?;
            let c = ctx.client()?;
            let resp = c
                .unary(true, |ch| {
                    let r = c.request(AuthUserListRequest {});
                    async move { client::auth(ch).user_list(r).await }
                })
                .await?;
            ctx.printer()?.user_list(&resp)
        }
        UserCommand::Passwd { args, interactive } => {
            let name = one_name(&args, "user passwd", "user")?;
            let password = new_password(&name, interactive)?;
            let c = ctx.client()?;
            let resp = c
                .unary(false, |ch| {
                    let r = c.request(AuthUserChangePasswordRequest {
                        name: name.clone(),
                        password: password.clone(),
                        ..AuthUserChangePasswordRequest::default()
                    });
                    async move { client::auth(ch).user_change_password(r).await }
                })
                .await?;
            ctx.printer()?
                .auth_change("Password updated".to_string(), &resp.header, &resp)
        }
        UserCommand::GrantRole { args } => {
            let [user, role] = args.as_slice() else {
                return Err(CtlError::bad_args(
                    "user grant command requires user name and role name as its argument",
                ));
            };
            let c = ctx.client()?;
            let resp = c
                .unary(false, |ch| {
                    let r = c.request(AuthUserGrantRoleRequest {
                        user: user.clone(),
                        role: role.clone(),
                    });
                    async move { client::auth(ch).user_grant_role(r).await }
                })
                .await?;
            ctx.printer()?.auth_change(
                format!("Role {role} is granted to user {user}"),
                &resp.header,
                &resp,
            )
        }
        UserCommand::RevokeRole { args } => {
            let [user, role] = args.as_slice() else {
                return Err(CtlError::bad_args(
                    "user revoke-role requires user name and role name as its argument",
                ));
            };
            let c = ctx.client()?;
            let resp = c
                .unary(false, |ch| {
                    let r = c.request(AuthUserRevokeRoleRequest {
                        name: user.clone(),
                        role: role.clone(),
                    });
                    async move { client::auth(ch).user_revoke_role(r).await }
                })
                .await?;
            ctx.printer()?.auth_change(
                format!("Role {role} is revoked from user {user}"),
                &resp.header,
                &resp,
            )
        }
    }
}

async fn get_role(
    c: &Client,
    role: &str,
) -> CtlResult<cetera::proto::etcdserverpb::AuthRoleGetResponse> {
    c.unary(true, |ch| {
        let r = c.request(AuthRoleGetRequest {
            role: role.to_string(),
        });
        async move { client::auth(ch).role_get(r).await }
    })
    .await
}

/// `read`, `write` or `readwrite`, in any case (clientv3's
/// `StrToPermissionType`).
fn perm_type(s: &str) -> CtlResult<PermType> {
    match s.to_uppercase().as_str() {
        "READ" => Ok(PermType::Read),
        "WRITE" => Ok(PermType::Write),
        "READWRITE" => Ok(PermType::Readwrite),
        _ => Err(CtlError::bad_args(format!("invalid permission type: {s}"))),
    }
}

/// The key and range end of a permission from `<key> [endkey]` and the
/// flags. An empty key stands for the whole keyspace, which the server
/// keeps as `["\0", ...)`; with `--prefix` or `--from-key` it is open
/// ended.
fn perm_range(args: &[String], flags: PermFlags) -> CtlResult<(Vec<u8>, Vec<u8>)> {
    let key = args[0].as_bytes().to_vec();
    if key.is_empty() {
        if flags.prefix && flags.from_key {
            return Err(mutually_exclusive());
        }
        let end = if flags.prefix || flags.from_key {
            vec![0]
        } else {
            Vec::new()
        };
        return Ok((vec![0], end));
    }
    if args.len() == 1 {
        let end = match (flags.prefix, flags.from_key) {
            (true, true) => return Err(mutually_exclusive()),
            (true, false) => prefix_end(&key),
            (false, true) => vec![0],
            (false, false) => Vec::new(),
        };
        return Ok((key, end));
    }
    if flags.prefix {
        return Err(CtlError::bad_args(
            "unexpected endkey argument with --prefix flag",
        ));
    }
    if flags.from_key {
        return Err(CtlError::bad_args(
            "unexpected endkey argument with --from-key flag",
        ));
    }
    Ok((key, args[1].as_bytes().to_vec()))
}

fn mutually_exclusive() -> CtlError {
    CtlError::bad_args("--from-key and --prefix flags are mutually exclusive")
}

pub(crate) async fn role(ctx: &Ctx, cmd: RoleCommand) -> CtlResult<()> {
    match cmd {
        RoleCommand::Add { args } => {
            let name = one_name(&args, "role add", "role")?;
            let c = ctx.client()?;
            let resp = c
                .unary(false, |ch| {
                    let r = c.request(AuthRoleAddRequest { name: name.clone() });
                    async move { client::auth(ch).role_add(r).await }
                })
                .await?;
            ctx.printer()?
                .auth_change(format!("Role {name} created"), &resp.header, &resp)
        }
        RoleCommand::Delete { args } => {
            let name = one_name(&args, "role delete", "role")?;
            let c = ctx.client()?;
            let resp = c
                .unary(false, |ch| {
                    let r = c.request(AuthRoleDeleteRequest { role: name.clone() });
                    async move { client::auth(ch).role_delete(r).await }
                })
                .await?;
            ctx.printer()?
                .auth_change(format!("Role {name} deleted"), &resp.header, &resp)
        }
        RoleCommand::Get { args } => {
            let name = one_name(&args, "role get", "role")?;
            let c = ctx.client()?;
            let resp = get_role(&c, &name).await?;
            ctx.printer()?.role_get(&name, &resp)
        }
        RoleCommand::List { args } => {
            no_args(&args, "role list")?;
            let c = ctx.client()?;
            let resp = c
                .unary(true, |ch| {
                    let r = c.request(AuthRoleListRequest {});
                    async move { client::auth(ch).role_list(r).await }
                })
                .await?;
            ctx.printer()?.role_list(&resp)
        }
        RoleCommand::GrantPermission { args, flags } => {
            if args.len() < 3 {
                return Err(CtlError::bad_args(
                    "role grant command requires role name, permission type, and key [endkey] as its argument",
                ));
            }
            let name = args[0].clone();
            let perm_type = perm_type(&args[1])?;
            let (key, range_end) = perm_range(&args[2..], flags)?;
            let c = ctx.client()?;
            let resp = c
                .unary(false, |ch| {
                    let r = c.request(AuthRoleGrantPermissionRequest {
                        name: name.clone(),
                        perm: Some(Permission {
                            perm_type: perm_type as i32,
                            key: key.clone(),
                            range_end: range_end.clone(),
                        }),
                    });
                    async move { client::auth(ch).role_grant_permission(r).await }
                })
                .await?;
            ctx.printer()?
                .auth_change(format!("Role {name} updated"), &resp.header, &resp)
        }
        RoleCommand::RevokePermission { args, flags } => {
            if args.len() < 2 {
                return Err(CtlError::bad_args(
                    "role revoke-permission command requires role name and key [endkey] as its argument",
                ));
            }
            let name = args[0].clone();
            let (key, range_end) = perm_range(&args[1..], flags)?;
            let c = ctx.client()?;
            let resp = c
                .unary(false, |ch| {
                    let r = c.request(AuthRoleRevokePermissionRequest {
                        role: name.clone(),
                        key: key.clone(),
                        range_end: range_end.clone(),
                    });
                    async move { client::auth(ch).role_revoke_permission(r).await }
                })
                .await?;
            let shown_key = &args[1];
            let sentence = if range_end.is_empty() {
                format!("Permission of key {shown_key} is revoked from role {name}")
            } else if range_end == [0] {
                format!(
                    "Permission of range [{shown_key}, <open ended> is revoked from role {name}"
                )
            } else {
                format!(
                    "Permission of range [{shown_key}, {}) is revoked from role {name}",
                    String::from_utf8_lossy(&range_end)
                )
            };
            ctx.printer()?.auth_change(sentence, &resp.header, &resp)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(prefix: bool, from_key: bool) -> PermFlags {
        PermFlags { prefix, from_key }
    }

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn permission_ranges_follow_etcdctl() {
        let range = |a: &[&str], p, f| perm_range(&args(a), flags(p, f));
        assert_eq!(
            range(&["k"], false, false).unwrap(),
            (b"k".to_vec(), vec![])
        );
        assert_eq!(
            range(&["p/"], true, false).unwrap(),
            (b"p/".to_vec(), b"p0".to_vec())
        );
        assert_eq!(
            range(&["k"], false, true).unwrap(),
            (b"k".to_vec(), vec![0])
        );
        assert_eq!(
            range(&["a", "z"], false, false).unwrap(),
            (b"a".to_vec(), b"z".to_vec())
        );
        assert_eq!(range(&[""], true, false).unwrap(), (vec![0], vec![0]));
        assert_eq!(range(&[""], false, false).unwrap(), (vec![0], vec![]));
        assert_eq!(
            range(&["a", "z"], true, false).unwrap_err().message,
            "unexpected endkey argument with --prefix flag"
        );
        assert_eq!(
            range(&["a"], true, true).unwrap_err().message,
            "--from-key and --prefix flags are mutually exclusive"
        );
    }

    #[test]
    fn permission_types_ignore_case() {
        assert_eq!(perm_type("readWRITE").unwrap(), PermType::Readwrite);
        assert_eq!(
            perm_type("bogus").unwrap_err().message,
            "invalid permission type: bogus"
        );
    }

    #[test]
    fn new_users_take_their_password_from_the_flags_first() {
        assert_eq!(
            new_user("u:p", true, "", false).unwrap(),
            ("u".to_string(), "p".to_string())
        );
        assert_eq!(
            new_user("u:p", true, "flag", false).unwrap(),
            ("u:p".to_string(), "flag".to_string())
        );
        assert_eq!(
            new_user("u", true, "", true).unwrap(),
            ("u".to_string(), String::new())
        );
        let empty = new_user(":p", true, "", false).unwrap_err();
        assert_eq!(
            (empty.code, empty.message.as_str()),
            (128, "empty user name is not allowed")
        );
    }
}
