//! Wire types of the etcd v3 API, generated at build time from our own
//! `.proto` files under `node/proto/etcd` (see `build.rs`).
//!
//! This module owns the generated prost messages and the tonic servers and
//! clients for every etcd service (KV, Watch, Lease, Cluster, Maintenance,
//! Auth, Lock, Election). It must never hold logic: conversions and behaviour
//! belong in the modules that use these types.

pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}

pub mod authpb {
    tonic::include_proto!("authpb");
}

pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}

pub mod v3lockpb {
    tonic::include_proto!("v3lockpb");
}

pub mod v3electionpb {
    tonic::include_proto!("v3electionpb");
}

/// Encoded `google.protobuf.FileDescriptorSet` of all the files above, for
/// gRPC reflection and the JSON gateway.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("etcd_descriptor");

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::etcdserverpb::{
        Compare, PutRequest, RangeResponse, ResponseHeader, compare::CompareResult,
        compare::CompareTarget, compare::TargetUnion,
    };
    use super::mvccpb::KeyValue;

    #[test]
    fn put_request_round_trips_with_etcd_field_numbers() {
        let req = PutRequest {
            key: b"foo".to_vec(),
            value: b"bar".to_vec(),
            lease: 7,
            prev_kv: true,
            ignore_value: false,
            ignore_lease: true,
        };
        let bytes = req.encode_to_vec();
        // key=1, value=2 (length-delimited), lease=3, prev_kv=4, ignore_lease=6 (varint).
        let expected: &[u8] = &[
            0x0a, 3, b'f', b'o', b'o', 0x12, 3, b'b', b'a', b'r', 0x18, 7, 0x20, 1, 0x30, 1,
        ];
        assert_eq!(bytes, expected);
        assert_eq!(PutRequest::decode(bytes.as_slice()).unwrap(), req);
    }

    #[test]
    fn range_response_round_trips() {
        let resp = RangeResponse {
            header: Some(ResponseHeader {
                cluster_id: 0xdead_beef,
                member_id: 42,
                revision: 17,
                raft_term: 3,
            }),
            kvs: vec![
                KeyValue {
                    key: b"a".to_vec(),
                    create_revision: 2,
                    mod_revision: 5,
                    version: 3,
                    value: b"one".to_vec(),
                    lease: 0,
                },
                KeyValue {
                    key: b"b".to_vec(),
                    create_revision: 4,
                    mod_revision: 4,
                    version: 1,
                    value: Vec::new(),
                    lease: 99,
                },
            ],
            more: true,
            count: 10,
        };
        let bytes = resp.encode_to_vec();
        let decoded = RangeResponse::decode(bytes.as_slice()).unwrap();
        assert_eq!(decoded, resp);
        assert_eq!(decoded.kvs[1].lease, 99);
        // The header is field 1 and comes first on the wire.
        assert_eq!(bytes[0], 0x0a);
    }

    #[test]
    fn compare_range_end_uses_field_64() {
        let cmp = Compare {
            result: CompareResult::Greater as i32,
            target: CompareTarget::Mod as i32,
            key: b"k".to_vec(),
            range_end: b"l".to_vec(),
            target_union: Some(TargetUnion::ModRevision(5)),
        };
        let bytes = cmp.encode_to_vec();
        // Field 64, wire type 2 => tag varint 514 = [0x82, 0x04].
        assert!(bytes.windows(4).any(|w| w == [0x82, 0x04, 1, b'l']));
        // mod_revision is field 6 of the target_union oneof.
        assert!(bytes.windows(2).any(|w| w == [0x30, 5]));
        assert_eq!(Compare::decode(bytes.as_slice()).unwrap(), cmp);
    }

    /// Just enough of `google.protobuf.FileDescriptorSet` to inspect it
    /// without depending on `prost-types`.
    #[derive(Clone, PartialEq, Message)]
    struct FileDescriptorSet {
        #[prost(message, repeated, tag = "1")]
        file: Vec<FileDescriptorProto>,
    }

    #[derive(Clone, PartialEq, Message)]
    struct FileDescriptorProto {
        #[prost(string, optional, tag = "2")]
        package: Option<String>,
        #[prost(message, repeated, tag = "6")]
        service: Vec<ServiceDescriptorProto>,
    }

    #[derive(Clone, PartialEq, Message)]
    struct ServiceDescriptorProto {
        #[prost(string, optional, tag = "1")]
        name: Option<String>,
    }

    #[test]
    fn file_descriptor_set_lists_every_etcd_service() {
        assert!(!super::FILE_DESCRIPTOR_SET.is_empty());
        let set = FileDescriptorSet::decode(super::FILE_DESCRIPTOR_SET).unwrap();
        let mut services: Vec<String> = set
            .file
            .iter()
            .flat_map(|f| {
                let package = f.package.clone().unwrap_or_default();
                f.service
                    .iter()
                    .map(move |s| format!("{package}.{}", s.name.clone().unwrap_or_default()))
            })
            .collect();
        services.sort();
        assert_eq!(
            services,
            [
                "etcdserverpb.Auth",
                "etcdserverpb.Cluster",
                "etcdserverpb.KV",
                "etcdserverpb.Lease",
                "etcdserverpb.Maintenance",
                "etcdserverpb.Watch",
                "v3electionpb.Election",
                "v3lockpb.Lock",
            ]
        );
        let mut packages: Vec<_> = set.file.iter().filter_map(|f| f.package.clone()).collect();
        packages.sort();
        assert_eq!(
            packages,
            [
                "authpb",
                "etcdserverpb",
                "mvccpb",
                "v3electionpb",
                "v3lockpb"
            ]
        );
    }
}
