//! Compiles `proto/harbinger/v1/*.proto` with protox (pure Rust, no protoc) into client and
//! server code, and writes the file descriptor set that server reflection serves.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time: a build-script binary reused from another checkout must not point
    // at that checkout's files.
    let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    println!("cargo:rerun-if-changed={}", root.display());
    let files = ["common", "risk", "ingest", "admin", "shadow", "change"].map(|f| root.join(format!("harbinger/v1/{f}.proto")));
    let fds = protox::compile(&files, [&root])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("harbinger_v1_descriptor.bin"), prost::Message::encode_to_vec(&fds))?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(fds)?;
    Ok(())
}
