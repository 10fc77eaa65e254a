//! Generates the etcd v3 wire types from `proto/etcd` at build time.
//!
//! `protox` parses the .proto files in pure Rust (no system `protoc`), and
//! `tonic-prost-build` turns the resulting descriptor set into prost messages
//! plus tonic servers and clients. The encoded descriptor set is also written
//! to `OUT_DIR/etcd_descriptor.bin` for gRPC reflection and the JSON gateway.

use std::path::PathBuf;

use protox::prost::Message as _;

const PROTO_ROOT: &str = "proto/etcd";

const PROTO_FILES: &[&str] = &[
    "mvccpb/kv.proto",
    "authpb/auth.proto",
    "etcdserverpb/rpc.proto",
    "v3lockpb/v3lock.proto",
    "v3electionpb/v3election.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    for file in PROTO_FILES {
        println!("cargo:rerun-if-changed={PROTO_ROOT}/{file}");
    }

    let fds = protox::compile(PROTO_FILES, [PROTO_ROOT])?;

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("etcd_descriptor.bin"), fds.encode_to_vec())?;

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;

    Ok(())
}
