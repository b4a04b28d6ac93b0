//! Generates the GrpcEcho client and server from `proto/grpcecho.proto` with protox (no
//! `protoc` needed on the machine).

fn main() {
    let proto = "proto/grpcecho.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds =
        protox::compile([proto], ["proto"]).unwrap_or_else(|e| panic!("compiling {proto}: {e:?}"));
    tonic_prost_build::configure()
        .compile_fds(fds)
        .unwrap_or_else(|e| panic!("generating GrpcEcho code: {e}"));
}
