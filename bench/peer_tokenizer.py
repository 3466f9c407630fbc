"""The Rust peer of `npm run bench -- tokenizer`: transformers 5.17's tokenizer (Hugging Face tokenizers, Rust) as its
users call it. Args: a JSON file {"texts": [...], "folders": {name: dir}, "repeats": n}. Prints one JSON line:
{name: {"encode_batch_s": [...], "encode_each_s": [...], "decode_each_s": [...]}, "versions": {...}}.
encode_batch: tok(texts) (one call; Rust runs it on RAYON threads); encode_each: tok(text) per text (one thread);
decode_each: tok.decode(ids) per text."""
import json
import sys
import time

import tokenizers
import transformers
from transformers import AutoTokenizer


def timed(fn, repeats):
    fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main():
    with open(sys.argv[1], encoding='utf-8') as f:
        job = json.load(f)
    texts, repeats = job['texts'], job['repeats']
    result = {'versions': {'transformers': transformers.__version__, 'tokenizers': tokenizers.__version__}}
    for name, folder in job['folders'].items():
        tok = AutoTokenizer.from_pretrained(folder)
        ids = [tok(t, add_special_tokens=False)['input_ids'] for t in texts]
        result[name] = {
            'encode_batch_s': timed(lambda: tok(texts, add_special_tokens=False), repeats),
            'encode_each_s': timed(lambda: [tok(t, add_special_tokens=False) for t in texts], repeats),
            'decode_each_s': timed(lambda: [tok.decode(i) for i in ids], repeats),
        }
    print(json.dumps(result))


if __name__ == '__main__':
    main()
