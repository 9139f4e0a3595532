//! Link settings of the `recorderd` binary.
//!
//! Position-independent code needs every pointer in its constant tables
//! fixed up at start-up. Stored one entry each (`.rela.dyn`, about 1.2 MB
//! here), they are read in full by the dynamic loader and stay resident
//! for the server's whole life; packed as runs of relative offsets
//! (`DT_RELR`, glibc 2.36 and later, GNU ld 2.38 and later: Debian
//! bookworm's, which the container image builds and runs on) they take a
//! few KiB. The code is the same.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
