//! FLAN-T5 (T5 v1.0 and v1.1) with LoRA adapters in Burn: checkpoint loading, generation and fine-tuning.
