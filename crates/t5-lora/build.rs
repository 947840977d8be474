//! `cfg(wgpu_backend)`: the wgpu backend is compiled in, through the `wgpu` feature or, on a
//! Mac, always (Cargo.toml's macOS dependency on burn/wgpu). A feature cannot depend on the
//! target, so the code asks this cfg instead.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(wgpu_backend)");
    let macos = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "macos");
    if macos || std::env::var_os("CARGO_FEATURE_WGPU").is_some() {
        println!("cargo::rustc-cfg=wgpu_backend");
    }
}
