//! JSON ⇄ protobuf exactly as etcd's gateway does it: golang/protobuf
//! 1.3's `jsonpb` with `OrigName: true`, driven by the [`Schema`] read from
//! the descriptor set, so no message needs code of its own.
//!
//! The codec works on protobuf wire bytes: requests are turned into wire
//! bytes that prost then decodes into the generated request type, and
//! responses are read back from prost's encoding. That keeps presence
//! exactly as etcd's gateway sees it after its own gRPC round trip: zero
//! scalars are absent, a set message is present even when empty, a set
//! oneof member is present even when zero.
//!
//! Writing (`jsonpb.Marshaler`):
//! - fields in declaration order, under their proto names (`create_revision`,
//!   `ID`); zero values and empty lists omitted;
//! - 64-bit integers as strings, 32-bit ones as numbers, bools, enums by
//!   name (unknown values as numbers), bytes as padded standard base64,
//!   strings escaped as Go's `json.Marshal` escapes them.
//!
//! Reading (`jsonpb.Unmarshaler`, unknown fields allowed):
//! - proto or lowerCamelCase names (camelCase wins when both appear);
//!   `null` leaves a field unset;
//! - integers as numbers or strings, enums as names or numbers, bytes as
//!   base64 (or a JSON array of byte values, which Go also accepts);
//! - every error worded as Go words it.

use std::collections::HashMap;

use super::json::{self, Kind};
use super::schema::{Field, Schema, Type};

/// Deeper messages than this are refused (prost's own recursion limit).
const MAX_DEPTH: usize = 100;

/// A response could not be read back from its wire encoding (a bug).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("gateway: cannot encode {0} as JSON")]
pub(crate) struct EncodeError(pub(crate) String);

// ----------------------------------------------------------------------
// Wire format helpers.

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

#[derive(Debug, Clone, Copy)]
enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Len(&'a [u8]),
}

fn read_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn read_fixed<const N: usize>(buf: &[u8], pos: &mut usize) -> Option<[u8; N]> {
    let bytes = buf.get(*pos..*pos + N)?.try_into().ok()?;
    *pos += N;
    Some(bytes)
}

/// Every field of one message's encoding, in wire order.
fn read_fields(buf: &[u8]) -> Option<Vec<(u32, Wire<'_>)>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let key = read_varint(buf, &mut pos)?;
        let number = u32::try_from(key >> 3).ok()?;
        let value = match (key & 7) as u8 {
            VARINT => Wire::Varint(read_varint(buf, &mut pos)?),
            FIXED64 => Wire::Fixed64(u64::from_le_bytes(read_fixed(buf, &mut pos)?)),
            LEN => {
                let len = usize::try_from(read_varint(buf, &mut pos)?).ok()?;
                let bytes = buf.get(pos..pos.checked_add(len)?)?;
                pos += len;
                Wire::Len(bytes)
            }
            FIXED32 => Wire::Fixed32(u32::from_le_bytes(read_fixed(buf, &mut pos)?)),
            _ => return None,
        };
        out.push((number, value));
    }
    Some(out)
}

/// The scalars of a packed repeated field.
fn unpack<'a>(ty: &Type, bytes: &'a [u8]) -> Option<Vec<Wire<'a>>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        out.push(match ty {
            Type::Double | Type::Fixed64 | Type::Sfixed64 => {
                Wire::Fixed64(u64::from_le_bytes(read_fixed(bytes, &mut pos)?))
            }
            Type::Float | Type::Fixed32 | Type::Sfixed32 => {
                Wire::Fixed32(u32::from_le_bytes(read_fixed(bytes, &mut pos)?))
            }
            _ => Wire::Varint(read_varint(bytes, &mut pos)?),
        });
    }
    Some(out)
}

fn is_packable(ty: &Type) -> bool {
    !matches!(ty, Type::String | Type::Bytes | Type::Message(_))
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_key(out: &mut Vec<u8>, number: u32, wire_type: u8) {
    put_varint(out, (u64::from(number) << 3) | u64::from(wire_type));
}

fn put_len(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    put_key(out, number, LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn zigzag64(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn zigzag32(v: i32) -> u64 {
    u64::from(((v << 1) ^ (v >> 31)) as u32)
}

// ----------------------------------------------------------------------
// Protobuf → JSON.

/// The JSON etcd's gateway writes for the message `name` encoded as `wire`.
pub(crate) fn to_json(schema: &Schema, name: &str, wire: &[u8]) -> Result<String, EncodeError> {
    let mut out = String::new();
    write_message(schema, &mut out, name, wire, 0)?;
    Ok(out)
}

fn write_message(
    schema: &Schema,
    out: &mut String,
    name: &str,
    wire: &[u8],
    depth: usize,
) -> Result<(), EncodeError> {
    let error = || EncodeError(name.to_string());
    let message = schema.message(name).ok_or_else(error)?;
    if depth > MAX_DEPTH {
        return Err(error());
    }
    let fields = read_fields(wire).ok_or_else(error)?;
    out.push('{');
    let mut first = true;
    for field in &message.fields {
        let mut values = fields
            .iter()
            .filter(|(number, _)| *number == field.number)
            .map(|(_, value)| *value)
            .peekable();
        if values.peek().is_none() {
            continue;
        }
        if field.repeated {
            let mut items = Vec::new();
            for value in values {
                match value {
                    Wire::Len(bytes) if is_packable(&field.ty) => {
                        items.extend(unpack(&field.ty, bytes).ok_or_else(error)?);
                    }
                    other => items.push(other),
                }
            }
            if items.is_empty() {
                continue;
            }
            write_key(out, &mut first, field);
            out.push('[');
            for (i, item) in items.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(schema, out, &field.ty, item, depth).map_err(|_| error())?;
            }
            out.push(']');
        } else {
            // The last occurrence wins, as when decoding.
            let Some(value) = values.last() else { continue };
            if !field.oneof && is_zero(&field.ty, value) {
                continue;
            }
            write_key(out, &mut first, field);
            write_value(schema, out, &field.ty, value, depth)?;
        }
    }
    out.push('}');
    Ok(())
}

fn write_key(out: &mut String, first: &mut bool, field: &Field) {
    if !*first {
        out.push(',');
    }
    *first = false;
    json::write_string(out, &field.name);
    out.push(':');
}

fn is_zero(ty: &Type, value: Wire<'_>) -> bool {
    match (ty, value) {
        (Type::Message(_), _) => false,
        (Type::Double, Wire::Fixed64(bits)) => f64::from_bits(bits) == 0.0,
        (Type::Float, Wire::Fixed32(bits)) => f32::from_bits(bits) == 0.0,
        (
            Type::Int32 | Type::Sint32 | Type::Uint32 | Type::Enum(_) | Type::Bool,
            Wire::Varint(v),
        ) => v as u32 == 0,
        (_, Wire::Varint(v) | Wire::Fixed64(v)) => v == 0,
        (_, Wire::Fixed32(v)) => v == 0,
        (_, Wire::Len(bytes)) => bytes.is_empty(),
    }
}

/// Go's `strconv.FormatFloat(f, 'g'-like)` as `encoding/json` uses it.
fn write_float(out: &mut String, f: f64, bits: u32) {
    if f.is_nan() {
        out.push_str("\"NaN\"");
    } else if f.is_infinite() {
        out.push_str(if f > 0.0 {
            "\"Infinity\""
        } else {
            "\"-Infinity\""
        });
    } else {
        let abs = f.abs();
        let text = if bits == 32 {
            format!("{}", f as f32)
        } else {
            format!("{f}")
        };
        if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
            let e = if bits == 32 {
                format!("{:e}", f as f32)
            } else {
                format!("{f:e}")
            };
            // Go writes a signed exponent of at least one digit: 1e+21, 1e-07 → 1e-7.
            match e.split_once('e') {
                Some((mantissa, exp)) if !exp.starts_with('-') => {
                    out.push_str(&format!("{mantissa}e+{exp}"));
                }
                _ => out.push_str(&e),
            }
        } else {
            out.push_str(&text);
        }
    }
}

fn write_value(
    schema: &Schema,
    out: &mut String,
    ty: &Type,
    value: Wire<'_>,
    depth: usize,
) -> Result<(), EncodeError> {
    let error = || EncodeError(format!("{ty:?}"));
    match (ty, value) {
        (Type::Int64, Wire::Varint(v)) => out.push_str(&format!("\"{}\"", v as i64)),
        (Type::Sint64, Wire::Varint(v)) => {
            out.push_str(&format!("\"{}\"", ((v >> 1) as i64) ^ -((v & 1) as i64)));
        }
        (Type::Sfixed64, Wire::Fixed64(v)) => out.push_str(&format!("\"{}\"", v as i64)),
        (Type::Uint64, Wire::Varint(v)) | (Type::Fixed64, Wire::Fixed64(v)) => {
            out.push_str(&format!("\"{v}\""));
        }
        (Type::Int32, Wire::Varint(v)) => out.push_str(&(v as i32).to_string()),
        (Type::Sint32, Wire::Varint(v)) => {
            let v = v as u32;
            out.push_str(&(((v >> 1) as i32) ^ -((v & 1) as i32)).to_string());
        }
        (Type::Sfixed32, Wire::Fixed32(v)) => out.push_str(&(v as i32).to_string()),
        (Type::Uint32, Wire::Varint(v)) => out.push_str(&(v as u32).to_string()),
        (Type::Fixed32, Wire::Fixed32(v)) => out.push_str(&v.to_string()),
        (Type::Bool, Wire::Varint(v)) => out.push_str(if v != 0 { "true" } else { "false" }),
        (Type::Double, Wire::Fixed64(v)) => write_float(out, f64::from_bits(v), 64),
        (Type::Float, Wire::Fixed32(v)) => write_float(out, f64::from(f32::from_bits(v)), 32),
        (Type::Enum(name), Wire::Varint(v)) => {
            let number = v as i32;
            match schema.enum_type(name).and_then(|e| e.names.get(&number)) {
                Some(name) => json::write_string(out, name),
                None => out.push_str(&number.to_string()),
            }
        }
        (Type::String, Wire::Len(bytes)) => {
            json::write_string(out, &String::from_utf8_lossy(bytes));
        }
        (Type::Bytes, Wire::Len(bytes)) => {
            out.push('"');
            json::base64_encode(out, bytes);
            out.push('"');
        }
        (Type::Message(name), Wire::Len(bytes)) => {
            write_message(schema, out, name, bytes, depth + 1)?;
        }
        _ => return Err(error()),
    }
    Ok(())
}

// ----------------------------------------------------------------------
// JSON → protobuf.

/// The wire encoding of the message `name` read from the valid JSON value
/// `raw`, or Go's error message.
pub(crate) fn from_json(schema: &Schema, name: &str, raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    read_message(schema, name, raw, 0, &mut out)?;
    Ok(out)
}

fn type_error(kind: Kind, go_type: &str) -> String {
    format!(
        "json: cannot unmarshal {} into Go value of type {go_type}",
        kind.go_name()
    )
}

fn read_message(
    schema: &Schema,
    name: &str,
    raw: &[u8],
    depth: usize,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err("failed to decode Protobuf message: recursion limit reached".to_string());
    }
    let message = schema
        .message(name)
        .ok_or_else(|| format!("unknown message type {name}"))?;
    let members = match json::kind(raw) {
        Kind::Null => return Ok(()),
        Kind::Object => json::members(raw),
        kind => return Err(type_error(kind, "map[string]json.RawMessage")),
    };
    // A later duplicate replaces an earlier one, as in a Go map.
    let mut members: HashMap<Vec<u8>, &[u8]> = members.into_iter().collect();
    // Plain fields first, then oneof members, as jsonpb does.
    for oneof in [false, true] {
        for field in message.fields.iter().filter(|f| f.oneof == oneof) {
            let orig = members.remove(field.name.as_bytes());
            let camel = members.remove(field.json_name.as_bytes());
            if let Some(value) = camel.or(orig) {
                read_field(schema, field, value, depth, out)?;
            }
        }
    }
    Ok(())
}

fn read_field(
    schema: &Schema,
    field: &Field,
    raw: &[u8],
    depth: usize,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    if field.repeated {
        let items = match json::kind(raw) {
            Kind::Null => return Ok(()),
            Kind::Array => json::elements(raw),
            kind => return Err(type_error(kind, "[]json.RawMessage")),
        };
        for item in items {
            if let Type::Message(name) = &field.ty {
                // A null element is an empty message. (Go's gateway keeps a
                // nil element, which its gRPC client cannot marshal: the
                // handler panics and etcd drops the connection.)
                let mut nested = Vec::new();
                read_message(schema, name, item, depth + 1, &mut nested)?;
                put_len(out, field.number, &nested);
            } else {
                // A null element is the zero value.
                let value =
                    read_scalar(schema, &field.ty, item)?.unwrap_or_else(|| zero(&field.ty));
                put_scalar(out, field, value);
            }
        }
        return Ok(());
    }
    if let Type::Message(name) = &field.ty {
        if json::kind(raw) == Kind::Null {
            return Ok(());
        }
        let mut nested = Vec::new();
        read_message(schema, name, raw, depth + 1, &mut nested)?;
        put_len(out, field.number, &nested);
        return Ok(());
    }
    match read_scalar(schema, &field.ty, raw)? {
        // A oneof member set to null is still set (to zero).
        None if field.oneof => put_scalar(out, field, zero(&field.ty)),
        None => {}
        Some(value) if field.oneof || !value.is_zero() => put_scalar(out, field, value),
        Some(_) => {}
    }
    Ok(())
}

/// A scalar ready for the wire.
#[derive(Debug, Clone, PartialEq)]
enum Scalar {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Bytes(Vec<u8>),
}

impl Scalar {
    fn is_zero(&self) -> bool {
        match self {
            Scalar::Varint(v) | Scalar::Fixed64(v) => *v == 0,
            Scalar::Fixed32(v) => *v == 0,
            Scalar::Bytes(b) => b.is_empty(),
        }
    }
}

fn zero(ty: &Type) -> Scalar {
    match ty {
        Type::Double | Type::Fixed64 | Type::Sfixed64 => Scalar::Fixed64(0),
        Type::Float | Type::Fixed32 | Type::Sfixed32 => Scalar::Fixed32(0),
        Type::String | Type::Bytes | Type::Message(_) => Scalar::Bytes(Vec::new()),
        _ => Scalar::Varint(0),
    }
}

fn put_scalar(out: &mut Vec<u8>, field: &Field, value: Scalar) {
    match value {
        Scalar::Varint(v) => {
            put_key(out, field.number, VARINT);
            put_varint(out, v);
        }
        Scalar::Fixed64(v) => {
            put_key(out, field.number, FIXED64);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Scalar::Fixed32(v) => {
            put_key(out, field.number, FIXED32);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Scalar::Bytes(b) => put_len(out, field.number, &b),
    }
}

/// What `json.Unmarshal(text, &number)` does once jsonpb has removed the
/// quotes around a quoted number: `None` for null.
fn number_text<'a>(text: &'a [u8], go_type: &str) -> Result<Option<&'a str>, String> {
    json::check_valid(text)?;
    match json::kind(text) {
        Kind::Null => Ok(None),
        Kind::Number => Ok(Some(
            std::str::from_utf8(json::literal(text))
                .map_err(|_| type_error(Kind::Number, go_type))?,
        )),
        kind => Err(type_error(kind, go_type)),
    }
}

/// jsonpb accepts a number in quotes: it drops the first and last byte.
fn strip_quotes(raw: &[u8]) -> &[u8] {
    if raw.first() == Some(&b'"') && raw.len() >= 2 {
        &raw[1..raw.len() - 1]
    } else {
        raw
    }
}

fn number_error(text: &str, go_type: &str) -> String {
    format!("json: cannot unmarshal number {text} into Go value of type {go_type}")
}

fn parse_signed(raw: &[u8], bits: u32, go_type: &str) -> Result<Option<i64>, String> {
    let Some(text) = number_text(raw, go_type)? else {
        return Ok(None);
    };
    let value: i64 = text.parse().map_err(|_| number_error(text, go_type))?;
    if bits == 32 && i32::try_from(value).is_err() {
        return Err(number_error(text, go_type));
    }
    Ok(Some(value))
}

fn parse_unsigned(raw: &[u8], bits: u32, go_type: &str) -> Result<Option<u64>, String> {
    let Some(text) = number_text(raw, go_type)? else {
        return Ok(None);
    };
    let value: u64 = text.parse().map_err(|_| number_error(text, go_type))?;
    if bits < 64 && value >> bits != 0 {
        return Err(number_error(text, go_type));
    }
    Ok(Some(value))
}

fn parse_float(raw: &[u8], go_type: &str) -> Result<Option<f64>, String> {
    match raw {
        b"\"NaN\"" => return Ok(Some(f64::NAN)),
        b"\"Infinity\"" => return Ok(Some(f64::INFINITY)),
        b"\"-Infinity\"" => return Ok(Some(f64::NEG_INFINITY)),
        _ => {}
    }
    let Some(text) = number_text(strip_quotes(raw), go_type)? else {
        return Ok(None);
    };
    let value: f64 = text.parse().map_err(|_| number_error(text, go_type))?;
    let out_of_range = if go_type == "float32" {
        (value as f32).is_infinite()
    } else {
        value.is_infinite()
    };
    if out_of_range {
        return Err(number_error(text, go_type));
    }
    Ok(Some(value))
}

/// One scalar field's value from its raw JSON, with jsonpb's rules; `None`
/// for null.
fn read_scalar(schema: &Schema, ty: &Type, raw: &[u8]) -> Result<Option<Scalar>, String> {
    let raw = json::literal(raw);
    let signed = |bits, go_type| parse_signed(strip_quotes(raw), bits, go_type);
    let unsigned = |bits, go_type| parse_unsigned(strip_quotes(raw), bits, go_type);
    Ok(match ty {
        Type::Int64 => signed(64, "int64")?.map(|v| Scalar::Varint(v as u64)),
        Type::Sint64 => signed(64, "int64")?.map(|v| Scalar::Varint(zigzag64(v))),
        Type::Sfixed64 => signed(64, "int64")?.map(|v| Scalar::Fixed64(v as u64)),
        Type::Uint64 => unsigned(64, "uint64")?.map(Scalar::Varint),
        Type::Fixed64 => unsigned(64, "uint64")?.map(Scalar::Fixed64),
        Type::Int32 => signed(32, "int32")?.map(|v| Scalar::Varint(v as u64)),
        Type::Sint32 => signed(32, "int32")?.map(|v| Scalar::Varint(zigzag32(v as i32))),
        Type::Sfixed32 => signed(32, "int32")?.map(|v| Scalar::Fixed32(v as i32 as u32)),
        Type::Uint32 => unsigned(32, "uint32")?.map(Scalar::Varint),
        Type::Fixed32 => unsigned(32, "uint32")?.map(|v| Scalar::Fixed32(v as u32)),
        Type::Double => parse_float(raw, "float64")?.map(|v| Scalar::Fixed64(v.to_bits())),
        Type::Float => parse_float(raw, "float32")?.map(|v| Scalar::Fixed32((v as f32).to_bits())),
        Type::Enum(name) => {
            let Some(e) = schema.enum_type(name) else {
                return Err(format!("unknown enum type {name}"));
            };
            if raw.first() == Some(&b'"') {
                // The name between the quotes, not unescaped (as jsonpb).
                let inner = strip_quotes(raw);
                let number = std::str::from_utf8(inner)
                    .ok()
                    .and_then(|n| e.numbers.get(n))
                    .ok_or_else(|| {
                        format!(
                            "unknown value {} for enum {}",
                            json::go_quote(inner),
                            e.go_name
                        )
                    })?;
                Some(Scalar::Varint(i64::from(*number) as u64))
            } else {
                parse_signed(raw, 32, &e.go_name)?.map(|v| Scalar::Varint(v as u64))
            }
        }
        Type::Bool => match json::kind(raw) {
            Kind::Null => None,
            Kind::Bool => Some(Scalar::Varint(u64::from(raw.first() == Some(&b't')))),
            kind => return Err(type_error(kind, "bool")),
        },
        Type::String => match json::kind(raw) {
            Kind::Null => None,
            Kind::String => Some(Scalar::Bytes(json::unquote(raw))),
            kind => return Err(type_error(kind, "string")),
        },
        Type::Bytes => match json::kind(raw) {
            Kind::Null => None,
            Kind::String => Some(Scalar::Bytes(json::base64_decode(&json::unquote(raw))?)),
            // Go also fills a []byte from an array of numbers.
            Kind::Array => {
                let mut bytes = Vec::new();
                for item in json::elements(raw) {
                    let item = json::literal(item);
                    let byte = match json::kind(item) {
                        Kind::Null => 0,
                        Kind::Number => parse_unsigned(item, 8, "uint8")?.unwrap_or(0) as u8,
                        kind => return Err(type_error(kind, "uint8")),
                    };
                    bytes.push(byte);
                }
                Some(Scalar::Bytes(bytes))
            }
            kind => return Err(type_error(kind, "[]uint8")),
        },
        Type::Message(_) => return Err("message is not a scalar".to_string()),
    })
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::proto::etcdserverpb::{
        Compare, LeaseGrantResponse, RangeRequest, RangeResponse, RequestOp, ResponseHeader,
        StatusResponse, TxnRequest, TxnResponse, WatchCreateRequest, WatchRequest, compare,
        range_request, request_op, response_op, watch_request,
    };
    use crate::proto::mvccpb::{Event, KeyValue, event::EventType};

    fn encode<M: Message>(name: &str, message: &M) -> String {
        to_json(Schema::get(), name, &message.encode_to_vec()).unwrap()
    }

    fn decode<M: Message + Default>(name: &str, json: &str) -> Result<M, String> {
        let wire = from_json(Schema::get(), name, json.as_bytes())?;
        Ok(M::decode(wire.as_slice()).unwrap())
    }

    fn header(revision: i64) -> Option<ResponseHeader> {
        Some(ResponseHeader {
            cluster_id: 15118495548433857066,
            member_id: 13668033151171901709,
            revision,
            raft_term: 2,
        })
    }

    #[test]
    fn a_null_element_of_a_repeated_scalar_is_its_zero_value() {
        use crate::proto::etcdserverpb::MemberAddRequest;
        // A string field's zero on the wire is an empty length-delimited
        // value, not a varint 0 (which left the request unreadable).
        let add: MemberAddRequest = decode(
            "etcdserverpb.MemberAddRequest",
            r#"{"peerURLs":["http://a:2380",null]}"#,
        )
        .unwrap();
        assert_eq!(add.peer_ur_ls, ["http://a:2380", ""]);
    }

    #[test]
    fn writes_what_etcds_gateway_writes() {
        let resp = RangeResponse {
            header: header(2),
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
        // Captured from etcd 3.4.23.
        assert_eq!(
            encode("etcdserverpb.RangeResponse", &resp),
            r#"{"header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"2","raft_term":"2"},"kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"YmFy"}],"count":"1"}"#
        );
        // A missing key: only the header.
        let empty = RangeResponse {
            header: header(2),
            ..Default::default()
        };
        assert_eq!(
            encode("etcdserverpb.RangeResponse", &empty),
            r#"{"header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"2","raft_term":"2"}}"#
        );
    }

    #[test]
    fn declared_names_uint32_and_negative_int64() {
        let grant = LeaseGrantResponse {
            header: Some(ResponseHeader {
                revision: 7,
                ..Default::default()
            }),
            id: 1234,
            ttl: -1,
            error: String::new(),
        };
        assert_eq!(
            encode("etcdserverpb.LeaseGrantResponse", &grant),
            r#"{"header":{"revision":"7"},"ID":"1234","TTL":"-1"}"#
        );
        let status = StatusResponse {
            version: "3.4.23".into(),
            db_size: 20480,
            leader: 13668033151171901709,
            errors: vec!["etcdserver: <no leader> & more".into()],
            is_learner: true,
            ..Default::default()
        };
        assert_eq!(
            encode("etcdserverpb.StatusResponse", &status),
            r#"{"version":"3.4.23","dbSize":"20480","leader":"13668033151171901709","errors":["etcdserver: \u003cno leader\u003e \u0026 more"],"isLearner":true}"#
        );
        let hash = crate::proto::etcdserverpb::HashResponse {
            header: None,
            hash: 3489827386,
        };
        assert_eq!(
            encode("etcdserverpb.HashResponse", &hash),
            r#"{"hash":3489827386}"#
        );
    }

    #[test]
    fn enums_by_name_and_oneofs_and_omitted_zeros() {
        let events = crate::proto::etcdserverpb::WatchResponse {
            header: header(10),
            events: vec![
                Event {
                    r#type: EventType::Put as i32,
                    kv: Some(KeyValue {
                        key: b"w".to_vec(),
                        ..Default::default()
                    }),
                    prev_kv: None,
                },
                Event {
                    r#type: EventType::Delete as i32,
                    kv: Some(KeyValue {
                        key: b"w".to_vec(),
                        mod_revision: 10,
                        ..Default::default()
                    }),
                    prev_kv: None,
                },
                Event {
                    r#type: 9,
                    kv: None,
                    prev_kv: None,
                },
            ],
            ..Default::default()
        };
        assert_eq!(
            encode("etcdserverpb.WatchResponse", &events),
            r#"{"header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"10","raft_term":"2"},"events":[{"kv":{"key":"dw=="}},{"type":"DELETE","kv":{"key":"dw==","mod_revision":"10"}},{"type":9}]}"#
        );
        let txn = TxnResponse {
            header: None,
            succeeded: false,
            responses: vec![crate::proto::etcdserverpb::ResponseOp {
                response: Some(response_op::Response::ResponsePut(Default::default())),
            }],
        };
        // succeeded:false is omitted; a set but empty message is `{}`.
        assert_eq!(
            encode("etcdserverpb.TxnResponse", &txn),
            r#"{"responses":[{"response_put":{}}]}"#
        );
        // A oneof member is written even when zero.
        let cmp = Compare {
            result: compare::CompareResult::Equal as i32,
            target: compare::CompareTarget::Create as i32,
            key: b"a".to_vec(),
            range_end: Vec::new(),
            target_union: Some(compare::TargetUnion::CreateRevision(0)),
        };
        assert_eq!(
            encode("etcdserverpb.Compare", &cmp),
            r#"{"target":"CREATE","key":"YQ==","create_revision":"0"}"#
        );
    }

    #[test]
    fn reads_numbers_strings_names_and_base64() {
        let req: RangeRequest = decode(
            "etcdserverpb.RangeRequest",
            r#"{"key":"Zm9v","rangeEnd":"AA==","limit":"2","revision":3,"sort_order":"DESCEND","sort_target":1,"serializable":true,"unknown":{"x":[1]},"count_only":null}"#,
        )
        .unwrap();
        assert_eq!(req.key, b"foo");
        assert_eq!(req.range_end, b"\0");
        assert_eq!((req.limit, req.revision), (2, 3));
        assert_eq!(req.sort_order, range_request::SortOrder::Descend as i32);
        assert_eq!(req.sort_target, range_request::SortTarget::Version as i32);
        assert!(req.serializable && !req.count_only);
        // Both spellings: camelCase wins.
        let req: RangeRequest = decode(
            "etcdserverpb.RangeRequest",
            r#"{"key":"YQ==","range_end":"Yg==","rangeEnd":"Yw=="}"#,
        )
        .unwrap();
        assert_eq!(req.range_end, b"c");
        // Go fills bytes from an array of numbers too.
        let req: RangeRequest = decode("etcdserverpb.RangeRequest", r#"{"key":[97,98]}"#).unwrap();
        assert_eq!(req.key, b"ab");
        // null and empty objects are empty requests.
        let req: RangeRequest = decode("etcdserverpb.RangeRequest", "null").unwrap();
        assert_eq!(req, RangeRequest::default());
    }

    #[test]
    fn reads_nested_oneofs_and_repeated_enums() {
        let txn: TxnRequest = decode(
            "etcdserverpb.TxnRequest",
            r#"{"compare":[{"key":"YQ==","result":"EQUAL","target":"CREATE","create_revision":0}],
                "success":[{"request_put":{"key":"Yg==","value":""}}],
                "failure":[{"request_txn":{"success":[{"request_range":{"key":"Yg=="}}]}}]}"#,
        )
        .unwrap();
        assert_eq!(
            txn.compare[0].target_union,
            Some(compare::TargetUnion::CreateRevision(0))
        );
        assert!(matches!(
            txn.success[0].request,
            Some(request_op::Request::RequestPut(ref p)) if p.key == b"b"
        ));
        let Some(request_op::Request::RequestTxn(nested)) = &txn.failure[0].request else {
            panic!("nested txn expected: {txn:?}");
        };
        assert!(matches!(
            nested.success[0],
            RequestOp {
                request: Some(request_op::Request::RequestRange(_))
            }
        ));
        let watch: WatchRequest = decode(
            "etcdserverpb.WatchRequest",
            r#"{"create_request":{"key":"dw==","filters":["NODELETE",0],"prev_kv":true,"watch_id":"7"}}"#,
        )
        .unwrap();
        let Some(watch_request::RequestUnion::CreateRequest(WatchCreateRequest {
            filters,
            prev_kv: true,
            watch_id: 7,
            ..
        })) = watch.request_union
        else {
            panic!("create request expected: {watch:?}");
        };
        assert_eq!(filters, [1, 0]);
    }

    #[test]
    fn input_errors_are_worded_as_go() {
        let err = |json: &str| {
            from_json(Schema::get(), "etcdserverpb.RangeRequest", json.as_bytes()).unwrap_err()
        };
        let cases = [
            (
                "[]",
                "json: cannot unmarshal array into Go value of type map[string]json.RawMessage",
            ),
            (
                r#"{"key":5}"#,
                "json: cannot unmarshal number into Go value of type []uint8",
            ),
            (
                r#"{"limit":"x"}"#,
                "invalid character 'x' looking for beginning of value",
            ),
            (
                r#"{"limit":1.5}"#,
                "json: cannot unmarshal number 1.5 into Go value of type int64",
            ),
            (
                r#"{"limit":"1e3"}"#,
                "json: cannot unmarshal number 1e3 into Go value of type int64",
            ),
            (
                r#"{"limit":99999999999999999999}"#,
                "json: cannot unmarshal number 99999999999999999999 into Go value of type int64",
            ),
            (r#"{"limit":""}"#, "unexpected end of JSON input"),
            (
                r#"{"limit":"-"}"#,
                "invalid character ' ' in numeric literal",
            ),
            (
                r#"{"limit":true}"#,
                "json: cannot unmarshal bool into Go value of type int64",
            ),
            (
                r#"{"sort_order":"BOGUS"}"#,
                r#"unknown value "BOGUS" for enum etcdserverpb.RangeRequest_SortOrder"#,
            ),
            (
                r#"{"sort_order":"A\"B"}"#,
                r#"unknown value "A\\\"B" for enum etcdserverpb.RangeRequest_SortOrder"#,
            ),
            (
                r#"{"sort_order":1.5}"#,
                "json: cannot unmarshal number 1.5 into Go value of type etcdserverpb.RangeRequest_SortOrder",
            ),
            (
                r#"{"serializable":"true"}"#,
                "json: cannot unmarshal string into Go value of type bool",
            ),
            (r#"{"key":"Zm9v!"}"#, "illegal base64 data at input byte 4"),
            (r#"{"key":"Zm9"}"#, "illegal base64 data at input byte 0"),
            (
                r#"{"key":[97,256]}"#,
                "json: cannot unmarshal number 256 into Go value of type uint8",
            ),
        ];
        for (json, message) in cases {
            assert_eq!(err(json), message, "{json}");
        }
        let txn_err = |json: &str| {
            from_json(Schema::get(), "etcdserverpb.TxnRequest", json.as_bytes()).unwrap_err()
        };
        assert_eq!(
            txn_err(r#"{"success":{}}"#),
            "json: cannot unmarshal object into Go value of type []json.RawMessage"
        );
        assert_eq!(
            txn_err(r#"{"success":5}"#),
            "json: cannot unmarshal number into Go value of type []json.RawMessage"
        );
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut json = String::new();
        for _ in 0..200 {
            json.push_str(r#"{"success":[{"request_txn":"#);
        }
        json.push_str("{}");
        for _ in 0..200 {
            json.push_str("}]}");
        }
        assert!(from_json(Schema::get(), "etcdserverpb.TxnRequest", json.as_bytes()).is_err());
    }

    /// Mangled input never panics: it decodes or gets an error.
    #[test]
    fn mangled_requests_never_panic() {
        use rand::{Rng, SeedableRng};
        let seeds = [
            r#"{"compare":[{"key":"YQ==","result":"EQUAL","target":"VALUE","value":"Mg=="}],"success":[{"request_range":{"key":"YQ==","range_end":"AA==","limit":"5"}},{"request_put":{"key":"Yg==","value":"","lease":7}}],"failure":[{"request_txn":{"success":[{"request_delete_range":{"key":[1,2]}}]}}]}"#,
            r#"{"key":"Zm9v","sort_order":"DESCEND","sort_target":1,"serializable":true,"min_mod_revision":"-3"}"#,
            r#"{"create_request":{"key":"dw==","filters":["NOPUT",1],"prev_kv":true,"watch_id":"7"}} {"cancel_request":{"watch_id":7}}"#,
        ];
        const NOISE: &[u8] = b"{}[]\",:0123456789-+.eE\\unlltrfa \t\nAZaz=/\xff\x00";
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..3000 {
            let seed = seeds[rng.random_range(0..seeds.len())];
            let mut input = seed.as_bytes().to_vec();
            for _ in 0..rng.random_range(1..6) {
                let at = rng.random_range(0..input.len());
                match rng.random_range(0..3) {
                    0 => input[at] = NOISE[rng.random_range(0..NOISE.len())],
                    1 => {
                        input.remove(at);
                    }
                    _ => input.insert(at, NOISE[rng.random_range(0..NOISE.len())]),
                }
                if input.is_empty() {
                    break;
                }
            }
            let mut decoder = json::Decoder::new();
            decoder.push(&input);
            while let Ok(json::Read::Value(raw)) = decoder.next(true) {
                for name in [
                    "etcdserverpb.TxnRequest",
                    "etcdserverpb.RangeRequest",
                    "etcdserverpb.WatchRequest",
                ] {
                    if let Ok(wire) = from_json(Schema::get(), name, &raw) {
                        let _ = to_json(Schema::get(), name, &wire);
                    }
                }
            }
        }
    }

    #[test]
    fn round_trips_every_scalar_kind() {
        let req = RangeRequest {
            key: vec![0, 255, 1],
            range_end: b"z".to_vec(),
            limit: -5,
            revision: i64::MAX,
            sort_order: 1,
            sort_target: 4,
            serializable: true,
            keys_only: true,
            count_only: false,
            min_mod_revision: i64::MIN,
            max_mod_revision: 1,
            min_create_revision: 2,
            max_create_revision: 3,
        };
        let json = encode("etcdserverpb.RangeRequest", &req);
        let back: RangeRequest = decode("etcdserverpb.RangeRequest", &json).unwrap();
        assert_eq!(back, req);
    }
}
