//! `cfg(wgpu_backend)`: the wgpu backend is compiled in, through the `wgpu` feature or, on a
//! Mac, always (Cargo.toml's macOS dependency on burn/wgpu). A feature cannot depend on the
//! target, so the code asks this cfg instead.
//!
//! The `openblas-matmul` feature links the system's OpenBLAS (Debian's libopenblas-dev), whose
//! `cblas_sgemm` ndarray's `blas` feature calls. This is openblas-src's `system` mode in one line:
//! that crate's build dependencies would switch features on in Burn's own build dependencies
//! and so rebuild all of Burn for the feature.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(wgpu_backend)");
    let macos = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "macos");
    if macos || std::env::var_os("CARGO_FEATURE_WGPU").is_some() {
        println!("cargo::rustc-cfg=wgpu_backend");
    }
    if std::env::var_os("CARGO_FEATURE_OPENBLAS_MATMUL").is_some() {
        println!("cargo::rustc-link-lib=openblas");
    }
}
