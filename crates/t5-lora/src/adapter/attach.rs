//! Attaching adapters to a model, removing them, folding them into the base weights, and the
//! parameters training updates.

use burn::module::{Module, Param};
use burn::prelude::*;

use crate::error::{Error, Result};
use crate::lora::LoraConfig;
use crate::model::T5ForConditionalGeneration;

impl T5ForConditionalGeneration {
    /// Freezes every pretrained weight and attaches a new adapter to each targeted projection
    /// of every block (self- and cross-attention alike, as PEFT matches names).
    pub fn with_lora(self, config: &LoraConfig) -> Result<Self> {
        config.validate()?;
        let mut model = self.set_require_grad(false);
        let mut attached = 0;
        for (name, layer) in model.projections_mut() {
            if config.target_modules.iter().any(|t| t == name) {
                layer.attach(config);
                attached += 1;
            }
        }
        if attached == 0 {
            return Err(Error::Lora(format!(
                "none of the target modules {:?} exists in this model (a gated feed-forward \
                 has wi_0 and wi_1, a plain one wi)",
                config.target_modules
            )));
        }
        Ok(model)
    }

    /// The model without its adapters (the base weights as loaded).
    pub fn strip_lora(mut self) -> Self {
        for (_, layer) in self.projections_mut() {
            layer.lora = None;
        }
        self
    }

    /// Folds every adapter into its base weight, for inference at the base model's speed.
    pub fn merge_lora(mut self) -> Self {
        for (_, layer) in self.projections_mut() {
            layer.merge();
        }
        self
    }

    /// The adapters' parameters, `lora_A` then `lora_B` of each adapter in model order: what
    /// training updates, clips and checkpoints.
    pub fn adapter_params_mut(&mut self) -> Vec<&mut Param<Tensor<2>>> {
        self.projections_mut()
            .into_iter()
            .filter_map(|(_, layer)| layer.lora.as_mut())
            .flat_map(|adapter| [&mut adapter.lora_a.weight, &mut adapter.lora_b.weight])
            .collect()
    }
}
