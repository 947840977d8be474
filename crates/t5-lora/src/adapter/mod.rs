//! A model's LoRA adapters ([`crate::lora`]) as a whole: attaching them to every targeted
//! projection, removing or merging them, the parameters training updates ([`attach`]), and
//! their files in PEFT's format ([`peft`]).

mod attach;
mod peft;

pub use peft::{
    ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, load_adapter, read_adapter_config, save_adapter,
};
