//! etcdctl's `-w json` output: Go's `encoding/json` applied to etcd's Go
//! structs. Protobuf messages use their proto field names with `omitempty`
//! (zero scalars, empty lists and absent messages are left out; a present
//! but empty message is `{}`), int64/uint64 as numbers and bytes as base64.
//! The client library's own structs (lease responses, watch responses)
//! have their own field names and keep zero values; each function below
//! follows the struct etcdctl 3.4 prints.

use cetera::proto::authpb::Permission;
use cetera::proto::etcdserverpb::{
    AlarmResponse, AuthRoleGetResponse, DeleteRangeResponse, HashKvResponse, LeaseGrantResponse,
    LeaseKeepAliveResponse, LeaseLeasesResponse, LeaseRevokeResponse, LeaseTimeToLiveResponse,
    Member, MemberAddResponse, MemberListResponse, MemberPromoteResponse, MemberRemoveResponse,
    MemberUpdateResponse, MoveLeaderResponse, PutResponse, RangeResponse, ResponseHeader,
    ResponseOp, StatusResponse, TxnResponse, WatchResponse, response_op,
};
use cetera::proto::mvccpb::{Event, KeyValue};

use crate::gofmt::{json_bytes, json_string};

/// Builds one JSON object field by field.
pub(crate) struct Obj {
    out: String,
    empty: bool,
}

impl Obj {
    pub(crate) fn new() -> Self {
        Obj {
            out: String::from("{"),
            empty: true,
        }
    }

    fn key(&mut self, key: &str) {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        json_string(&mut self.out, key);
        self.out.push(':');
    }

    /// A field holding already-encoded JSON.
    pub(crate) fn raw(mut self, key: &str, json: &str) -> Self {
        self.key(key);
        self.out.push_str(json);
        self
    }

    pub(crate) fn num(mut self, key: &str, n: impl std::fmt::Display) -> Self {
        self.key(key);
        self.out.push_str(&n.to_string());
        self
    }

    /// An integer field with `omitempty`.
    pub(crate) fn num_omit(self, key: &str, n: i128) -> Self {
        if n == 0 { self } else { self.num(key, n) }
    }

    pub(crate) fn boolean(self, key: &str, b: bool) -> Self {
        self.num(key, b)
    }

    pub(crate) fn bool_omit(self, key: &str, b: bool) -> Self {
        if b { self.num(key, b) } else { self }
    }

    pub(crate) fn string(mut self, key: &str, s: &str) -> Self {
        self.key(key);
        json_string(&mut self.out, s);
        self
    }

    pub(crate) fn string_omit(self, key: &str, s: &str) -> Self {
        if s.is_empty() {
            self
        } else {
            self.string(key, s)
        }
    }

    pub(crate) fn bytes_omit(mut self, key: &str, b: &[u8]) -> Self {
        if b.is_empty() {
            return self;
        }
        self.key(key);
        json_bytes(&mut self.out, b);
        self
    }

    /// A list field with `omitempty`.
    pub(crate) fn list_omit(self, key: &str, items: &[String]) -> Self {
        if items.is_empty() {
            self
        } else {
            self.raw(key, &list(items))
        }
    }

    /// A message field with `omitempty` (left out when absent).
    pub(crate) fn msg_omit(self, key: &str, json: Option<String>) -> Self {
        match json {
            Some(j) => self.raw(key, &j),
            None => self,
        }
    }

    pub(crate) fn end(mut self) -> String {
        self.out.push('}');
        self.out
    }
}

pub(crate) fn list(items: &[String]) -> String {
    format!("[{}]", items.join(","))
}

fn strings(items: &[String]) -> Vec<String> {
    items
        .iter()
        .map(|s| {
            let mut out = String::new();
            json_string(&mut out, s);
            out
        })
        .collect()
}

/// The fields of a `ResponseHeader` added to `obj` (omitempty each).
fn header_fields(obj: Obj, h: &ResponseHeader) -> Obj {
    obj.num_omit("cluster_id", h.cluster_id.into())
        .num_omit("member_id", h.member_id.into())
        .num_omit("revision", h.revision.into())
        .num_omit("raft_term", h.raft_term.into())
}

pub(crate) fn header(h: &ResponseHeader) -> String {
    header_fields(Obj::new(), h).end()
}

fn opt_header(h: &Option<ResponseHeader>) -> Option<String> {
    h.as_ref().map(header)
}

/// A client struct that embeds `*pb.ResponseHeader`: its fields inline.
fn embedded_header(h: &Option<ResponseHeader>) -> Obj {
    match h {
        Some(h) => header_fields(Obj::new(), h),
        None => Obj::new(),
    }
}

pub(crate) fn kv(kv: &KeyValue) -> String {
    Obj::new()
        .bytes_omit("key", &kv.key)
        .num_omit("create_revision", kv.create_revision.into())
        .num_omit("mod_revision", kv.mod_revision.into())
        .num_omit("version", kv.version.into())
        .bytes_omit("value", &kv.value)
        .num_omit("lease", kv.lease.into())
        .end()
}

fn kvs(items: &[KeyValue]) -> Vec<String> {
    items.iter().map(kv).collect()
}

pub(crate) fn range(r: &RangeResponse) -> String {
    Obj::new()
        .msg_omit("header", opt_header(&r.header))
        .list_omit("kvs", &kvs(&r.kvs))
        .bool_omit("more", r.more)
        .num_omit("count", r.count.into())
        .end()
}

pub(crate) fn put(r: &PutResponse) -> String {
    Obj::new()
        .msg_omit("header", opt_header(&r.header))
        .msg_omit("prev_kv", r.prev_kv.as_ref().map(kv))
        .end()
}

pub(crate) fn delete(r: &DeleteRangeResponse) -> String {
    Obj::new()
        .msg_omit("header", opt_header(&r.header))
        .num_omit("deleted", r.deleted.into())
        .list_omit("prev_kvs", &kvs(&r.prev_kvs))
        .end()
}

pub(crate) fn txn(r: &TxnResponse) -> String {
    let responses: Vec<String> = r.responses.iter().map(response_op).collect();
    Obj::new()
        .msg_omit("header", opt_header(&r.header))
        .bool_omit("succeeded", r.succeeded)
        .list_omit("responses", &responses)
        .end()
}

/// A `ResponseOp`: Go's oneof wrapper structs have no JSON tags, hence
/// `{"Response":{"ResponsePut":{...}}}`.
fn response_op(op: &ResponseOp) -> String {
    let inner = match &op.response {
        None => "null".to_string(),
        Some(response_op::Response::ResponseRange(r)) => {
            Obj::new().raw("ResponseRange", &range(r)).end()
        }
        Some(response_op::Response::ResponsePut(r)) => Obj::new().raw("ResponsePut", &put(r)).end(),
        Some(response_op::Response::ResponseDeleteRange(r)) => {
            Obj::new().raw("ResponseDeleteRange", &delete(r)).end()
        }
        Some(response_op::Response::ResponseTxn(r)) => Obj::new().raw("ResponseTxn", &txn(r)).end(),
    };
    Obj::new().raw("Response", &inner).end()
}

pub(crate) fn event(e: &Event) -> String {
    Obj::new()
        .num_omit("type", e.r#type.into())
        .msg_omit("kv", e.kv.as_ref().map(kv))
        .msg_omit("prev_kv", e.prev_kv.as_ref().map(kv))
        .end()
}

/// clientv3's `WatchResponse` struct (no JSON tags, header by value).
pub(crate) fn watch(r: &WatchResponse) -> String {
    let h = r.header.unwrap_or_default();
    // clientv3 always makes the events slice, so it is never null.
    let events = list(&r.events.iter().map(event).collect::<Vec<_>>());
    Obj::new()
        .raw("Header", &header(&h))
        .raw("Events", &events)
        .num("CompactRevision", r.compact_revision)
        .boolean("Canceled", r.canceled)
        .boolean("Created", r.created)
        .end()
}

/// clientv3's `LeaseGrantResponse`: embedded header, `ID`, `TTL`, `Error`.
pub(crate) fn lease_grant(r: &LeaseGrantResponse) -> String {
    embedded_header(&r.header)
        .num("ID", r.id)
        .num("TTL", r.ttl)
        .string("Error", &r.error)
        .end()
}

pub(crate) fn lease_revoke(r: &LeaseRevokeResponse) -> String {
    Obj::new().msg_omit("header", opt_header(&r.header)).end()
}

/// clientv3's `LeaseKeepAliveResponse`: embedded header, `ID`, `TTL`.
pub(crate) fn lease_keep_alive(r: &LeaseKeepAliveResponse) -> String {
    embedded_header(&r.header)
        .num("ID", r.id)
        .num("TTL", r.ttl)
        .end()
}

/// clientv3's `LeaseTimeToLiveResponse`: embedded header, `id`, `ttl`,
/// `granted-ttl`, `keys` (null when there are none).
pub(crate) fn lease_time_to_live(r: &LeaseTimeToLiveResponse) -> String {
    let keys = if r.keys.is_empty() {
        "null".to_string()
    } else {
        let items: Vec<String> = r
            .keys
            .iter()
            .map(|k| {
                let mut s = String::new();
                json_bytes(&mut s, k);
                s
            })
            .collect();
        list(&items)
    };
    embedded_header(&r.header)
        .num("id", r.id)
        .num("ttl", r.ttl)
        .num("granted-ttl", r.granted_ttl)
        .raw("keys", &keys)
        .end()
}

/// clientv3's `LeaseLeasesResponse`: embedded header and `leases` (never null).
pub(crate) fn lease_leases(r: &LeaseLeasesResponse) -> String {
    let items: Vec<String> = r
        .leases
        .iter()
        .map(|l| Obj::new().num("id", l.id).end())
        .collect();
    embedded_header(&r.header)
        .raw("leases", &list(&items))
        .end()
}

pub(crate) fn member(m: &Member) -> String {
    Obj::new()
        .num_omit("ID", m.id.into())
        .string_omit("name", &m.name)
        .list_omit("peerURLs", &strings(&m.peer_ur_ls))
        .list_omit("clientURLs", &strings(&m.client_ur_ls))
        .bool_omit("isLearner", m.is_learner)
        .end()
}

fn members(items: &[Member]) -> Vec<String> {
    items.iter().map(member).collect()
}

pub(crate) fn member_list(r: &MemberListResponse) -> String {
    Obj::new()
        .msg_omit("header", opt_header(&r.header))
        .list_omit("members", &members(&r.members))
        .end()
}

pub(crate) fn member_add(r: &MemberAddResponse) -> String {
    Obj::new()
        .msg_omit("header", opt_header(&r.header))
        .msg_omit("member", r.member.as_ref().map(member))
        .list_omit("members", &members(&r.members))
        .end()
}

pub(crate) fn member_remove(r: &MemberRemoveResponse) -> String {
    Obj::new()
        .msg_omit("header", opt_header(&r.header))
        .list_omit("members", &members(&r.members))
        .end()
}

pub(crate) fn member_update(r: &MemberUpdateResponse) -> String {
    Obj::new()
        .msg_omit("header", opt_header(&r.header))
        .list_omit("members", &members(&r.members))
        .end()
}

pub(crate) fn member_promote(r: &MemberPromoteResponse) -> String {
    Obj::new()
        .msg_omit("header", opt_header(&r.header))
        .list_omit("members", &members(&r.members))
        .end()
}

pub(crate) fn status(r: &StatusResponse) -> String {
    Obj::new()
        .msg_omit("header", opt_header(&r.header))
        .string_omit("version", &r.version)
        .num_omit("dbSize", r.db_size.into())
        .num_omit("leader", r.leader.into())
        .num_omit("raftIndex", r.raft_index.into())
        .num_omit("raftTerm", r.raft_term.into())
        .num_omit("raftAppliedIndex", r.raft_applied_index.into())
        .list_omit("errors", &strings(&r.errors))
        .num_omit("dbSizeInUse", r.db_size_in_use.into())
        .bool_omit("isLearner", r.is_learner)
        .end()
}

pub(crate) fn hash_kv(r: &HashKvResponse) -> String {
    Obj::new()
        .msg_omit("header", opt_header(&r.header))
        .num_omit("hash", r.hash.into())
        .num_omit("compact_revision", r.compact_revision.into())
        .end()
}

pub(crate) fn alarm(r: &AlarmResponse) -> String {
    let alarms: Vec<String> = r
        .alarms
        .iter()
        .map(|a| {
            Obj::new()
                .num_omit("memberID", a.member_id.into())
                .num_omit("alarm", a.alarm.into())
                .end()
        })
        .collect();
    Obj::new()
        .msg_omit("header", opt_header(&r.header))
        .list_omit("alarms", &alarms)
        .end()
}

pub(crate) fn move_leader(r: &MoveLeaderResponse) -> String {
    Obj::new().msg_omit("header", opt_header(&r.header)).end()
}

/// An auth response that carries only its header (`AuthEnableResponse`,
/// `AuthUserAddResponse`, `AuthRoleGrantPermissionResponse`, ...).
pub(crate) fn header_only(h: &Option<ResponseHeader>) -> String {
    Obj::new().msg_omit("header", opt_header(h)).end()
}

/// `authpb.Permission`: its JSON names mix camel case (`permType`) and
/// proto names (`range_end`), as etcd's generated Go struct tags do.
fn permission(p: &Permission) -> String {
    Obj::new()
        .num_omit("permType", p.perm_type.into())
        .bytes_omit("key", &p.key)
        .bytes_omit("range_end", &p.range_end)
        .end()
}

pub(crate) fn role_get(r: &AuthRoleGetResponse) -> String {
    let perms: Vec<String> = r.perm.iter().map(permission).collect();
    Obj::new()
        .msg_omit("header", opt_header(&r.header))
        .list_omit("perm", &perms)
        .end()
}

/// A response with a header and a list of names (`roles` of UserGet and
/// RoleList, `users` of UserList).
pub(crate) fn names(h: &Option<ResponseHeader>, field: &str, names: &[String]) -> String {
    Obj::new()
        .msg_omit("header", opt_header(h))
        .list_omit(field, &strings(names))
        .end()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr() -> Option<ResponseHeader> {
        Some(ResponseHeader {
            cluster_id: 324952591200643719,
            member_id: 3319814642761637952,
            revision: 2,
            raft_term: 2,
        })
    }

    #[test]
    fn range_matches_etcdctl() {
        let r = RangeResponse {
            header: hdr(),
            kvs: vec![KeyValue {
                key: b"foo".to_vec(),
                create_revision: 2,
                mod_revision: 2,
                version: 1,
                value: b"bar".to_vec(),
                lease: 0,
            }],
            more: false,
            count: 1,
        };
        assert_eq!(
            range(&r),
            r#"{"header":{"cluster_id":324952591200643719,"member_id":3319814642761637952,"revision":2,"raft_term":2},"kvs":[{"key":"Zm9v","create_revision":2,"mod_revision":2,"version":1,"value":"YmFy"}],"count":1}"#
        );
        let empty = RangeResponse {
            header: hdr(),
            ..Default::default()
        };
        assert!(range(&empty).ends_with("\"raft_term\":2}}"));
    }

    #[test]
    fn lease_structs_match_clientv3() {
        let r = LeaseGrantResponse {
            header: hdr(),
            id: 7,
            ttl: 100,
            error: String::new(),
        };
        assert_eq!(
            lease_grant(&r),
            r#"{"cluster_id":324952591200643719,"member_id":3319814642761637952,"revision":2,"raft_term":2,"ID":7,"TTL":100,"Error":""}"#
        );
        let t = LeaseTimeToLiveResponse {
            header: hdr(),
            id: 7,
            ttl: -1,
            granted_ttl: 0,
            keys: vec![],
        };
        assert!(
            lease_time_to_live(&t).ends_with(r#""id":7,"ttl":-1,"granted-ttl":0,"keys":null}"#)
        );
    }

    #[test]
    fn txn_wraps_oneofs_like_go() {
        let r = TxnResponse {
            header: hdr(),
            succeeded: true,
            responses: vec![ResponseOp {
                response: Some(response_op::Response::ResponsePut(PutResponse {
                    header: Some(ResponseHeader {
                        revision: 14,
                        ..Default::default()
                    }),
                    prev_kv: None,
                })),
            }],
        };
        assert!(txn(&r).ends_with(
            r#""succeeded":true,"responses":[{"Response":{"ResponsePut":{"header":{"revision":14}}}}]}"#
        ));
    }
}
