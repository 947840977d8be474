//! The `--device cpu|wgpu|ndarray|tch` choice every binary offers.
//!
//! Burn 0.22 picks the backend at run time through its [`Device`]; `Device::default()` would
//! prefer a GPU (or libtorch) whenever one is compiled in, so the choice is made explicitly here.
//! `cpu` (burn-flex) is always there; the others need their cargo feature.

use std::fmt;
use std::str::FromStr;

use burn::prelude::Device;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Where tensors live and kernels run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// The CPU, through `burn-flex` (multi-threaded `gemm` kernels): the fastest CPU backend
    /// that builds without system libraries (docs/performance.md).
    #[default]
    Cpu,
    /// The GPU through `burn-wgpu`: Metal on a Mac, Vulkan elsewhere. Needs the `wgpu` feature.
    Wgpu,
    /// The CPU through `burn-ndarray`, with the system's OpenBLAS for matrix products when built
    /// with the `openblas` feature. Needs the `ndarray` feature.
    Ndarray,
    /// libtorch 2.9 on the CPU (found through `LIBTORCH`; a pip-installed torch 2.9 carries one).
    /// Needs the `tch` feature.
    Tch,
}

impl DeviceChoice {
    /// Every choice, in the order `--help` lists them.
    pub const ALL: [DeviceChoice; 4] = [
        DeviceChoice::Cpu,
        DeviceChoice::Wgpu,
        DeviceChoice::Ndarray,
        DeviceChoice::Tch,
    ];

    /// The Burn device, or an error naming the cargo feature a build lacks.
    pub fn device(self) -> Result<Device> {
        match self {
            DeviceChoice::Cpu => Ok(Device::flex()),
            #[cfg(feature = "wgpu")]
            DeviceChoice::Wgpu => Ok(Device::wgpu(Default::default())),
            // Deprecated upstream in favour of flex; kept for the comparison of backends.
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)]
            DeviceChoice::Ndarray => Ok(Device::ndarray()),
            #[cfg(feature = "tch")]
            DeviceChoice::Tch => Ok(Device::libtorch()),
            #[allow(unreachable_patterns)] // every backend compiled in
            missing => Err(Error::Device(format!(
                "this build has no {missing} backend: build with `--features {missing}`"
            ))),
        }
    }

    /// The name `--device` and the config files use.
    pub fn name(self) -> &'static str {
        match self {
            DeviceChoice::Cpu => "cpu",
            DeviceChoice::Wgpu => "wgpu",
            DeviceChoice::Ndarray => "ndarray",
            DeviceChoice::Tch => "tch",
        }
    }
}

impl FromStr for DeviceChoice {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|choice| choice.name() == text)
            .ok_or_else(|| {
                Error::Device(format!(
                    "unknown device {text:?}: expected cpu, wgpu, ndarray or tch"
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
        let message = "cuda"
            .parse::<DeviceChoice>()
            .expect_err("unknown")
            .to_string();
        assert!(message.contains("\"cuda\""), "{message}");
        assert!(message.contains("cpu, wgpu, ndarray or tch"), "{message}");
    }

    #[cfg(not(feature = "tch"))]
    #[test]
    fn a_backend_left_out_of_the_build_names_its_feature() {
        let message = DeviceChoice::Tch
            .device()
            .expect_err("not compiled in")
            .to_string();
        assert!(message.contains("`--features tch`"), "{message}");
    }
}
