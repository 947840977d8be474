//! The `--device cpu|wgpu` choice every binary offers.
//!
//! Burn 0.22 picks the backend at run time through its [`Device`]; `Device::default()` would
//! prefer a GPU whenever one is compiled in, so the choice is made explicitly here.

use std::fmt;
use std::str::FromStr;

use burn::prelude::Device;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Where tensors live and kernels run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// The CPU, through `burn-flex` (multi-threaded `gemm` kernels).
    #[default]
    Cpu,
    /// The GPU through `burn-wgpu`: Metal on a Mac, Vulkan elsewhere. Needs the `wgpu` feature.
    Wgpu,
}

impl DeviceChoice {
    /// The Burn device, or an error naming the cargo feature a build lacks.
    pub fn device(self) -> Result<Device> {
        match self {
            DeviceChoice::Cpu => Ok(Device::flex()),
            #[cfg(feature = "wgpu")]
            DeviceChoice::Wgpu => Ok(Device::wgpu(Default::default())),
            #[cfg(not(feature = "wgpu"))]
            DeviceChoice::Wgpu => Err(Error::Device(
                "this build has no GPU support: build with `--features wgpu`".to_string(),
            )),
        }
    }
}

impl FromStr for DeviceChoice {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "cpu" => Ok(DeviceChoice::Cpu),
            "wgpu" => Ok(DeviceChoice::Wgpu),
            other => Err(Error::Device(format!(
                "unknown device {other:?}: expected cpu or wgpu"
            ))),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceChoice::Cpu => "cpu",
            DeviceChoice::Wgpu => "wgpu",
        })
    }
}
