//! The `--device auto|cpu|cuda|wgpu|ndarray|tch` choice every binary offers, and the probe
//! behind `auto`.
//!
//! Burn 0.22 picks the backend at run time through its [`Device`]; `Device::default()` would
//! take whatever GPU (or libtorch) is compiled in, software rasterisers included, so the choice
//! is made here. `cpu` (burn-flex) is always there; the others need their cargo feature.
//!
//! `auto` takes, in order: the first CUDA device (with the `cuda` feature and an NVIDIA
//! driver), the first wgpu adapter that is a real GPU (with the `wgpu` feature: Metal on a
//! Mac, Vulkan elsewhere), and otherwise the CPU. A software rasteriser (llvmpipe, lavapipe,
//! WARP) is slower than the CPU backend, so `auto` never takes one; `wgpu` named explicitly
//! does.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use burn::prelude::Device;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Where tensors live and kernels run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// The best device this build and machine have (see the module's documentation).
    #[default]
    Auto,
    /// The CPU, through `burn-flex` (multi-threaded `gemm` kernels): the fastest CPU backend
    /// that builds without system libraries (docs/performance.md).
    Cpu,
    /// An NVIDIA GPU through Burn's CUDA backend (the driver and NVRTC loaded at run time).
    /// Needs the `cuda` feature.
    Cuda,
    /// The GPU through `burn-wgpu`: Metal on a Mac, Vulkan elsewhere, and a software Vulkan
    /// device (lavapipe) where that is all there is. Needs the `wgpu` feature.
    Wgpu,
    /// The CPU through `burn-ndarray`, with the system's OpenBLAS for matrix products when built
    /// with the `openblas` feature. Needs the `ndarray` feature.
    Ndarray,
    /// libtorch 2.9 on the CPU (found through `LIBTORCH`; a pip-installed torch 2.9 carries one).
    /// Needs the `tch` feature.
    Tch,
}

/// A device that was chosen and opened.
#[derive(Debug, Clone)]
pub struct ResolvedDevice {
    /// The backend, never [`DeviceChoice::Auto`].
    pub backend: DeviceChoice,
    /// Burn's device.
    pub device: Device,
    /// What it is, for logs and records: `cuda:0 (NVIDIA H100 80GB HBM3)`, `cpu (burn-flex,
    /// 2 threads)`.
    pub name: String,
}

impl ResolvedDevice {
    /// Whether the work runs on the CPU (burn-flex, burn-ndarray or libtorch's CPU build).
    pub fn is_cpu(&self) -> bool {
        matches!(
            self.backend,
            DeviceChoice::Cpu | DeviceChoice::Ndarray | DeviceChoice::Tch
        )
    }
}

impl DeviceChoice {
    /// Every choice, in the order `--help` lists them.
    pub const ALL: [DeviceChoice; 6] = [
        DeviceChoice::Auto,
        DeviceChoice::Cpu,
        DeviceChoice::Cuda,
        DeviceChoice::Wgpu,
        DeviceChoice::Ndarray,
        DeviceChoice::Tch,
    ];

    /// The device, with `auto` resolved by probing this machine, or an error naming the cargo
    /// feature a build lacks.
    pub fn resolve(self) -> Result<ResolvedDevice> {
        match self {
            DeviceChoice::Auto => {
                let (found, mut devices): (Vec<Found>, Vec<Device>) = probe().into_iter().unzip();
                for skipped in found.iter().filter(|found| found.software) {
                    tracing::info!(
                        device = %skipped.label(),
                        "auto passes over a software rasteriser (ask for it with --device wgpu)"
                    );
                }
                Ok(match auto_choice(&found) {
                    Some(pick) => found[pick].resolved(devices.swap_remove(pick)),
                    None => cpu(),
                })
            }
            DeviceChoice::Cpu => Ok(cpu()),
            #[cfg(feature = "cuda")]
            DeviceChoice::Cuda => named(self, probe()),
            #[cfg(wgpu_backend)]
            DeviceChoice::Wgpu => named(self, probe()),
            // Deprecated upstream in favour of flex; kept for the comparison of backends.
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)]
            DeviceChoice::Ndarray => Ok(ResolvedDevice {
                backend: self,
                device: Device::ndarray(),
                name: "ndarray (burn-ndarray)".to_string(),
            }),
            #[cfg(feature = "tch")]
            #[allow(deprecated)]
            DeviceChoice::Tch => Ok(ResolvedDevice {
                backend: self,
                device: Device::libtorch(),
                name: "tch (libtorch, CPU)".to_string(),
            }),
            #[allow(unreachable_patterns)] // every backend compiled in
            missing => Err(Error::Device(format!(
                "this build has no {missing} backend: build with `--features {missing}`"
            ))),
        }
    }

    /// Burn's device for this choice (see [`DeviceChoice::resolve`]).
    pub fn device(self) -> Result<Device> {
        self.resolve().map(|resolved| resolved.device)
    }

    /// The name `--device` and the config files use.
    pub fn name(self) -> &'static str {
        match self {
            DeviceChoice::Auto => "auto",
            DeviceChoice::Cpu => "cpu",
            DeviceChoice::Cuda => "cuda",
            DeviceChoice::Wgpu => "wgpu",
            DeviceChoice::Ndarray => "ndarray",
            DeviceChoice::Tch => "tch",
        }
    }

    /// The backends this build has, besides `auto`.
    pub fn compiled_in() -> Vec<DeviceChoice> {
        Self::ALL
            .into_iter()
            .filter(|choice| match choice {
                DeviceChoice::Auto => false,
                DeviceChoice::Cpu => true,
                DeviceChoice::Cuda => cfg!(feature = "cuda"),
                DeviceChoice::Wgpu => cfg!(wgpu_backend),
                DeviceChoice::Ndarray => cfg!(feature = "ndarray"),
                DeviceChoice::Tch => cfg!(feature = "tch"),
            })
            .collect()
    }
}

/// The CPU backend, named with its thread count.
fn cpu() -> ResolvedDevice {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    ResolvedDevice {
        backend: DeviceChoice::Cpu,
        device: Device::flex(),
        name: format!("cpu (burn-flex, {threads} threads)"),
    }
}

/// The device of `backend` asked for by name among those probed: its first real GPU, else
/// its first software one (lavapipe, for tests without a GPU).
#[cfg(any(feature = "cuda", wgpu_backend))]
fn named(backend: DeviceChoice, probed: Vec<(Found, Device)>) -> Result<ResolvedDevice> {
    let (found, mut devices): (Vec<Found>, Vec<Device>) = probed
        .into_iter()
        .filter(|(found, _)| found.backend == backend)
        .unzip();
    let pick = found
        .iter()
        .position(|found| !found.software)
        .or((!found.is_empty()).then_some(0))
        .ok_or_else(|| {
            Error::Device(match backend {
                DeviceChoice::Cuda => "--device cuda: no CUDA device answers (is the NVIDIA \
                                       driver installed and libcuda on the loader's path?)"
                    .to_string(),
                _ => "--device wgpu: no wgpu adapter found (a GPU driver with Vulkan or Metal; \
                      Mesa's lavapipe gives a software one)"
                    .to_string(),
            })
        })?;
    Ok(found[pick].resolved(devices.swap_remove(pick)))
}

/// A GPU the probe behind `auto` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// [`DeviceChoice::Cuda`] or [`DeviceChoice::Wgpu`].
    pub backend: DeviceChoice,
    /// Its place among its backend's devices.
    pub index: usize,
    /// The name it gives itself.
    pub name: String,
    /// A software rasteriser (no card behind it).
    pub software: bool,
}

impl Found {
    /// `cuda:0 (NVIDIA H100 80GB HBM3)`.
    pub fn label(&self) -> String {
        format!("{}:{} ({})", self.backend, self.index, self.name)
    }

    /// This device, opened as `device`.
    fn resolved(&self, device: Device) -> ResolvedDevice {
        ResolvedDevice {
            backend: self.backend,
            device,
            name: self.label(),
        }
    }
}

/// `auto`'s pick among the devices found (its index there): the first CUDA device, else the
/// first wgpu adapter that is not a software rasteriser; `None` means the CPU.
pub fn auto_choice(found: &[Found]) -> Option<usize> {
    let first = |backend| {
        found
            .iter()
            .position(|device| device.backend == backend && !device.software)
    };
    first(DeviceChoice::Cuda).or_else(|| first(DeviceChoice::Wgpu))
}

/// The GPUs of the backends compiled in, CUDA first, each with Burn's device for it. The
/// machine is probed once per process (each device opened once to ask its name).
pub fn probe() -> Vec<(Found, Device)> {
    static PROBED: OnceLock<Vec<(Found, Device)>> = OnceLock::new();
    PROBED.get_or_init(probe_machine).clone()
}

fn probe_machine() -> Vec<(Found, Device)> {
    #[allow(unused_mut)] // empty in a CPU-only build
    let mut found = Vec::new();
    #[cfg(feature = "cuda")]
    found.extend(found_devices(
        DeviceChoice::Cuda,
        burn::tensor::DeviceType::Cuda,
    ));
    #[cfg(wgpu_backend)]
    found.extend(found_devices(
        DeviceChoice::Wgpu,
        burn::tensor::DeviceType::Wgpu,
    ));
    found
}

#[cfg(any(feature = "cuda", wgpu_backend))]
fn found_devices(backend: DeviceChoice, kind: burn::tensor::DeviceType) -> Vec<(Found, Device)> {
    Device::enumerate(kind)
        .into_iter()
        .enumerate()
        .map(|(index, device)| {
            let identity = device.identity();
            let found = Found {
                backend,
                index,
                name: identity
                    .as_ref()
                    .map_or_else(|| "unnamed".to_string(), |id| id.name.clone()),
                // cubecl reports no card behind a CPU device or a software rasteriser.
                software: identity.is_none_or(|id| id.physical.is_none()),
            };
            (found, device)
        })
        .collect()
}

impl FromStr for DeviceChoice {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|choice| choice.name() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|choice| choice.name()).collect();
                Error::Device(format!(
                    "unknown device {text:?}: expected one of {}",
                    names.join(", ")
                ))
            })
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(backend: DeviceChoice, index: usize, name: &str, software: bool) -> Found {
        Found {
            backend,
            index,
            name: name.to_string(),
            software,
        }
    }

    fn picked(found: &[Found]) -> Option<(DeviceChoice, String)> {
        auto_choice(found).map(|pick| (found[pick].backend, found[pick].label()))
    }

    #[test]
    fn every_name_parses_back_and_serialises_the_same() {
        for choice in DeviceChoice::ALL {
            let parsed: DeviceChoice = choice.name().parse().expect("a known name");
            assert_eq!(parsed, choice);
            let json = serde_json::to_string(&choice).expect("serialises");
            assert_eq!(json, format!("\"{}\"", choice.name()));
        }
    }

    #[test]
    fn an_unknown_name_lists_the_choices() {
        let message = "metal"
            .parse::<DeviceChoice>()
            .expect_err("unknown")
            .to_string();
        assert!(message.contains("\"metal\""), "{message}");
        assert!(
            message.contains("auto, cpu, cuda, wgpu, ndarray, tch"),
            "{message}"
        );
    }

    #[test]
    fn auto_takes_cuda_then_a_real_wgpu_adapter_then_the_cpu() {
        let cuda = found(DeviceChoice::Cuda, 0, "NVIDIA H100 80GB HBM3", false);
        let metal = found(DeviceChoice::Wgpu, 0, "Apple M3 Max", false);
        let lavapipe = found(
            DeviceChoice::Wgpu,
            0,
            "llvmpipe (LLVM 15.0.6, 256 bits)",
            true,
        );
        // Nothing found, or only a software rasteriser: the CPU.
        assert_eq!(picked(&[]), None);
        assert_eq!(picked(std::slice::from_ref(&lavapipe)), None);
        // A real adapter, wherever a software one is listed beside it.
        let mut metal_second = metal.clone();
        metal_second.index = 1;
        assert_eq!(
            picked(&[lavapipe.clone(), metal_second]),
            Some((DeviceChoice::Wgpu, "wgpu:1 (Apple M3 Max)".to_string()))
        );
        // CUDA before wgpu, whichever the probe listed first (the same card under Vulkan).
        assert_eq!(
            picked(&[metal.clone(), cuda.clone()]),
            Some((
                DeviceChoice::Cuda,
                "cuda:0 (NVIDIA H100 80GB HBM3)".to_string()
            ))
        );
        assert_eq!(
            picked(&[lavapipe, cuda, metal]),
            Some((
                DeviceChoice::Cuda,
                "cuda:0 (NVIDIA H100 80GB HBM3)".to_string()
            ))
        );
    }

    #[test]
    fn auto_on_this_build_and_machine_names_the_device_it_took() {
        let resolved = DeviceChoice::Auto.resolve().expect("auto always resolves");
        assert_ne!(resolved.backend, DeviceChoice::Auto);
        assert!(
            DeviceChoice::compiled_in().contains(&resolved.backend),
            "{resolved:?}"
        );
        // The machine's own answer: a real GPU where the probe found one, else the CPU.
        let found: Vec<Found> = probe().into_iter().map(|(found, _)| found).collect();
        let expected = auto_choice(&found).map_or(DeviceChoice::Cpu, |pick| found[pick].backend);
        assert_eq!(resolved.backend, expected);
        assert!(
            resolved.name.starts_with(expected.name()),
            "{}",
            resolved.name
        );
    }

    #[cfg(any(feature = "cuda", wgpu_backend))]
    #[test]
    fn a_gpu_backend_asked_for_where_none_answers_says_so() {
        let message = named(DeviceChoice::Wgpu, Vec::new())
            .expect_err("nothing found")
            .to_string();
        assert!(message.contains("no wgpu adapter found"), "{message}");
    }

    #[cfg(not(feature = "tch"))]
    #[test]
    fn a_backend_left_out_of_the_build_names_its_feature() {
        let message = DeviceChoice::Tch
            .resolve()
            .expect_err("not compiled in")
            .to_string();
        assert!(message.contains("`--features tch`"), "{message}");
    }
}
