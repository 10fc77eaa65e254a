//! `member add|remove|update|list|promote`.

use cetera::proto::etcdserverpb::{
    MemberAddRequest, MemberListRequest, MemberPromoteRequest, MemberRemoveRequest,
    MemberUpdateRequest,
};
use clap::Subcommand;

use crate::cli::{Ctx, parse_go_bool};
use crate::client;
use crate::error::{CtlError, CtlResult};
use crate::gofmt::{self, quote};
use crate::printer::{Format, out};

#[derive(Subcommand, Debug)]
pub(crate) enum MemberCommand {
    /// Adds a member into the cluster
    Add {
        /// <memberName>
        args: Vec<String>,
        /// comma separated peer URLs for the new member.
        #[arg(long = "peer-urls", default_value = "")]
        peer_urls: String,
        /// indicates if the new member is raft learner
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = parse_go_bool, action = clap::ArgAction::Set)]
        learner: bool,
    },
    /// Removes a member from the cluster
    Remove {
        /// <memberID>
        args: Vec<String>,
    },
    /// Updates a member in the cluster
    Update {
        /// <memberID>
        args: Vec<String>,
        /// comma separated peer URLs for the updated member.
        #[arg(long = "peer-urls", default_value = "")]
        peer_urls: String,
    },
    /// Lists all members in the cluster
    List,
    /// Promotes a non-voting member in the cluster
    Promote {
        /// <memberID>
        args: Vec<String>,
    },
}

fn member_id(args: &[String]) -> CtlResult<u64> {
    if args.len() != 1 {
        return Err(CtlError::bad_args("member ID is not provided"));
    }
    gofmt::parse_hex_u64(&args[0])
        .map_err(|e| CtlError::bad_args(format!("bad member ID arg ({e}), expecting ID in Hex")))
}

pub(crate) async fn run(ctx: &Ctx, cmd: MemberCommand) -> CtlResult<()> {
    match cmd {
        MemberCommand::Add {
            args,
            peer_urls,
            learner,
        } => add(ctx, args, peer_urls, learner).await,
        MemberCommand::Remove { args } => {
            let id = member_id(&args)?;
            let c = ctx.client()?;
            let resp = c
                .unary(false, |ch| {
                    let r = c.request(MemberRemoveRequest { id });
                    async move { client::cluster(ch).member_remove(r).await }
                })
                .await?;
            ctx.printer()?.member_remove(id, &resp)
        }
        MemberCommand::Update { args, peer_urls } => {
            let id = member_id(&args)?;
            if peer_urls.is_empty() {
                return Err(CtlError::bad_args("member peer urls not provided"));
            }
            let urls: Vec<String> = peer_urls.split(',').map(str::to_string).collect();
            let c = ctx.client()?;
            let resp = c
                .unary(false, |ch| {
                    let r = c.request(MemberUpdateRequest {
                        id,
                        peer_ur_ls: urls.clone(),
                    });
                    async move { client::cluster(ch).member_update(r).await }
                })
                .await?;
            ctx.printer()?.member_update(id, &resp)
        }
        MemberCommand::List => {
            let c = ctx.client()?;
            let resp = c
                .unary(true, |ch| {
                    let r = c.request(MemberListRequest::default());
                    async move { client::cluster(ch).member_list(r).await }
                })
                .await?;
            ctx.printer()?.member_list(&resp)
        }
        MemberCommand::Promote { args } => {
            let id = member_id(&args)?;
            let c = ctx.client()?;
            let resp = c
                .unary(false, |ch| {
                    let r = c.request(MemberPromoteRequest { id });
                    async move { client::cluster(ch).member_promote(r).await }
                })
                .await?;
            ctx.printer()?.member_promote(id, &resp)
        }
    }
}

async fn add(ctx: &Ctx, args: Vec<String>, peer_urls: String, learner: bool) -> CtlResult<()> {
    if args.is_empty() {
        return Err(CtlError::bad_args("member name not provided"));
    }
    if args.len() > 1 {
        let mut message = String::from("too many arguments");
        for s in &args {
            if s.to_lowercase().starts_with("http") {
                message.push_str(&format!(", did you mean --peer-urls={s}"));
            }
        }
        return Err(CtlError::bad_args(message));
    }
    let name = &args[0];
    if peer_urls.is_empty() {
        return Err(CtlError::bad_args("member peer urls not provided"));
    }
    let urls: Vec<String> = peer_urls.split(',').map(str::to_string).collect();
    let c = ctx.client()?;
    let resp = c
        .unary(false, |ch| {
            let r = c.request(MemberAddRequest {
                peer_ur_ls: urls.clone(),
                is_learner: learner,
            });
            async move { client::cluster(ch).member_add(r).await }
        })
        .await?;
    let printer = ctx.printer()?;
    printer.member_add(&resp)?;
    if printer.format == Format::Simple {
        let new_id = resp.member.as_ref().map_or(0, |m| m.id);
        let mut conf = Vec::new();
        for m in &resp.members {
            for u in &m.peer_ur_ls {
                let n = if m.id == new_id { name } else { &m.name };
                conf.push(format!("{n}={u}"));
            }
        }
        out(format!(
            "\nETCD_NAME={}\nETCD_INITIAL_CLUSTER={}\nETCD_INITIAL_ADVERTISE_PEER_URLS={}\nETCD_INITIAL_CLUSTER_STATE=\"existing\"\n",
            quote(name.as_bytes()),
            quote(conf.join(",").as_bytes()),
            quote(peer_urls.as_bytes())
        ));
    }
    Ok(())
}
