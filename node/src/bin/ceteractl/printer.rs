//! etcdctl's five output formats (`-w simple|json|fields|table|protobuf`),
//! with the same per-command support: a format a command does not support
//! ends it with `Error: <format> not supported as output format` (exit 4),
//! after the request was made, as etcdctl does.

use std::fmt::Write as _;
use std::io::Write as _;

use cetera::proto::authpb::permission::Type as PermType;
use cetera::proto::etcdserverpb::{
    AlarmResponse, AlarmType, AuthRoleGetResponse, AuthRoleListResponse, AuthUserGetResponse,
    AuthUserListResponse, DeleteRangeResponse, HashKvResponse, LeaseGrantResponse,
    LeaseKeepAliveResponse, LeaseLeasesResponse, LeaseRevokeResponse, LeaseTimeToLiveResponse,
    MemberAddResponse, MemberListResponse, MemberPromoteResponse, MemberRemoveResponse,
    MemberUpdateResponse, MoveLeaderResponse, PutResponse, RangeResponse, ResponseHeader,
    StatusResponse, TxnResponse, WatchResponse, response_op,
};
use cetera::proto::mvccpb::{KeyValue, event::EventType};
use prost::Message;

use crate::error::{CtlError, CtlResult, EXIT_BAD_ARGS, EXIT_BAD_FEATURE};
use crate::gofmt::{humanize_bytes, quote, table};
use crate::json;

/// Writes to stdout and flushes; a closed stdout ends the process quietly
/// (Go dies of SIGPIPE there).
pub(crate) fn out(text: impl AsRef<[u8]>) {
    let mut stdout = std::io::stdout().lock();
    if stdout.write_all(text.as_ref()).is_err() || stdout.flush().is_err() {
        std::process::exit(crate::error::EXIT_ERROR);
    }
}

/// Writes to stderr (errors there are ignored).
pub(crate) fn err(text: impl AsRef<[u8]>) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(text.as_ref());
    let _ = stderr.flush();
}

/// The output format chosen with `-w`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Simple,
    Json,
    Fields,
    Table,
    Protobuf,
}

impl Format {
    pub(crate) fn parse(s: &str) -> CtlResult<Format> {
        Ok(match s {
            "simple" => Format::Simple,
            "json" => Format::Json,
            "fields" => Format::Fields,
            "table" => Format::Table,
            "protobuf" => Format::Protobuf,
            _ => {
                return Err(CtlError::new(EXIT_BAD_FEATURE, "unsupported output format"));
            }
        })
    }

    fn name(self) -> &'static str {
        match self {
            Format::Simple => "simple",
            Format::Json => "json",
            Format::Fields => "fields",
            Format::Table => "table",
            Format::Protobuf => "protobuf",
        }
    }
}

/// One endpoint's `endpoint health` result.
#[derive(Clone, Debug)]
pub(crate) struct EpHealth {
    pub(crate) ep: String,
    pub(crate) health: bool,
    pub(crate) took: String,
    pub(crate) error: String,
}

/// One endpoint's `endpoint status` result.
#[derive(Clone, Debug)]
pub(crate) struct EpStatus {
    pub(crate) ep: String,
    pub(crate) resp: StatusResponse,
}

/// One endpoint's `endpoint hashkv` result.
#[derive(Clone, Debug)]
pub(crate) struct EpHashKv {
    pub(crate) ep: String,
    pub(crate) resp: HashKvResponse,
}

/// `snapshot status` of a file.
#[derive(Clone, Debug, Default)]
pub(crate) struct DbStatus {
    pub(crate) hash: u32,
    pub(crate) revision: i64,
    pub(crate) total_key: i64,
    pub(crate) total_size: i64,
}

/// The printer for one run: a format plus `--hex` and `--print-value-only`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Printer {
    pub(crate) format: Format,
    pub(crate) hex: bool,
    pub(crate) value_only: bool,
}

fn unsupported(format: Format) -> CtlError {
    CtlError::new(
        EXIT_BAD_FEATURE,
        format!("{} not supported as output format", format.name()),
    )
}

fn hex_escaped(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 4);
    for b in bytes {
        let _ = write!(s, "\\x{b:02x}");
    }
    s
}

impl Printer {
    /// `printKV`: key and value on their own lines (or `\xNN` escapes with `--hex`).
    fn simple_kv(&self, s: &mut Vec<u8>, kv: &KeyValue) {
        if self.hex {
            if !self.value_only {
                s.extend_from_slice(hex_escaped(&kv.key).as_bytes());
                s.push(b'\n');
            }
            s.extend_from_slice(hex_escaped(&kv.value).as_bytes());
            s.push(b'\n');
        } else {
            if !self.value_only {
                s.extend_from_slice(&kv.key);
                s.push(b'\n');
            }
            s.extend_from_slice(&kv.value);
            s.push(b'\n');
        }
    }

    fn fields_kv(s: &mut String, prefix: &str, kv: &KeyValue) {
        let _ = writeln!(s, "\"{prefix}Key\" : {}", quote(&kv.key));
        let _ = writeln!(s, "\"{prefix}CreateRevision\" : {}", kv.create_revision);
        let _ = writeln!(s, "\"{prefix}ModRevision\" : {}", kv.mod_revision);
        let _ = writeln!(s, "\"{prefix}Version\" : {}", kv.version);
        let _ = writeln!(s, "\"{prefix}Value\" : {}", quote(&kv.value));
        let _ = writeln!(s, "\"{prefix}Lease\" : {}", kv.lease);
    }

    fn fields_hdr(s: &mut String, h: &Option<ResponseHeader>) {
        let h = (*h).unwrap_or_default();
        let _ = writeln!(s, "\"ClusterID\" : {}", h.cluster_id);
        let _ = writeln!(s, "\"MemberID\" : {}", h.member_id);
        let _ = writeln!(s, "\"Revision\" : {}", h.revision);
        let _ = writeln!(s, "\"RaftTerm\" : {}", h.raft_term);
    }

    fn json_line(json: String) {
        out(json + "\n");
    }

    fn pb(msg: &impl Message) {
        out(msg.encode_to_vec());
    }

    pub(crate) fn check_value_only(&self) -> CtlResult<()> {
        if self.value_only && self.format != Format::Simple {
            return Err(CtlError::new(
                EXIT_BAD_ARGS,
                "print-value-only is only for `--write-out=simple`",
            ));
        }
        Ok(())
    }

    pub(crate) fn get(&self, r: &RangeResponse) -> CtlResult<()> {
        match self.format {
            Format::Simple => {
                let mut s = Vec::new();
                for kv in &r.kvs {
                    self.simple_kv(&mut s, kv);
                }
                out(s);
            }
            Format::Json => Self::json_line(json::range(r)),
            Format::Fields => {
                let mut s = String::new();
                Self::fields_get(&mut s, r);
                out(s);
            }
            Format::Protobuf => Self::pb(r),
            Format::Table => return Err(unsupported(self.format)),
        }
        Ok(())
    }

    fn fields_get(s: &mut String, r: &RangeResponse) {
        Self::fields_hdr(s, &r.header);
        for kv in &r.kvs {
            Self::fields_kv(s, "", kv);
        }
        let _ = writeln!(s, "\"More\" : {}", r.more);
        let _ = writeln!(s, "\"Count\" : {}", r.count);
    }

    /// `get --count-only` (an addition: etcdctl 3.4 has no such flag): the
    /// count alone in simple format, the whole response otherwise.
    pub(crate) fn count(&self, r: &RangeResponse) -> CtlResult<()> {
        if self.format == Format::Simple {
            out(format!("{}\n", r.count));
            return Ok(());
        }
        self.get(r)
    }

    pub(crate) fn put(&self, r: &PutResponse) -> CtlResult<()> {
        match self.format {
            Format::Simple => {
                let mut s = b"OK\n".to_vec();
                if let Some(kv) = &r.prev_kv {
                    self.simple_kv(&mut s, kv);
                }
                out(s);
            }
            Format::Json => Self::json_line(json::put(r)),
            Format::Fields => {
                let mut s = String::new();
                Self::fields_put(&mut s, r);
                out(s);
            }
            Format::Protobuf => Self::pb(r),
            Format::Table => return Err(unsupported(self.format)),
        }
        Ok(())
    }

    fn fields_put(s: &mut String, r: &PutResponse) {
        Self::fields_hdr(s, &r.header);
        if let Some(kv) = &r.prev_kv {
            Self::fields_kv(s, "Prev", kv);
        }
    }

    pub(crate) fn del(&self, r: &DeleteRangeResponse) -> CtlResult<()> {
        match self.format {
            Format::Simple => {
                let mut s = format!("{}\n", r.deleted).into_bytes();
                for kv in &r.prev_kvs {
                    self.simple_kv(&mut s, kv);
                }
                out(s);
            }
            Format::Json => Self::json_line(json::delete(r)),
            Format::Fields => {
                let mut s = String::new();
                Self::fields_del(&mut s, r);
                out(s);
            }
            Format::Protobuf => Self::pb(r),
            Format::Table => return Err(unsupported(self.format)),
        }
        Ok(())
    }

    fn fields_del(s: &mut String, r: &DeleteRangeResponse) {
        Self::fields_hdr(s, &r.header);
        let _ = writeln!(s, "\"Deleted\" : {}", r.deleted);
        for kv in &r.prev_kvs {
            Self::fields_kv(s, "Prev", kv);
        }
    }

    pub(crate) fn txn(&self, r: &TxnResponse) -> CtlResult<()> {
        match self.format {
            Format::Simple => {
                let mut s = if r.succeeded {
                    b"SUCCESS\n".to_vec()
                } else {
                    b"FAILURE\n".to_vec()
                };
                for op in &r.responses {
                    s.push(b'\n');
                    match &op.response {
                        Some(response_op::Response::ResponseDeleteRange(d)) => {
                            s.extend_from_slice(format!("{}\n", d.deleted).as_bytes());
                            for kv in &d.prev_kvs {
                                self.simple_kv(&mut s, kv);
                            }
                        }
                        Some(response_op::Response::ResponsePut(p)) => {
                            s.extend_from_slice(b"OK\n");
                            if let Some(kv) = &p.prev_kv {
                                self.simple_kv(&mut s, kv);
                            }
                        }
                        Some(response_op::Response::ResponseRange(g)) => {
                            for kv in &g.kvs {
                                self.simple_kv(&mut s, kv);
                            }
                        }
                        other => {
                            s.extend_from_slice(
                                format!("unexpected response {other:?}\n").as_bytes(),
                            );
                        }
                    }
                }
                out(s);
            }
            Format::Json => Self::json_line(json::txn(r)),
            Format::Fields => {
                let mut s = String::new();
                Self::fields_hdr(&mut s, &r.header);
                let _ = writeln!(s, "\"Succeeded\" : {}", r.succeeded);
                for op in &r.responses {
                    match &op.response {
                        Some(response_op::Response::ResponseDeleteRange(d)) => {
                            Self::fields_del(&mut s, d)
                        }
                        Some(response_op::Response::ResponsePut(p)) => Self::fields_put(&mut s, p),
                        Some(response_op::Response::ResponseRange(g)) => {
                            Self::fields_get(&mut s, g)
                        }
                        other => {
                            let _ = writeln!(
                                s,
                                "\"Unknown\" : {}",
                                quote(format!("{other:?}").as_bytes())
                            );
                        }
                    }
                }
                out(s);
            }
            Format::Protobuf => Self::pb(r),
            Format::Table => return Err(unsupported(self.format)),
        }
        Ok(())
    }

    /// One watch response (etcdctl prints every response with events; the
    /// `created` notification is never shown).
    pub(crate) fn watch(&self, r: &WatchResponse) -> CtlResult<()> {
        match self.format {
            Format::Simple => {
                let mut s = Vec::new();
                for e in &r.events {
                    s.extend_from_slice(event_type(e.r#type).as_bytes());
                    s.push(b'\n');
                    if let Some(kv) = &e.prev_kv {
                        self.simple_kv(&mut s, kv);
                    }
                    self.simple_kv(&mut s, &e.kv.clone().unwrap_or_default());
                }
                out(s);
            }
            Format::Json => Self::json_line(json::watch(r)),
            Format::Fields => {
                let mut s = String::new();
                Self::fields_hdr(&mut s, &Some(r.header.unwrap_or_default()));
                for e in &r.events {
                    let _ = writeln!(s, "\"Type\" : {}", event_type(e.r#type));
                    if let Some(kv) = &e.prev_kv {
                        Self::fields_kv(&mut s, "Prev", kv);
                    }
                    Self::fields_kv(&mut s, "", &e.kv.clone().unwrap_or_default());
                }
                out(s);
            }
            Format::Protobuf => {
                let trimmed = WatchResponse {
                    header: Some(r.header.unwrap_or_default()),
                    events: r.events.clone(),
                    compact_revision: r.compact_revision,
                    canceled: r.canceled,
                    created: r.created,
                    ..Default::default()
                };
                Self::pb(&trimmed);
            }
            Format::Table => return Err(unsupported(self.format)),
        }
        Ok(())
    }

    pub(crate) fn grant(&self, r: &LeaseGrantResponse) -> CtlResult<()> {
        match self.format {
            Format::Simple => out(format!(
                "lease {:016x} granted with TTL({}s)\n",
                r.id, r.ttl
            )),
            Format::Json => Self::json_line(json::lease_grant(r)),
            Format::Fields => {
                let mut s = String::new();
                Self::fields_hdr(&mut s, &r.header);
                let _ = writeln!(s, "\"ID\" : {}", r.id);
                let _ = writeln!(s, "\"TTL\" : {}", r.ttl);
                out(s);
            }
            // The client struct embeds *ResponseHeader, whose Marshal Go promotes.
            Format::Protobuf => Self::pb(&r.header.unwrap_or_default()),
            Format::Table => return Err(unsupported(self.format)),
        }
        Ok(())
    }

    pub(crate) fn revoke(&self, id: i64, r: &LeaseRevokeResponse) -> CtlResult<()> {
        match self.format {
            Format::Simple => out(format!("lease {id:016x} revoked\n")),
            Format::Json => Self::json_line(json::lease_revoke(r)),
            Format::Fields => {
                let mut s = String::new();
                Self::fields_hdr(&mut s, &r.header);
                out(s);
            }
            Format::Protobuf => Self::pb(r),
            Format::Table => return Err(unsupported(self.format)),
        }
        Ok(())
    }

    pub(crate) fn keep_alive(&self, r: &LeaseKeepAliveResponse) -> CtlResult<()> {
        match self.format {
            Format::Simple => out(format!(
                "lease {:016x} keepalived with TTL({})\n",
                r.id, r.ttl
            )),
            Format::Json => Self::json_line(json::lease_keep_alive(r)),
            Format::Fields => {
                let mut s = String::new();
                Self::fields_hdr(&mut s, &r.header);
                let _ = writeln!(s, "\"ID\" : {}", r.id);
                let _ = writeln!(s, "\"TTL\" : {}", r.ttl);
                out(s);
            }
            Format::Protobuf => Self::pb(&r.header.unwrap_or_default()),
            Format::Table => return Err(unsupported(self.format)),
        }
        Ok(())
    }

    pub(crate) fn time_to_live(&self, r: &LeaseTimeToLiveResponse, keys: bool) -> CtlResult<()> {
        match self.format {
            Format::Simple => {
                if r.granted_ttl == 0 && r.ttl == -1 {
                    out(format!("lease {:016x} already expired\n", r.id));
                    return Ok(());
                }
                let mut s = format!(
                    "lease {:016x} granted with TTL({}s), remaining({}s)",
                    r.id, r.granted_ttl, r.ttl
                )
                .into_bytes();
                if keys {
                    s.extend_from_slice(b", attached keys([");
                    for (i, k) in r.keys.iter().enumerate() {
                        if i > 0 {
                            s.push(b' ');
                        }
                        s.extend_from_slice(k);
                    }
                    s.extend_from_slice(b"])");
                }
                s.push(b'\n');
                out(s);
            }
            Format::Json => Self::json_line(json::lease_time_to_live(r)),
            Format::Fields => {
                let mut s = String::new();
                Self::fields_hdr(&mut s, &r.header);
                let _ = writeln!(s, "\"ID\" : {}", r.id);
                let _ = writeln!(s, "\"TTL\" : {}", r.ttl);
                let _ = writeln!(s, "\"GrantedTTL\" : {}", r.granted_ttl);
                for k in &r.keys {
                    let _ = writeln!(s, "\"Key\" : {}", quote(k));
                }
                out(s);
            }
            Format::Protobuf => Self::pb(&r.header.unwrap_or_default()),
            Format::Table => return Err(unsupported(self.format)),
        }
        Ok(())
    }

    pub(crate) fn leases(&self, r: &LeaseLeasesResponse) -> CtlResult<()> {
        match self.format {
            Format::Simple => {
                let mut s = format!("found {} leases\n", r.leases.len());
                for l in &r.leases {
                    let _ = writeln!(s, "{:016x}", l.id);
                }
                out(s);
            }
            Format::Json => Self::json_line(json::lease_leases(r)),
            Format::Fields => {
                let mut s = String::new();
                Self::fields_hdr(&mut s, &r.header);
                for l in &r.leases {
                    let _ = writeln!(s, "\"ID\" : {}", l.id);
                }
                out(s);
            }
            Format::Protobuf => Self::pb(&r.header.unwrap_or_default()),
            Format::Table => return Err(unsupported(self.format)),
        }
        Ok(())
    }

    fn cluster_id(h: &Option<ResponseHeader>) -> u64 {
        h.as_ref().map_or(0, |h| h.cluster_id)
    }

    pub(crate) fn member_add(&self, r: &MemberAddResponse) -> CtlResult<()> {
        match self.format {
            Format::Simple => out(format!(
                "Member {:16x} added to cluster {:16x}\n",
                r.member.as_ref().map_or(0, |m| m.id),
                Self::cluster_id(&r.header)
            )),
            Format::Json => Self::json_line(json::member_add(r)),
            Format::Protobuf => Self::pb(r),
            Format::Fields | Format::Table => return Err(unsupported(self.format)),
        }
        Ok(())
    }

    pub(crate) fn member_remove(&self, id: u64, r: &MemberRemoveResponse) -> CtlResult<()> {
        match self.format {
            Format::Simple => out(format!(
                "Member {id:16x} removed from cluster {:16x}\n",
                Self::cluster_id(&r.header)
            )),
            Format::Json => Self::json_line(json::member_remove(r)),
            Format::Protobuf => Self::pb(r),
            Format::Fields | Format::Table => return Err(unsupported(self.format)),
        }
        Ok(())
    }

    pub(crate) fn member_update(&self, id: u64, r: &MemberUpdateResponse) -> CtlResult<()> {
        match self.format {
            Format::Simple => out(format!(
                "Member {id:16x} updated in cluster {:16x}\n",
                Self::cluster_id(&r.header)
            )),
            Format::Json => Self::json_line(json::member_update(r)),
            Format::Protobuf => Self::pb(r),
            Format::Fields | Format::Table => return Err(unsupported(self.format)),
        }
        Ok(())
    }

    pub(crate) fn member_promote(&self, id: u64, r: &MemberPromoteResponse) -> CtlResult<()> {
        match self.format {
            Format::Simple => out(format!(
                "Member {id:16x} promoted in cluster {:16x}\n",
                Self::cluster_id(&r.header)
            )),
            Format::Json => Self::json_line(json::member_promote(r)),
            Format::Protobuf => Self::pb(r),
            Format::Fields | Format::Table => return Err(unsupported(self.format)),
        }
        Ok(())
    }

    fn member_rows(r: &MemberListResponse) -> Vec<Vec<String>> {
        r.members
            .iter()
            .map(|m| {
                vec![
                    format!("{:x}", m.id),
                    if m.name.is_empty() {
                        "unstarted".into()
                    } else {
                        "started".into()
                    },
                    m.name.clone(),
                    m.peer_ur_ls.join(","),
                    m.client_ur_ls.join(","),
                    m.is_learner.to_string(),
                ]
            })
            .collect()
    }

    pub(crate) fn member_list(&self, r: &MemberListResponse) -> CtlResult<()> {
        match self.format {
            Format::Simple => out(simple_rows(&Self::member_rows(r))),
            Format::Json => Self::json_line(json::member_list(r)),
            Format::Fields => {
                let mut s = String::new();
                Self::fields_hdr(&mut s, &r.header);
                for m in &r.members {
                    let _ = writeln!(s, "\"ID\" : {}", m.id);
                    let _ = writeln!(s, "\"Name\" : {}", quote(m.name.as_bytes()));
                    for u in &m.peer_ur_ls {
                        let _ = writeln!(s, "\"PeerURL\" : {}", quote(u.as_bytes()));
                    }
                    for u in &m.client_ur_ls {
                        let _ = writeln!(s, "\"ClientURL\" : {}", quote(u.as_bytes()));
                    }
                    let _ = writeln!(s, "\"IsLearner\" : {}", m.is_learner);
                    s.push('\n');
                }
                out(s);
            }
            Format::Table => out(table(
                &[
                    "ID",
                    "Status",
                    "Name",
                    "Peer Addrs",
                    "Client Addrs",
                    "Is Learner",
                ],
                &Self::member_rows(r),
            )),
            Format::Protobuf => Self::pb(r),
        }
        Ok(())
    }

    pub(crate) fn endpoint_health(&self, list: &[EpHealth]) -> CtlResult<()> {
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|h| {
                vec![
                    h.ep.clone(),
                    h.health.to_string(),
                    h.took.clone(),
                    h.error.clone(),
                ]
            })
            .collect();
        match self.format {
            Format::Simple => {
                let mut s = String::new();
                for h in list {
                    if h.error.is_empty() {
                        let _ = writeln!(
                            s,
                            "{} is healthy: successfully committed proposal: took = {}",
                            h.ep, h.took
                        );
                    } else {
                        let _ = writeln!(
                            s,
                            "{} is unhealthy: failed to commit proposal: {}",
                            h.ep, h.error
                        );
                    }
                }
                err(s);
            }
            Format::Json => {
                let items: Vec<String> = list
                    .iter()
                    .map(|h| {
                        json::Obj::new()
                            .string("endpoint", &h.ep)
                            .boolean("health", h.health)
                            .string("took", &h.took)
                            .string_omit("error", &h.error)
                            .end()
                    })
                    .collect();
                Self::json_line(json::list(&items));
            }
            Format::Fields => {
                let mut s = String::new();
                for h in list {
                    let _ = writeln!(s, "\"Endpoint\" : {}", quote(h.ep.as_bytes()));
                    let _ = writeln!(s, "\"Health\" : {}", h.health);
                    let _ = writeln!(s, "\"Took\" : {}", h.took);
                    let _ = writeln!(s, "\"Error\" : {}", h.error);
                    s.push('\n');
                }
                out(s);
            }
            Format::Table => out(table(&["endpoint", "health", "took", "error"], &rows)),
            Format::Protobuf => return Err(unsupported(self.format)),
        }
        Ok(())
    }

    fn status_rows(list: &[EpStatus]) -> Vec<Vec<String>> {
        list.iter()
            .map(|st| {
                let r = &st.resp;
                let member = r.header.as_ref().map_or(0, |h| h.member_id);
                vec![
                    st.ep.clone(),
                    format!("{member:x}"),
                    r.version.clone(),
                    humanize_bytes(r.db_size as u64),
                    (r.leader == member).to_string(),
                    r.is_learner.to_string(),
                    r.raft_term.to_string(),
                    r.raft_index.to_string(),
                    r.raft_applied_index.to_string(),
                    r.errors.join(", "),
                ]
            })
            .collect()
    }

    pub(crate) fn endpoint_status(&self, list: &[EpStatus]) -> CtlResult<()> {
        match self.format {
            Format::Simple => out(simple_rows(&Self::status_rows(list))),
            Format::Json => {
                let items: Vec<String> = list
                    .iter()
                    .map(|st| {
                        json::Obj::new()
                            .string("Endpoint", &st.ep)
                            .raw("Status", &json::status(&st.resp))
                            .end()
                    })
                    .collect();
                Self::json_line(json::list(&items));
            }
            Format::Fields => {
                let mut s = String::new();
                for st in list {
                    let r = &st.resp;
                    Self::fields_hdr(&mut s, &r.header);
                    let _ = writeln!(s, "\"Version\" : {}", quote(r.version.as_bytes()));
                    let _ = writeln!(s, "\"DBSize\" : {}", r.db_size);
                    let _ = writeln!(s, "\"Leader\" : {}", r.leader);
                    let _ = writeln!(s, "\"IsLearner\" : {}", r.is_learner);
                    let _ = writeln!(s, "\"RaftIndex\" : {}", r.raft_index);
                    let _ = writeln!(s, "\"RaftTerm\" : {}", r.raft_term);
                    let _ = writeln!(s, "\"RaftAppliedIndex\" : {}", r.raft_applied_index);
                    let _ = writeln!(s, "\"Errors\" : [{}]", r.errors.join(" "));
                    let _ = writeln!(s, "\"Endpoint\" : {}", quote(st.ep.as_bytes()));
                    s.push('\n');
                }
                out(s);
            }
            Format::Table => out(table(
                &[
                    "endpoint",
                    "ID",
                    "version",
                    "db size",
                    "is leader",
                    "is learner",
                    "raft term",
                    "raft index",
                    "raft applied index",
                    "errors",
                ],
                &Self::status_rows(list),
            )),
            Format::Protobuf => return Err(unsupported(self.format)),
        }
        Ok(())
    }

    pub(crate) fn endpoint_hashkv(&self, list: &[EpHashKv]) -> CtlResult<()> {
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|h| vec![h.ep.clone(), h.resp.hash.to_string()])
            .collect();
        match self.format {
            Format::Simple => out(simple_rows(&rows)),
            Format::Json => {
                let items: Vec<String> = list
                    .iter()
                    .map(|h| {
                        json::Obj::new()
                            .string("Endpoint", &h.ep)
                            .raw("HashKV", &json::hash_kv(&h.resp))
                            .end()
                    })
                    .collect();
                Self::json_line(json::list(&items));
            }
            Format::Fields => {
                let mut s = String::new();
                for h in list {
                    Self::fields_hdr(&mut s, &h.resp.header);
                    let _ = writeln!(s, "\"Endpoint\" : {}", quote(h.ep.as_bytes()));
                    let _ = writeln!(s, "\"Hash\" : {}", h.resp.hash);
                    s.push('\n');
                }
                out(s);
            }
            Format::Table => out(table(&["endpoint", "hash"], &rows)),
            Format::Protobuf => return Err(unsupported(self.format)),
        }
        Ok(())
    }

    pub(crate) fn move_leader(
        &self,
        leader: u64,
        target: u64,
        r: &MoveLeaderResponse,
    ) -> CtlResult<()> {
        match self.format {
            Format::Simple => out(format!(
                "Leadership transferred from {leader:x} to {target:x}\n"
            )),
            Format::Json => Self::json_line(json::move_leader(r)),
            Format::Protobuf => Self::pb(r),
            Format::Fields | Format::Table => return Err(unsupported(self.format)),
        }
        Ok(())
    }

    pub(crate) fn alarm(&self, r: &AlarmResponse) -> CtlResult<()> {
        match self.format {
            Format::Simple => {
                let mut s = String::new();
                for a in &r.alarms {
                    let _ = writeln!(s, "memberID:{} alarm:{} ", a.member_id, alarm_name(a.alarm));
                }
                out(s);
            }
            Format::Json => Self::json_line(json::alarm(r)),
            Format::Fields => {
                let mut s = String::new();
                Self::fields_hdr(&mut s, &r.header);
                for a in &r.alarms {
                    let _ = writeln!(s, "\"MemberID\" : {}", a.member_id);
                    let _ = writeln!(s, "\"AlarmType\" : {}", alarm_name(a.alarm));
                    s.push('\n');
                }
                out(s);
            }
            Format::Protobuf => Self::pb(r),
            Format::Table => return Err(unsupported(self.format)),
        }
        Ok(())
    }

    pub(crate) fn db_status(&self, d: &DbStatus) -> CtlResult<()> {
        let rows = vec![vec![
            format!("{:x}", d.hash),
            d.revision.to_string(),
            d.total_key.to_string(),
            humanize_bytes(d.total_size as u64),
        ]];
        match self.format {
            Format::Simple => out(simple_rows(&rows)),
            Format::Json => Self::json_line(
                json::Obj::new()
                    .num("hash", d.hash)
                    .num("revision", d.revision)
                    .num("totalKey", d.total_key)
                    .num("totalSize", d.total_size)
                    .end(),
            ),
            Format::Fields => out(format!(
                "\"Hash\" : {}\n\"Revision\" : {}\n\"Keys\" : {}\n\"Size\" : {}\n",
                d.hash, d.revision, d.total_key, d.total_size
            )),
            Format::Table => out(table(
                &["hash", "revision", "total keys", "total size"],
                &rows,
            )),
            Format::Protobuf => return Err(unsupported(self.format)),
        }
        Ok(())
    }

    /// An auth change whose response is only a header: `simple` is its
    /// sentence, `fields` the header, `table` unsupported.
    pub(crate) fn auth_change(
        &self,
        simple: String,
        header: &Option<ResponseHeader>,
        message: &impl Message,
    ) -> CtlResult<()> {
        match self.format {
            Format::Simple => out(simple + "\n"),
            Format::Json => Self::json_line(json::header_only(header)),
            Format::Fields => {
                let mut s = String::new();
                Self::fields_hdr(&mut s, header);
                out(s);
            }
            Format::Protobuf => Self::pb(message),
            Format::Table => return Err(unsupported(self.format)),
        }
        Ok(())
    }

    pub(crate) fn user_get(&self, name: &str, r: &AuthUserGetResponse) -> CtlResult<()> {
        match self.format {
            Format::Simple => {
                let mut s = format!("User: {name}\nRoles:");
                for role in &r.roles {
                    s.push(' ');
                    s.push_str(role);
                }
                s.push('\n');
                out(s);
            }
            Format::Json => Self::json_line(json::names(&r.header, "roles", &r.roles)),
            Format::Protobuf => Self::pb(r),
            Format::Fields | Format::Table => return Err(unsupported(self.format)),
        }
        Ok(())
    }

    pub(crate) fn user_list(&self, r: &AuthUserListResponse) -> CtlResult<()> {
        match self.format {
            Format::Simple => out(lines(&r.users)),
            Format::Json => Self::json_line(json::names(&r.header, "users", &r.users)),
            Format::Protobuf => Self::pb(r),
            Format::Fields | Format::Table => return Err(unsupported(self.format)),
        }
        Ok(())
    }

    pub(crate) fn role_list(&self, r: &AuthRoleListResponse) -> CtlResult<()> {
        match self.format {
            Format::Simple => out(lines(&r.roles)),
            Format::Json => Self::json_line(json::names(&r.header, "roles", &r.roles)),
            Format::Fields => {
                let mut s = String::new();
                Self::fields_hdr(&mut s, &r.header);
                // One line, each role quoted after a space.
                s.push_str("\"Roles\" :");
                for role in &r.roles {
                    s.push(' ');
                    s.push_str(&quote(role.as_bytes()));
                }
                s.push('\n');
                out(s);
            }
            Format::Protobuf => Self::pb(r),
            Format::Table => return Err(unsupported(self.format)),
        }
        Ok(())
    }

    pub(crate) fn role_get(&self, name: &str, r: &AuthRoleGetResponse) -> CtlResult<()> {
        match self.format {
            Format::Simple => {
                let mut s = format!("Role {name}\n").into_bytes();
                s.extend_from_slice(b"KV Read:\n");
                for p in r.perm.iter().filter(|p| grants_read(p.perm_type)) {
                    simple_permission(&mut s, &p.key, &p.range_end);
                }
                s.extend_from_slice(b"KV Write:\n");
                for p in r.perm.iter().filter(|p| grants_write(p.perm_type)) {
                    simple_permission(&mut s, &p.key, &p.range_end);
                }
                out(s);
            }
            Format::Json => Self::json_line(json::role_get(r)),
            Format::Fields => {
                let mut s = String::new();
                Self::fields_hdr(&mut s, &r.header);
                for p in &r.perm {
                    let _ = writeln!(s, "\"PermType\" :  {}", perm_type_name(p.perm_type));
                    let _ = writeln!(s, "\"Key\" : {}", quote(&p.key));
                    let _ = writeln!(s, "\"RangeEnd\" : {}", quote(&p.range_end));
                }
                out(s);
            }
            Format::Protobuf => Self::pb(r),
            Format::Table => return Err(unsupported(self.format)),
        }
        Ok(())
    }
}

fn simple_rows(rows: &[Vec<String>]) -> String {
    let mut s = String::new();
    for row in rows {
        s.push_str(&row.join(", "));
        s.push('\n');
    }
    s
}

pub(crate) fn event_type(t: i32) -> &'static str {
    match EventType::try_from(t) {
        Ok(EventType::Delete) => "DELETE",
        _ => "PUT",
    }
}

pub(crate) fn alarm_name(a: i32) -> &'static str {
    match AlarmType::try_from(a) {
        Ok(AlarmType::Nospace) => "NOSPACE",
        Ok(AlarmType::Corrupt) => "CORRUPT",
        _ => "NONE",
    }
}

/// One name per line (`user list`, `role list`).
fn lines(names: &[String]) -> String {
    names.iter().map(|n| format!("{n}\n")).collect()
}

fn grants_read(t: i32) -> bool {
    t == PermType::Read as i32 || t == PermType::Readwrite as i32
}

fn grants_write(t: i32) -> bool {
    t == PermType::Write as i32 || t == PermType::Readwrite as i32
}

/// The permission type as Go's generated enum names it (an unknown value
/// as its number, as Go's `String` does).
fn perm_type_name(t: i32) -> String {
    match PermType::try_from(t) {
        Ok(PermType::Read) => "READ".to_string(),
        Ok(PermType::Write) => "WRITE".to_string(),
        Ok(PermType::Readwrite) => "READWRITE".to_string(),
        Err(_) => t.to_string(),
    }
}

/// One line of `role get`: a key, an open-ended range (`range_end` is
/// `\0`), a prefix (`range_end` is the key's prefix end) or a range.
fn simple_permission(s: &mut Vec<u8>, key: &[u8], range_end: &[u8]) {
    s.push(b'\t');
    if range_end.is_empty() {
        s.extend_from_slice(key);
    } else if range_end == b"\0" {
        s.push(b'[');
        s.extend_from_slice(key);
        s.extend_from_slice(b", <open ended>");
    } else {
        s.push(b'[');
        s.extend_from_slice(key);
        s.extend_from_slice(b", ");
        s.extend_from_slice(range_end);
        s.push(b')');
        if range_end == crate::kv::prefix_end(key).as_slice() {
            s.extend_from_slice(b" (prefix ");
            s.extend_from_slice(key);
            s.push(b')');
        }
    }
    s.push(b'\n');
}
