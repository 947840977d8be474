"""PyTorch + transformers (+ PEFT) on the shapes of `cargo xtask bench`, for side-by-side figures.

Random FLAN-T5-small- and base-shaped weights (the Rust benchmarks' shapes: gated-GELU, untied
head, `</s>` outside the vocabulary so every generation runs its full length), in f32, on the CPU
with PyTorch's default thread count, or on a CUDA GPU with `--device cuda`. Prints one JSON
object per line:

    {"bench": "t5-forward", "size": "small", "seconds": ..., "tokens_per_second": ...}

Benchmarks (each the median of `--repeats` timed runs after one warm-up run):
- matmul: a 2048 x 2048 f32 matmul, GFLOP/s (the backend's own ceiling);
- t5-forward: encoder + decoder forward, batch 8, source 384, target 32 (positions/s);
- t5-generate: cached greedy generation of 32 new tokens, batch 16, source 384 (new tokens/s);
- t5-beam: the same with 4 beams (new tokens/s of the returned sequences);
- train: one LoRA step (r 8 on q, v; AdamW), batch 8, source 384, target 32 (positions/s),
  and the peak resident memory of the process (run `--only train` in a process of its own for a
  clean figure), or on a GPU the peak memory PyTorch allocated there;
- synth (only with `--synth-inputs FILE`, the prompts.json that `cargo bench -p qa-synth --bench
  synth` writes): synthesis's generation on FLAN-T5-base shapes, `generate(num_return_sequences=
  4, do_sample=True, top_p=0.95, temperature=0.8)` over the same prompts' token ids in the same
  batches, decoded with the same tokenizer.json (candidates/s; one warm-up batch, one timed pass).

Usage: .venv/bin/python xtask/peers/torch_t5.py [--sizes small,base] [--only BENCH] [--skip BENCH]
       [--repeats N] [--device cpu|cuda] [--synth-inputs FILE]
"""

import argparse
import json
import resource
import statistics
import time

import torch
from transformers import T5Config, T5ForConditionalGeneration

SHAPES = {"small": (512, 1024, 8, 6), "base": (768, 2048, 12, 12)}
VOCAB = 32128
# Where the models and inputs live (`--device`).
DEVICE = torch.device("cpu")


def model(size):
    d_model, d_ff, layers, heads = SHAPES[size]
    config = T5Config(
        vocab_size=VOCAB,
        d_model=d_model,
        d_kv=64,
        d_ff=d_ff,
        num_layers=layers,
        num_decoder_layers=layers,
        num_heads=heads,
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
        pad_token_id=0,
        eos_token_id=VOCAB,
        decoder_start_token_id=0,
    )
    torch.manual_seed(0)
    return T5ForConditionalGeneration(config).eval().to(DEVICE)


def tokens(rows, length):
    ids = (torch.arange(rows * length) * 7919 % 32000 + 3).reshape(rows, length).to(DEVICE)
    return ids, torch.ones_like(ids)


def synchronize():
    """Waits for the GPU's queued work, so that a host clock times it (a no-op on the CPU)."""
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


def timed(run, repeats):
    run()
    synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def report(bench, size, seconds, work, **extra):
    line = {"bench": bench, "size": size, "seconds": seconds, "tokens_per_second": work / seconds}
    line.update(extra)
    print(json.dumps(line), flush=True)


def matmul(repeats):
    a, b = torch.randn(2048, 2048, device=DEVICE), torch.randn(2048, 2048, device=DEVICE)
    seconds = timed(lambda: a @ b, repeats)
    print(json.dumps({"bench": "matmul", "gflops": 2 * 2048**3 / seconds / 1e9}), flush=True)


@torch.no_grad()
def forward(size, repeats):
    m = model(size)
    ids, mask = tokens(8, 384)
    decoder_ids, _ = tokens(8, 32)
    seconds = timed(lambda: m(input_ids=ids, attention_mask=mask, decoder_input_ids=decoder_ids), repeats)
    report("t5-forward", size, seconds, 8 * (384 + 32))


@torch.no_grad()
def generate(size, repeats, beams):
    m = model(size)
    ids, mask = tokens(16, 384)

    def run():
        out = m.generate(input_ids=ids, attention_mask=mask, max_new_tokens=32, min_new_tokens=32,
                         num_beams=beams, do_sample=False, use_cache=True)
        assert out.shape == (16, 33), out.shape

    report("t5-beam" if beams > 1 else "t5-generate", size, timed(run, repeats), 16 * 32)


def train(size, repeats):
    from peft import LoraConfig, get_peft_model

    m = get_peft_model(model(size).train(), LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05,
                                                       target_modules=["q", "v"]))
    optimizer = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=3e-4)
    ids, mask = tokens(8, 384)
    labels, _ = tokens(8, 32)

    def step():
        loss = m(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()

    seconds = timed(step, repeats)
    if DEVICE.type == "cuda":
        report("train", size, seconds, 8 * (384 + 32),
               peak_gpu_bytes=torch.cuda.max_memory_allocated(DEVICE))
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        report("train", size, seconds, 8 * (384 + 32), peak_rss_bytes=peak)


@torch.no_grad()
def synth(path):
    from transformers import PreTrainedTokenizerFast

    with open(path) as f:
        inputs = json.load(f)
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=inputs["tokenizer"])
    m = model("base")
    per_batch, n = inputs["seeds_per_batch"], inputs["candidates"]
    prompts = inputs["prompts"]
    batches = [prompts[i:i + per_batch] for i in range(0, len(prompts), per_batch)]

    def run(batch):
        longest = max(len(p) for p in batch)
        ids = torch.tensor([p + [0] * (longest - len(p)) for p in batch], device=DEVICE)
        mask = torch.tensor([[1] * len(p) + [0] * (longest - len(p)) for p in batch], device=DEVICE)
        new = inputs["max_new_tokens"]
        out = m.generate(input_ids=ids, attention_mask=mask, do_sample=True, num_return_sequences=n,
                         top_p=inputs["top_p"], temperature=inputs["temperature"],
                         max_new_tokens=new, min_new_tokens=new, use_cache=True)
        assert out.shape == (len(batch) * n, new + 1), out.shape
        tokenizer.batch_decode(out, skip_special_tokens=True)

    run(batches[0])
    start = time.perf_counter()
    for batch in batches:
        run(batch)
    seconds = time.perf_counter() - start
    candidates = len(prompts) * n
    print(json.dumps({"bench": "synth", "size": "base", "seconds": seconds,
                      "candidates_per_second": candidates / seconds}), flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="small,base")
    parser.add_argument("--only", default=None)
    parser.add_argument("--skip", action="append", default=[])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--synth-inputs", default=None)
    args = parser.parse_args()
    global DEVICE
    DEVICE = torch.device(args.device)
    where = torch.cuda.get_device_name(DEVICE) if DEVICE.type == "cuda" else "cpu"
    print(json.dumps({"peer": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "device": where}), flush=True)
    wanted = lambda name: args.only in (None, name) and name not in args.skip
    if wanted("matmul"):
        matmul(args.repeats)
    for size in args.sizes.split(","):
        if wanted("t5-forward"):
            forward(size, args.repeats)
        if wanted("t5-generate"):
            generate(size, args.repeats, beams=1)
        if wanted("t5-beam"):
            generate(size, args.repeats, beams=4)
        if wanted("train"):
            train(size, args.repeats)
    if args.synth_inputs and wanted("synth"):
        synth(args.synth_inputs)


if __name__ == "__main__":
    main()
