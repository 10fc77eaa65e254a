//! What a Raft entry carries and what applying it yields.
//!
//! Client requests travel as etcd's own protobuf messages (encoded with
//! prost inside the compact postcard envelope), so the log holds exactly
//! what the client asked for and needs no second schema.

use serde::{Deserialize, Serialize};

use crate::auth::{AuthError, AuthOp, Caller};
use crate::mvcc::MvccError;
use crate::proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, TxnRequest, TxnResponse,
};
use crate::v2store::{Event as V2Event, V2Error, V2Write};

use super::MemberId;

/// A replicated request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    Put(#[serde(with = "prost_bytes")] PutRequest),
    DeleteRange(#[serde(with = "prost_bytes")] DeleteRangeRequest),
    Txn(#[serde(with = "prost_bytes")] TxnRequest),
    Compact(#[serde(with = "prost_bytes")] CompactionRequest),
    /// A member announces its name and client URLs once it serves.
    PublishMember(MemberAttributes),
    /// Grant a lease; the id is chosen before proposing, so every member
    /// records the same one.
    LeaseGrant {
        id: i64,
        ttl: i64,
    },
    /// Revoke a lease, deleting its keys (a client's revoke, or expiry
    /// decided by the leader).
    LeaseRevoke {
        id: i64,
    },
    /// Raise or clear an alarm (`activate` false clears it).
    Alarm {
        member_id: u64,
        alarm: i32,
        activate: bool,
    },
    /// Several independent commands proposed as one entry (group commit):
    /// applied in order, each with its own revision and result.
    Batch(Vec<Command>),
    /// A write to the v2 keyspace (or the leader's expiry sweep of it).
    /// Variants are only ever appended: postcard encodes their position.
    V2(V2Write),
    /// A change to the auth store, or an authentication (`crate::auth`).
    Auth(AuthOp),
    /// A request checked against the auth store on its member as `caller`;
    /// applied only if that check still holds (`AuthStore::admit`).
    Authorized {
        caller: Caller,
        command: Box<Command>,
    },
}

/// The attributes a member publishes about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberAttributes {
    pub id: MemberId,
    pub name: String,
    pub client_urls: Vec<String>,
}

/// The outcome of applying one entry, identical on every member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CommandResult {
    Put(#[serde(with = "prost_bytes")] PutResponse),
    DeleteRange(#[serde(with = "prost_bytes")] DeleteRangeResponse),
    Txn(#[serde(with = "prost_bytes")] TxnResponse),
    Compact(#[serde(with = "prost_bytes")] CompactionResponse),
    /// A lease was granted or revoked; the store's revision afterwards.
    Lease {
        revision: i64,
    },
    /// The keyspace rules refused the request; nothing changed.
    Rejected(MvccError),
    /// An entry with no client-visible result (membership, blank, publish).
    Done,
    /// The results of a [`Command::Batch`], in order.
    Batch(Vec<CommandResult>),
    /// A v2 write's event, or the v2 error it was refused with.
    V2(Result<Box<V2Event>, V2Error>),
    /// An auth change's outcome (the token, for an authentication), or an
    /// auth check at apply that refused the command.
    Auth(Result<Option<String>, AuthError>),
}

impl Command {
    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Command::Put(_) => "put",
            Command::DeleteRange(_) => "delete_range",
            Command::Txn(_) => "txn",
            Command::Compact(_) => "compact",
            Command::PublishMember(_) => "publish_member",
            Command::LeaseGrant { .. } => "lease_grant",
            Command::LeaseRevoke { .. } => "lease_revoke",
            Command::Batch(_) => "batch",
            Command::Alarm { .. } => "alarm",
            Command::V2(_) => "v2",
            Command::Auth(_) => "auth",
            Command::Authorized { command, .. } => command.kind(),
        }
    }
}

/// Serde adapter storing a prost message as its protobuf bytes.
mod prost_bytes {
    use std::marker::PhantomData;

    use prost::Message;
    use serde::de::{self, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<M: Message, S: Serializer>(m: &M, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&m.encode_to_vec())
    }

    pub(super) fn deserialize<'de, M: Message + Default, D: Deserializer<'de>>(
        d: D,
    ) -> Result<M, D::Error> {
        // Asking for bytes (not a `Vec<u8>`, which serde reads element by
        // element) lets postcard hand over the borrowed slice in one piece.
        d.deserialize_bytes(MessageVisitor(PhantomData))
    }

    struct MessageVisitor<M>(PhantomData<M>);

    impl<'de, M: Message + Default> Visitor<'de> for MessageVisitor<M> {
        type Value = M;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a protobuf-encoded message")
        }

        fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<M, E> {
            M::decode(bytes).map_err(E::custom)
        }

        /// Self-describing formats without a bytes type write a sequence.
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<M, A::Error> {
            let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0));
            while let Some(byte) = seq.next_element::<u8>()? {
                bytes.push(byte);
            }
            self.visit_bytes(&bytes)
        }
    }
}

impl Command {
    /// About how many bytes the command takes in a log entry (client
    /// requests exactly, the small fixed-size commands roughly): what
    /// batching and RPC size limits count.
    pub fn approx_size(&self) -> usize {
        use prost::Message as _;
        match self {
            Command::Put(r) => r.encoded_len(),
            Command::DeleteRange(r) => r.encoded_len(),
            Command::Txn(r) => r.encoded_len(),
            Command::Compact(r) => r.encoded_len(),
            Command::Batch(commands) => commands.iter().map(Command::approx_size).sum(),
            Command::V2(write) => crate::v2store::encoded_size(&write.op),
            Command::Authorized { command, .. } => command.approx_size() + 64,
            Command::PublishMember(_)
            | Command::LeaseGrant { .. }
            | Command::LeaseRevoke { .. }
            | Command::Alarm { .. }
            | Command::Auth(_) => 64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_through_postcard() {
        let cmd = Command::Put(PutRequest {
            key: b"k".to_vec(),
            value: vec![0, 1, 2, 255],
            lease: 7,
            prev_kv: true,
            ..Default::default()
        });
        let bytes = postcard::to_stdvec(&cmd).unwrap();
        assert_eq!(postcard::from_bytes::<Command>(&bytes).unwrap(), cmd);
        let rejected = CommandResult::Rejected(MvccError::LeaseNotFound);
        let bytes = postcard::to_stdvec(&rejected).unwrap();
        assert_eq!(
            postcard::from_bytes::<CommandResult>(&bytes).unwrap(),
            rejected
        );
        let v2 = Command::V2(V2Write {
            now: 42,
            op: crate::v2store::V2Op::ExpireKeys,
        });
        let bytes = postcard::to_stdvec(&v2).unwrap();
        assert_eq!(postcard::from_bytes::<Command>(&bytes).unwrap(), v2);
        let checked = Command::Authorized {
            caller: Caller {
                user: Some("bob".into()),
                revision: 3,
            },
            command: Box::new(Command::Auth(AuthOp::RoleAdd { name: "r".into() })),
        };
        let bytes = postcard::to_stdvec(&checked).unwrap();
        assert_eq!(postcard::from_bytes::<Command>(&bytes).unwrap(), checked);
        let refused = CommandResult::Auth(Err(AuthError::AuthOldRevision));
        let bytes = postcard::to_stdvec(&refused).unwrap();
        assert_eq!(
            postcard::from_bytes::<CommandResult>(&bytes).unwrap(),
            refused
        );
    }

    /// The request inside decodes from a borrowed byte slice (postcard) and
    /// from a sequence of numbers (self-describing formats such as JSON),
    /// and a corrupt one is an error, not a panic.
    #[test]
    fn embedded_requests_decode_from_bytes_or_sequences() {
        let cmd = Command::Txn(TxnRequest {
            success: vec![crate::proto::etcdserverpb::RequestOp {
                request: Some(crate::proto::etcdserverpb::request_op::Request::RequestPut(
                    PutRequest {
                        key: b"a".to_vec(),
                        value: vec![7; 300],
                        ..Default::default()
                    },
                )),
            }],
            ..Default::default()
        });
        let bytes = postcard::to_stdvec(&cmd).unwrap();
        assert_eq!(postcard::from_bytes::<Command>(&bytes).unwrap(), cmd);
        let json = serde_json::to_string(&cmd).unwrap();
        assert_eq!(serde_json::from_str::<Command>(&json).unwrap(), cmd);
        let garbage = postcard::to_stdvec(&(2u32, [0xffu8; 3].as_slice())).unwrap();
        assert!(postcard::from_bytes::<Command>(&garbage).is_err());
    }

    /// Entries written before the v2 variants existed still decode: the
    /// existing variants kept their positions.
    #[test]
    fn existing_variants_keep_their_encoding() {
        let batch = Command::Batch(vec![Command::LeaseRevoke { id: 5 }]);
        assert_eq!(postcard::to_stdvec(&batch).unwrap(), [8, 1, 6, 10]);
        let done = CommandResult::Batch(vec![CommandResult::Done]);
        assert_eq!(postcard::to_stdvec(&done).unwrap(), [7, 1, 6]);
    }
}
