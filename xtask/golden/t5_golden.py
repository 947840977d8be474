#!/usr/bin/env python3
"""Golden fixtures for t5-lora, made by Hugging Face transformers itself.

Builds small random-initialised T5 models from fixed seeds, in both families:
  - t5-v1_0-tiny:  T5 v1.0 (ReLU feed-forward, lm_head tied to the shared embedding, so the
                   decoder output is rescaled by d_model**-0.5);
  - flan-t5-tiny:  T5 v1.1 / FLAN-T5 (gated-GELU with the tanh approximation, untied lm_head),
                   with more decoder than encoder layers and inner_dim != d_model;
saves each with save_pretrained (config.json, model.safetensors), plus a sharded copy
(model.safetensors.index.json) and bf16 and f16 copies of flan-t5-tiny, a tiny real tokenizer.json
(a Unigram model trained on SQuAD text with T5's special tokens), and for each model a
reference.safetensors holding, for a padded batch of inputs of different lengths:
  input_ids, attention_mask, decoder_input_ids, decoder_lengths   the inputs,
  encoder_hidden_states                                          the encoder output,
  logits                                                         teacher-forced logits,
  greedy, beam, beam_no_early_stop, beam_length_penalty         generate() outputs,
  and relative-position buckets over -200..200 (bidirectional and causal).

A PEFT LoRA adapter on flan-t5-tiny (flan-t5-tiny-lora/) comes with HF's outputs with the
adapter applied; --verify-adapter DIR checks the other direction (an adapter saved by t5-lora
loads in PEFT and reproduces t5-lora's logits).

Usage (run by `cargo xtask golden`): python3 xtask/golden/t5_golden.py [--out fixtures/t5]
       python3 xtask/golden/t5_golden.py --verify-adapter DIR
Needs torch, transformers<5 (v5 rewrites T5 configs to tied embeddings), peft, safetensors,
tokenizers.
"""
import argparse
import copy
import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import DynamicCache, EncoderDecoderCache, T5Config, T5ForConditionalGeneration
from transformers.models.t5.modeling_t5 import T5Attention

ROOT = Path(__file__).resolve().parents[2]
VOCAB = 256
MAX_NEW_TOKENS = 24

CONFIGS = {
    "t5-v1_0-tiny": dict(
        vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2,
        num_heads=4, feed_forward_proj="relu", tie_word_embeddings=True, seed=14, layer_scale=4.0,
        eos_boost=1.0,
    ),
    "flan-t5-tiny": dict(
        vocab_size=VOCAB, d_model=48, d_kv=16, d_ff=96, num_layers=2, num_decoder_layers=3,
        num_heads=4, feed_forward_proj="gated-gelu", tie_word_embeddings=False, seed=2, layer_scale=2.5,
        eos_boost=2.5,
    ),
}


def make_model(name, spec):
    spec = dict(spec)
    seed = spec.pop("seed")
    layer_scale = spec.pop("layer_scale")
    eos_boost = spec.pop("eos_boost")
    torch.manual_seed(seed)
    config = T5Config(
        relative_attention_num_buckets=32, relative_attention_max_distance=128,
        dropout_rate=0.0, layer_norm_epsilon=1e-6, initializer_factor=1.0,
        pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, **spec,
    )
    model = T5ForConditionalGeneration(config).eval()
    # At HF's initial scale a tiny random T5's residual stream is dominated by the input
    # embedding, so a tied head predicts the input token again and greedy decoding repeats
    # <pad> for ever. Larger attention and feed-forward weights make the layers matter and the
    # generations varied, which is what the fixtures need to exercise. The scale and seed of
    # each model were picked so that generations vary and reach </s> in some rows, while HF's
    # own f32 logits stay within 5e-5 of its f64 ones (a larger scale makes the tiny models
    # ill-conditioned).
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(("q.weight", "k.weight", "v.weight", "o.weight")) or ".DenseReluDense." in name:
                param.mul_(layer_scale)
        if not config.tie_word_embeddings:
            model.lm_head.weight.normal_(0.0, config.d_model**-0.5)
            # A likelier </s> makes beams finish early, so that beam search's stopping rules
            # (early stopping, and the "cannot improve" heuristic without it) are exercised.
            model.lm_head.weight[config.eos_token_id] *= eos_boost
    return model


def inputs():
    g = torch.Generator().manual_seed(7)
    lengths = [9, 14, 5]
    ids = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, : n - 1] = torch.randint(3, VOCAB, (n - 1,), generator=g)
        ids[row, n - 1] = 1  # </s>
        mask[row, :n] = 1
    target_lengths = [6, 11, 8]
    labels = torch.full((len(target_lengths), max(target_lengths)), -100, dtype=torch.long)
    for row, n in enumerate(target_lengths):
        labels[row, : n - 1] = torch.randint(3, VOCAB, (n - 1,), generator=g)
        labels[row, n - 1] = 1
    return ids, mask, labels, torch.tensor(target_lengths)


def buckets():
    rel = torch.arange(-200, 201)
    return {
        "relative_positions": rel,
        "buckets_bidirectional": T5Attention._relative_position_bucket(rel, True, 32, 128),
        "buckets_causal": T5Attention._relative_position_bucket(rel, False, 32, 128),
    }


def reference(model, ids, mask, labels, target_lengths):
    with torch.no_grad():
        decoder_input_ids = model._shift_right(labels)
        out = model(input_ids=ids, attention_mask=mask, decoder_input_ids=decoder_input_ids)
        # An explicit cache: the default one is sized by `num_layers` and breaks when the decoder
        # is deeper than the encoder (transformers 4.57).
        greedy = model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=MAX_NEW_TOKENS, do_sample=False,
            num_beams=1, past_key_values=EncoderDecoderCache(DynamicCache(), DynamicCache()),
        )
        beam = model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=MAX_NEW_TOKENS, do_sample=False,
            num_beams=4, length_penalty=1.0, early_stopping=True,
            past_key_values=EncoderDecoderCache(DynamicCache(), DynamicCache()),
        )
        # HF's other stopping rule: without early stopping, search goes on while a running beam
        # could still beat the worst finished one; once with the default length penalty (on
        # flan-t5-tiny this stops some inputs before max_new_tokens, with a result that differs
        # from both early_stopping=True and "never"), once with one that favours length.
        beam_no_early_stop = model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=MAX_NEW_TOKENS, do_sample=False,
            num_beams=2, length_penalty=1.0, early_stopping=False,
            past_key_values=EncoderDecoderCache(DynamicCache(), DynamicCache()),
        )
        beam_length_penalty = model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=MAX_NEW_TOKENS, do_sample=False,
            num_beams=3, length_penalty=2.0, early_stopping=False,
            past_key_values=EncoderDecoderCache(DynamicCache(), DynamicCache()),
        )
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "decoder_input_ids": decoder_input_ids,
        "decoder_lengths": target_lengths,
        "encoder_hidden_states": out.encoder_last_hidden_state.contiguous(),
        "logits": out.logits.contiguous(),
        "greedy": greedy.contiguous(),
        "beam": beam.contiguous(),
        "beam_no_early_stop": beam_no_early_stop.contiguous(),
        "beam_length_penalty": beam_length_penalty.contiguous(),
    }


LORA = dict(r=4, lora_alpha=8, target_modules=["q", "v", "wi_0"], lora_dropout=0.0)


def save_peft_adapter(out, ids, mask, labels, target_lengths):
    """A PEFT LoRA adapter on flan-t5-tiny (q and v of every attention, self and cross, and the
    gated feed-forward's wi_0), saved by PeftModel.save_pretrained, with HF's outputs with the
    adapter applied. B is random (PEFT initialises it to zero, which would hide any mistake)."""
    from peft import LoraConfig, get_peft_model

    model = make_model("flan-t5-tiny", CONFIGS["flan-t5-tiny"])
    peft_model = get_peft_model(model, LoraConfig(bias="none", task_type="SEQ_2_SEQ_LM", **LORA))
    torch.manual_seed(3)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.1)
    adapter_dir = out / "flan-t5-tiny-lora"
    peft_model.save_pretrained(adapter_dir)
    (adapter_dir / "README.md").unlink()  # PEFT's empty model card
    peft_model.eval()
    save_file(reference(peft_model.base_model.model, ids, mask, labels, target_lengths),
              adapter_dir / "reference.safetensors")


def verify_adapter(adapter_dir):
    """The other direction: an adapter saved by t5-lora (with the logits t5-lora computed for the
    reference batch in `rust_logits.safetensors`) loads in PEFT and gives the same logits."""
    from peft import PeftModel
    from safetensors.torch import load_file

    base = T5ForConditionalGeneration.from_pretrained(ROOT / "fixtures/t5/flan-t5-tiny").eval()
    model = PeftModel.from_pretrained(base, adapter_dir).eval()
    ids, mask, labels, _ = inputs()
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask,
                       decoder_input_ids=base._shift_right(labels)).logits
    theirs = load_file(Path(adapter_dir) / "rust_logits.safetensors")["logits"]
    diff = (logits - theirs).abs().max().item()
    print(f"PEFT logits vs t5-lora logits: max |diff| = {diff:.3g}")
    if not diff < 1e-4:
        raise SystemExit("the adapter saved by t5-lora does not reproduce in PEFT")


def save_tokenizer(out):
    """A small Unigram tokenizer in T5's layout: <pad>=0, </s>=1, <unk>=2, then pieces;
    `</s>` appended after every sequence, as T5TokenizerFast does. Unigram training is not
    deterministic from run to run (ties between pieces), so a rerun may change a few ids; the
    tokenizer and its reference encodings are always written together and agree."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    squad = ROOT.parent / "shared/data/squad/dev-v1.1.json"
    data = json.loads(squad.read_text(encoding="utf-8"))["data"]
    texts = [p["context"] for a in data[:5] for p in a["paragraphs"]]
    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(" {2,}", " ")])
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(
        vocab_size=VOCAB, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>",
        shrinking_factor=0.75, max_piece_length=8,
    )
    tokenizer.train_from_iterator(texts, trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)],
    )
    tokenizer.save(str(out / "tokenizer.json"))
    # flan-t5-tiny becomes a complete checkpoint directory, as the binaries' tests use it.
    tokenizer.save(str(out / "flan-t5-tiny" / "tokenizer.json"))
    samples = [
        "question: Which NFL team represented the AFC at Super Bowl 50? context: The Denver Broncos won.",
        "Zürich, 1990–1995: “quoted” text  with  spaces",
        "",
    ]
    encoded = [tokenizer.encode(s).ids for s in samples]
    (out / "tokenizer_reference.json").write_text(
        json.dumps({"samples": samples, "ids": encoded,
                    "decoded": [tokenizer.decode(ids, skip_special_tokens=True) for ids in encoded]},
                   ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=ROOT / "fixtures/t5")
    parser.add_argument("--verify-adapter", type=Path, metavar="DIR",
                        help="check an adapter saved by t5-lora against PEFT, and write nothing")
    args = parser.parse_args()
    if args.verify_adapter:
        verify_adapter(args.verify_adapter)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)  # determinism of the reference figures
    ids, mask, labels, target_lengths = inputs()
    save_file({k: v.contiguous() for k, v in buckets().items()}, args.out / "relative_buckets.safetensors")
    for name, spec in CONFIGS.items():
        model = make_model(name, spec)
        model_dir = args.out / name
        model.save_pretrained(model_dir, safe_serialization=True)
        save_file(reference(model, ids, mask, labels, target_lengths), model_dir / "reference.safetensors")
        if name == "flan-t5-tiny":
            model.save_pretrained(args.out / f"{name}-sharded", safe_serialization=True, max_shard_size="200KB")
            for dtype, suffix in [(torch.bfloat16, "bf16"), (torch.float16, "f16")]:
                low = copy.deepcopy(model).to(dtype)
                low.save_pretrained(args.out / f"{name}-{suffix}", safe_serialization=True)
                # The reference for half-precision weights: the same rounded weights, computed
                # in f32 (as t5-lora computes).
                rounded = low.to(torch.float32)
                save_file(reference(rounded, ids, mask, labels, target_lengths),
                          args.out / f"{name}-{suffix}" / "reference.safetensors")
    save_peft_adapter(args.out, ids, mask, labels, target_lengths)
    save_tokenizer(args.out)
    print(f"wrote fixtures to {args.out}")


if __name__ == "__main__":
    main()
