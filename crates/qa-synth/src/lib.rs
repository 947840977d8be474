//! Synthetic question/answer generation from human seed records, through a local T5 or an OpenAI-compatible endpoint.
