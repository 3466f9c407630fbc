# The Hugging Face peers of bench/hf_peers.ts, written the way their users write them:
#   generate: transformers' AutoModelForCausalLM.from_pretrained(folder) + model.generate(do_sample=True, ...),
#             every sequence to full length (min_new_tokens = max_new_tokens), timed per call;
#   train:    TRL's DPOTrainer (DPOConfig: precompute_ref_log_probs=True, AdamW, float32 on the CPU), its optimizer
#             steps timed as the trainer runs them (a TrainerCallback: from one on_step_end to the next), the first
#             `warmup` steps dropped. The reference log-probs are precomputed by the trainer before training (not timed).
# The model folder and the token ids come from bench/hf_peers.ts (the same weights and ids sppo's side uses). TRL
# tokenizes text, so the ids travel as words "t<id>" through a word-level tokenizer (the `tokenizers` library) whose
# vocabulary maps each word to its id: TRL's input_ids are exactly sppo's ids.
# Prints one JSON object: the seconds of each timed call or step, the peak RSS of this process, the versions.
#   .venv/hf-peers/bin/python3 bench/peer_hf.py '{"task": "generate", "dir": ..., "data": ..., ...}'
import json
import os
import resource
import sys
import tempfile
import time

import torch


def word_tokenizer(vocab_size, pad_id, eos_id):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f't{i}': i for i in range(vocab_size)}
    vocab['<pad>'], vocab['</s>'] = pad_id, eos_id
    del vocab[f't{pad_id}'], vocab[f't{eos_id}']
    tok = Tokenizer(models.WordLevel(vocab, unk_token='<pad>'))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token='<pad>', eos_token='</s>', unk_token='<pad>')


def words(ids):
    return ' '.join(f't{i}' for i in ids)


def load(o):
    """The model folder sppo wrote, every weight of it loaded (no key missing or left over)."""
    from transformers import AutoModelForCausalLM

    model, info = AutoModelForCausalLM.from_pretrained(o['dir'], dtype=torch.float32, output_loading_info=True)
    bad = {k: v for k, v in info.items() if v and k in ('missing_keys', 'unexpected_keys', 'mismatched_keys')}
    if bad:
        raise SystemExit(f'peer_hf: {o["dir"]} did not load cleanly: {bad}')
    return model


def generate(o, data):
    model = load(o)
    model.eval()
    ids = torch.tensor(data['prompts'])
    mask = torch.ones_like(ids)
    n = o['new_tokens']
    times = []
    # top_k=0: transformers' default top-k of 50 off, as sppo's sampling here has none (temperature and top-p only).
    for r in range(o['warmup'] + o['repeats']):
        torch.manual_seed(r)
        t0 = time.perf_counter()
        out = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=o['temperature'], top_p=o['top_p'],
                             top_k=0, max_new_tokens=n, min_new_tokens=n, pad_token_id=o['pad_id'])
        t = time.perf_counter() - t0
        if out.shape[1] != ids.shape[1] + n:
            raise SystemExit(f'peer_hf: generate returned {out.shape[1] - ids.shape[1]} new tokens, not {n}')
        if r >= o['warmup']:
            times.append(t)
    return times


def train(o, data):
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import DPOConfig, DPOTrainer

    eos = o['eos_id']
    # TRL appends the EOS token to each response; sppo's side has it as the responses' last id.
    rows = [{'prompt': words(p['promptIds']) + ' ', 'chosen': words(p['chosenIds'][:-1]), 'rejected': words(p['rejectedIds'][:-1])}
            for p in data['pairs']]
    for p in data['pairs']:
        assert p['chosenIds'][-1] == eos and p['rejectedIds'][-1] == eos
    tok = word_tokenizer(o['vocab_size'], o['pad_id'], eos)
    model = load(o)
    steps = o['warmup'] + o['repeats']
    out_dir = tempfile.mkdtemp(prefix='sppo-bench-trl-')
    args = DPOConfig(
        output_dir=out_dir, per_device_train_batch_size=o['batch'], gradient_accumulation_steps=1, max_steps=steps,
        learning_rate=o['lr'], optim='adamw_torch', loss_type=[o['loss']], beta=o['beta'], precompute_ref_log_probs=True,
        use_cpu=True, bf16=False, gradient_checkpointing=o['checkpointing'], max_grad_norm=1.0, warmup_steps=0,
        report_to='none', save_strategy='no', disable_tqdm=True, seed=0, max_length=None,
    )

    # A step as the trainer runs it, from one optimizer step's end to the next one's (the batch's collation, forward,
    # backward, clipping, AdamW, the trainer's logging), as sppo's side times from one onStep to the next; the first
    # step from its on_step_begin (a warm-up step: dropped).
    marks = []
    ends = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            if not ends:
                ends.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kw):
            now = time.perf_counter()
            marks.append(now - ends[-1])
            ends.append(now)

    trainer = DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok, callbacks=[StepTimer()])
    # The pairs as TRL tokenized them must be sppo's ids (the order may differ).
    want = sorted((p['promptIds'], p['chosenIds'], p['rejectedIds']) for p in data['pairs'])
    got = sorted((r['prompt_ids'], r['chosen_ids'], r['rejected_ids']) for r in trainer.train_dataset)
    if got != want:
        raise SystemExit(f'peer_hf: TRL tokenized the pairs to other ids than sppo uses: {got[0]} vs {want[0]}')
    trainer.train()
    if len(marks) != steps:
        raise SystemExit(f'peer_hf: {len(marks)} steps timed, expected {steps}')
    return marks[o['warmup']:]


def main():
    o = json.loads(sys.argv[1])
    torch.set_num_threads(o['threads'])
    with open(o['data']) as f:
        data = json.load(f)
    times = generate(o, data) if o['task'] == 'generate' else train(o, data)
    import transformers
    r = {'seconds': times, 'maxrss_kb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, 'threads': torch.get_num_threads(),
         'torch': torch.__version__, 'transformers': transformers.__version__}
    if o['task'] == 'train':
        import trl
        r['trl'] = trl.__version__
    print(json.dumps(r))


if __name__ == '__main__':
    os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')
    main()
