//! Compiles the wire protocols with protox (pure Rust, no system protoc):
//! - `proto/loupe/v1/loupe.proto`: Loupe's own Processor / Source services;
//! - `proto/nifi/flowfile_service.proto`: NiFi 1.x's `FlowFileService` (InvokeGRPC);
//! - `proto/inference/grpc_service.proto`: the Open Inference Protocol (KServe v2).
//!
//! Each gets its own encoded descriptor set in `OUT_DIR` (for server reflection) and its
//! generated messages and stubs.
use std::path::{Path, PathBuf};

/// One proto file: path under `proto/`, descriptor file name, `bytes` fields (zero-copy).
struct Proto {
    file: &'static str,
    descriptor: &'static str,
    bytes_fields: &'static [&'static str],
}

const PROTOS: &[Proto] = &[
    Proto {
        file: "loupe/v1/loupe.proto",
        descriptor: "loupe_descriptor.bin",
        bytes_fields: &[".loupe.v1.FlowFile.content"],
    },
    Proto {
        file: "nifi/flowfile_service.proto",
        descriptor: "nifi_descriptor.bin",
        bytes_fields: &[".org.apache.nifi.processors.grpc.FlowFileRequest.content"],
    },
    // The Open Inference Protocol (KServe v2): served by model nodes, called by `classify`.
    Proto {
        file: "inference/grpc_service.proto",
        descriptor: "inference_descriptor.bin",
        bytes_fields: &[
            ".inference.ModelInferRequest.raw_input_contents",
            ".inference.ModelInferResponse.raw_output_contents",
        ],
    },
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    for proto in PROTOS {
        compile(&root, &out, proto)?;
    }
    Ok(())
}

fn compile(root: &Path, out: &Path, proto: &Proto) -> Result<(), Box<dyn std::error::Error>> {
    let file = root.join(proto.file);
    println!("cargo:rerun-if-changed={}", file.display());
    let fds = protox::compile([&file], [root])?;
    std::fs::write(
        out.join(proto.descriptor),
        prost::Message::encode_to_vec(&fds),
    )?;
    let mut builder = tonic_prost_build::configure();
    for field in proto.bytes_fields {
        builder = builder.bytes(field);
    }
    builder.compile_fds(fds)?;
    Ok(())
}
