//! `alarm list|disarm`, `defrag`, `move-leader`.

use cetera::proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, AlarmType, DefragmentRequest, MoveLeaderRequest, StatusRequest,
    alarm_request::AlarmAction,
};
use clap::{Args, Subcommand};

use crate::cli::{Ctx, parse_go_bool};
use crate::client::{self, Client};
use crate::endpoint::endpoints;
use crate::error::{CtlError, CtlResult, EXIT_ERROR};
use crate::gofmt;
use crate::printer::{err, out};

#[derive(Subcommand, Debug)]
pub(crate) enum AlarmCommand {
    /// Disarms all alarms
    Disarm { args: Vec<String> },
    /// Lists all alarms
    List { args: Vec<String> },
}

#[derive(Args, Debug)]
pub(crate) struct DefragArgs {
    /// use all endpoints from the cluster member list
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = parse_go_bool, action = clap::ArgAction::Set)]
    pub(crate) cluster: bool,
    /// Optional. If present, defragments a data directory not in use by etcd (not supported).
    #[arg(long = "data-dir", default_value = "")]
    pub(crate) data_dir: String,
}

#[derive(Args, Debug)]
pub(crate) struct MoveLeaderArgs {
    /// <transferee-member-id>
    pub(crate) args: Vec<String>,
}

async fn alarm_list(c: &Client) -> CtlResult<AlarmResponse> {
    c.unary(true, |ch| {
        let r = c.request(AlarmRequest {
            action: AlarmAction::Get as i32,
            member_id: 0,
            alarm: AlarmType::None as i32,
        });
        async move { client::maintenance(ch).alarm(r).await }
    })
    .await
}

pub(crate) async fn alarm(ctx: &Ctx, cmd: AlarmCommand) -> CtlResult<()> {
    match cmd {
        AlarmCommand::List { args } => {
            if !args.is_empty() {
                return Err(CtlError::bad_args(
                    "alarm list command accepts no arguments",
                ));
            }
            let c = ctx.client()?;
            let resp = alarm_list(&c).await?;
            ctx.printer()?.alarm(&resp)
        }
        AlarmCommand::Disarm { args } => {
            if !args.is_empty() {
                return Err(CtlError::bad_args(
                    "alarm disarm command accepts no arguments",
                ));
            }
            let c = ctx.client()?;
            // clientv3's AlarmDisarm with no member and no type: list the
            // alarms, disarm each, and answer with the disarmed ones (and
            // no header).
            let listed = alarm_list(&c).await?;
            let mut ret = AlarmResponse::default();
            for a in listed.alarms {
                let resp = c
                    .unary(false, |ch| {
                        let r = c.request(AlarmRequest {
                            action: AlarmAction::Deactivate as i32,
                            member_id: a.member_id,
                            alarm: a.alarm,
                        });
                        async move { client::maintenance(ch).alarm(r).await }
                    })
                    .await?;
                ret.alarms.extend(resp.alarms);
            }
            ctx.printer()?.alarm(&ret)
        }
    }
}

pub(crate) async fn defrag(ctx: &Ctx, a: DefragArgs) -> CtlResult<()> {
    if !a.data_dir.is_empty() {
        err(format!(
            "Failed to defragment etcd data[{}] (defragmenting a data directory offline is not supported by ceteractl)\n",
            a.data_dir
        ));
        return Err(CtlError::exit(EXIT_ERROR));
    }
    let c = ctx.client()?;
    let mut failures = 0;
    for ep in endpoints(&c, a.cluster).await? {
        let one = c.for_endpoint(&ep)?;
        let result = one
            .unary(false, |ch| {
                let r = one.request(DefragmentRequest {});
                async move { client::maintenance(ch).defragment(r).await }
            })
            .await;
        match result {
            Ok(_) => out(format!("Finished defragmenting etcd member[{ep}]\n")),
            Err(e) => {
                err(format!(
                    "Failed to defragment etcd member[{ep}] ({})\n",
                    e.message
                ));
                failures += 1;
            }
        }
    }
    if failures > 0 {
        return Err(CtlError::exit(EXIT_ERROR));
    }
    Ok(())
}

pub(crate) async fn move_leader(ctx: &Ctx, a: MoveLeaderArgs) -> CtlResult<()> {
    if a.args.len() != 1 {
        return Err(CtlError::bad_args("move-leader command needs 1 argument"));
    }
    let target = gofmt::parse_hex_u64(&a.args[0]).map_err(CtlError::bad_args)?;
    let c = ctx.client()?;
    let printer = ctx.printer()?;
    let mut leader: Option<(Client, u64)> = None;
    for ep in c.endpoints() {
        let one = c.for_endpoint(ep)?;
        let status = one
            .unary(true, |ch| {
                let r = one.request(StatusRequest {});
                async move { client::maintenance(ch).status(r).await }
            })
            .await?;
        let member = status.header.as_ref().map_or(0, |h| h.member_id);
        if member == status.leader {
            leader = Some((one, status.leader));
            break;
        }
    }
    let Some((leader_client, leader_id)) = leader else {
        return Err(CtlError::bad_args(format!(
            "no leader endpoint given at [{}]",
            c.endpoints().join(" ")
        )));
    };
    let resp = leader_client
        .unary(false, |ch| {
            let r = leader_client.request(MoveLeaderRequest { target_id: target });
            async move { client::maintenance(ch).move_leader(r).await }
        })
        .await?;
    printer.move_leader(leader_id, target, &resp)
}
