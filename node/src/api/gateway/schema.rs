//! The message, enum and method shapes the JSON codec needs, read once from
//! the descriptor set compiled into the binary ([`FILE_DESCRIPTOR_SET`]),
//! so the codec follows the `.proto` files with no per-message code.

use std::collections::HashMap;
use std::sync::OnceLock;

use prost::Message as _;

use crate::proto::FILE_DESCRIPTOR_SET;

/// Just enough of `google.protobuf.FileDescriptorSet` (no `prost-types`).
mod descriptor {
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct FileDescriptorSet {
        #[prost(message, repeated, tag = "1")]
        pub(super) file: Vec<FileDescriptorProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct FileDescriptorProto {
        #[prost(string, optional, tag = "2")]
        pub(super) package: Option<String>,
        #[prost(message, repeated, tag = "4")]
        pub(super) message_type: Vec<DescriptorProto>,
        #[prost(message, repeated, tag = "5")]
        pub(super) enum_type: Vec<EnumDescriptorProto>,
        #[prost(message, repeated, tag = "6")]
        pub(super) service: Vec<ServiceDescriptorProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct DescriptorProto {
        #[prost(string, optional, tag = "1")]
        pub(super) name: Option<String>,
        #[prost(message, repeated, tag = "2")]
        pub(super) field: Vec<FieldDescriptorProto>,
        #[prost(message, repeated, tag = "3")]
        pub(super) nested_type: Vec<DescriptorProto>,
        #[prost(message, repeated, tag = "4")]
        pub(super) enum_type: Vec<EnumDescriptorProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct FieldDescriptorProto {
        #[prost(string, optional, tag = "1")]
        pub(super) name: Option<String>,
        #[prost(int32, optional, tag = "3")]
        pub(super) number: Option<i32>,
        #[prost(int32, optional, tag = "4")]
        pub(super) label: Option<i32>,
        #[prost(int32, optional, tag = "5")]
        pub(super) r#type: Option<i32>,
        #[prost(string, optional, tag = "6")]
        pub(super) type_name: Option<String>,
        #[prost(int32, optional, tag = "9")]
        pub(super) oneof_index: Option<i32>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct EnumDescriptorProto {
        #[prost(string, optional, tag = "1")]
        pub(super) name: Option<String>,
        #[prost(message, repeated, tag = "2")]
        pub(super) value: Vec<EnumValueDescriptorProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct EnumValueDescriptorProto {
        #[prost(string, optional, tag = "1")]
        pub(super) name: Option<String>,
        #[prost(int32, optional, tag = "2")]
        pub(super) number: Option<i32>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct ServiceDescriptorProto {
        #[prost(string, optional, tag = "1")]
        pub(super) name: Option<String>,
        #[prost(message, repeated, tag = "2")]
        pub(super) method: Vec<MethodDescriptorProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct MethodDescriptorProto {
        #[prost(string, optional, tag = "1")]
        pub(super) name: Option<String>,
        #[prost(string, optional, tag = "2")]
        pub(super) input_type: Option<String>,
        #[prost(string, optional, tag = "3")]
        pub(super) output_type: Option<String>,
        #[prost(bool, optional, tag = "5")]
        pub(super) client_streaming: Option<bool>,
        #[prost(bool, optional, tag = "6")]
        pub(super) server_streaming: Option<bool>,
    }
}

/// A field's protobuf type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Type {
    Double,
    Float,
    Int64,
    Uint64,
    Int32,
    Fixed64,
    Fixed32,
    Bool,
    String,
    Bytes,
    Uint32,
    Sfixed32,
    Sfixed64,
    Sint32,
    Sint64,
    /// Full name, e.g. `etcdserverpb.RangeRequest.SortOrder`.
    Enum(String),
    /// Full name, e.g. `mvccpb.KeyValue`.
    Message(String),
}

#[derive(Debug)]
pub(crate) struct Field {
    /// The proto name (`create_revision`, `ID`): what the gateway writes.
    pub(crate) name: String,
    /// The lowerCamelCase JSON name, which the gateway also reads.
    pub(crate) json_name: String,
    pub(crate) number: u32,
    pub(crate) ty: Type,
    pub(crate) repeated: bool,
    /// Part of a oneof: present even when zero.
    pub(crate) oneof: bool,
}

#[derive(Debug, Default)]
pub(crate) struct MessageType {
    /// In declaration order, which is the order Go writes them in.
    pub(crate) fields: Vec<Field>,
}

#[derive(Debug, Default)]
pub(crate) struct EnumType {
    /// Go's name for the type (`etcdserverpb.RangeRequest_SortOrder`),
    /// which appears in error messages.
    pub(crate) go_name: String,
    pub(crate) numbers: HashMap<String, i32>,
    pub(crate) names: HashMap<i32, String>,
}

/// Every message, enum and method of the etcd protos.
#[derive(Debug, Default)]
pub(crate) struct Schema {
    messages: HashMap<String, MessageType>,
    enums: HashMap<String, EnumType>,
    /// `etcdserverpb.KV/Range` → its messages and streaming.
    methods: HashMap<String, Method>,
}

/// A gRPC method's messages and whether each side streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Method {
    pub(crate) input: String,
    pub(crate) output: String,
    pub(crate) client_streaming: bool,
    pub(crate) server_streaming: bool,
}

/// protoc's `ToJsonName`: drop underscores, capitalising the next letter.
fn json_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn field_type(code: i32, type_name: &str) -> Option<Type> {
    let name = type_name.trim_start_matches('.').to_string();
    Some(match code {
        1 => Type::Double,
        2 => Type::Float,
        3 => Type::Int64,
        4 => Type::Uint64,
        5 => Type::Int32,
        6 => Type::Fixed64,
        7 => Type::Fixed32,
        8 => Type::Bool,
        9 => Type::String,
        11 => Type::Message(name),
        12 => Type::Bytes,
        13 => Type::Uint32,
        14 => Type::Enum(name),
        15 => Type::Sfixed32,
        16 => Type::Sfixed64,
        17 => Type::Sint32,
        18 => Type::Sint64,
        // Groups (10) do not exist in proto3.
        _ => return None,
    })
}

impl Schema {
    /// The schema of the compiled-in protos.
    pub(crate) fn get() -> &'static Schema {
        static SCHEMA: OnceLock<Schema> = OnceLock::new();
        SCHEMA.get_or_init(|| Schema::from_descriptor_set(FILE_DESCRIPTOR_SET))
    }

    fn from_descriptor_set(bytes: &[u8]) -> Schema {
        let mut schema = Schema::default();
        // The set is generated at build time from our own protos; a decode
        // failure would leave an empty schema, which the unit tests catch.
        let set = descriptor::FileDescriptorSet::decode(bytes).unwrap_or_default();
        for file in &set.file {
            let package = file.package.clone().unwrap_or_default();
            for message in &file.message_type {
                schema.add_message(&package, &package, message);
            }
            for e in &file.enum_type {
                schema.add_enum(&package, &package, e);
            }
            for service in &file.service {
                let service_name = service.name.clone().unwrap_or_default();
                for method in &service.method {
                    let strip = |t: &Option<String>| {
                        t.clone()
                            .unwrap_or_default()
                            .trim_start_matches('.')
                            .to_string()
                    };
                    schema.methods.insert(
                        format!(
                            "{package}.{service_name}/{}",
                            method.name.clone().unwrap_or_default()
                        ),
                        Method {
                            input: strip(&method.input_type),
                            output: strip(&method.output_type),
                            client_streaming: method.client_streaming.unwrap_or(false),
                            server_streaming: method.server_streaming.unwrap_or(false),
                        },
                    );
                }
            }
        }
        schema
    }

    /// `scope` is the proto scope (`etcdserverpb.RangeRequest`), `go_scope`
    /// Go's (`etcdserverpb.RangeRequest_`-style nesting).
    fn add_message(&mut self, scope: &str, go_scope: &str, message: &descriptor::DescriptorProto) {
        let name = message.name.clone().unwrap_or_default();
        let full = format!("{scope}.{name}");
        let go_full = if go_scope.contains('.') {
            format!("{go_scope}_{name}")
        } else {
            format!("{go_scope}.{name}")
        };
        let fields = message
            .field
            .iter()
            .filter_map(|f| {
                let name = f.name.clone().unwrap_or_default();
                Some(Field {
                    json_name: json_name(&name),
                    name,
                    number: u32::try_from(f.number.unwrap_or(0)).ok()?,
                    ty: field_type(f.r#type.unwrap_or(0), f.type_name.as_deref().unwrap_or(""))?,
                    repeated: f.label == Some(3),
                    oneof: f.oneof_index.is_some(),
                })
            })
            .collect();
        for nested in &message.nested_type {
            self.add_message(&full, &go_full, nested);
        }
        for e in &message.enum_type {
            self.add_enum(&full, &go_full, e);
        }
        self.messages.insert(full, MessageType { fields });
    }

    fn add_enum(&mut self, scope: &str, go_scope: &str, e: &descriptor::EnumDescriptorProto) {
        let name = e.name.clone().unwrap_or_default();
        let go_name = if go_scope.contains('.') {
            format!("{go_scope}_{name}")
        } else {
            format!("{go_scope}.{name}")
        };
        let mut t = EnumType {
            go_name,
            ..EnumType::default()
        };
        for v in &e.value {
            let (name, number) = (v.name.clone().unwrap_or_default(), v.number.unwrap_or(0));
            t.numbers.insert(name.clone(), number);
            t.names.entry(number).or_insert(name);
        }
        self.enums.insert(format!("{scope}.{name}"), t);
    }

    pub(crate) fn message(&self, name: &str) -> Option<&MessageType> {
        self.messages.get(name)
    }

    pub(crate) fn enum_type(&self, name: &str) -> Option<&EnumType> {
        self.enums.get(name)
    }

    /// The method `package.Service/Method`.
    pub(crate) fn method(&self, name: &str) -> Option<&Method> {
        self.methods.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_knows_etcds_shapes() {
        let schema = Schema::get();
        let range = schema.message("etcdserverpb.RangeRequest").unwrap();
        let names: Vec<_> = range.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(&names[..3], ["key", "range_end", "limit"]);
        assert_eq!(range.fields[1].json_name, "rangeEnd");
        let compare = schema.message("etcdserverpb.Compare").unwrap();
        let value = compare.fields.iter().find(|f| f.name == "value").unwrap();
        assert!(value.oneof && value.ty == Type::Bytes);
        let sort = schema
            .enum_type("etcdserverpb.RangeRequest.SortOrder")
            .unwrap();
        assert_eq!(sort.go_name, "etcdserverpb.RangeRequest_SortOrder");
        assert_eq!(sort.numbers["DESCEND"], 2);
        assert_eq!(
            schema.enum_type("mvccpb.Event.EventType").unwrap().go_name,
            "mvccpb.Event_EventType"
        );
        assert_eq!(
            schema.enum_type("etcdserverpb.AlarmType").unwrap().go_name,
            "etcdserverpb.AlarmType"
        );
        assert_eq!(
            schema.method("etcdserverpb.Lease/LeaseGrant"),
            Some(&Method {
                input: "etcdserverpb.LeaseGrantRequest".into(),
                output: "etcdserverpb.LeaseGrantResponse".into(),
                client_streaming: false,
                server_streaming: false,
            })
        );
        let watch = schema.method("etcdserverpb.Watch/Watch").unwrap();
        assert!(watch.client_streaming && watch.server_streaming);
        let snapshot = schema.method("etcdserverpb.Maintenance/Snapshot").unwrap();
        assert!(!snapshot.client_streaming && snapshot.server_streaming);
        let grant = schema.message("etcdserverpb.LeaseGrantRequest").unwrap();
        assert_eq!(grant.fields[0].name, "TTL");
        assert_eq!(grant.fields[0].json_name, "TTL");
    }
}
