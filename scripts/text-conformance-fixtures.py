"""Expected outputs of the text conformance suite (test/text_conformance.test.ts), computed by transformers 5.17
and Hugging Face tokenizers (Rust) on the real tokenizers of scripts/text-conformance-models.mjs.

    python3 -m venv /work/venvs/tf517
    PIP_RETRIES=0 /work/venvs/tf517/bin/pip install transformers==5.17.0 tokenizers jinja2
    node scripts/text-conformance-models.mjs /tmp/conformance-models
    /work/venvs/tf517/bin/python scripts/text-conformance-fixtures.py /tmp/conformance-models [DATA_DIR [OUT_DIR]]

DATA_DIR (default ../shared/data) holds the UltraFeedback and AlpacaEval files the corpus is read from; the texts
are written into the fixtures (test/fixtures/text-conformance/<model>.json), so the tests need neither Python
nor the data. For each model: each text's ids with and without special tokens, their decodings (with and without
special tokens), decodings of cut id lists (ending inside characters), and chat renderings (string and ids) with and
without the generation prompt, continue_final_message, system and multi-turn conversations, tools and
enable_thinking where the template has them; a rendering that raises is recorded as an error.
"""
import json
import os
import sys

import tokenizers
import transformers
from transformers import AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, 'test', 'fixtures', 'text-conformance')


def jsonl(path, n):
    out = []
    with open(path, encoding='utf-8') as f:
        for line in f:
            if line.strip():
                out.append(json.loads(line))
            if len(out) >= n:
                break
    return out


def corpus(data):
    uf_prompts = [r['prompt'] for r in jsonl(os.path.join(data, 'ultrafeedback_prompts_1200.jsonl'), 120)]
    uf = jsonl(os.path.join(data, 'ultrafeedback_binarized_sample_eval200.jsonl'), 30)
    uf_responses = [r['chosen'] for r in uf] + [r['rejected'] for r in uf[:10]]
    alpaca = [r['instruction'] for r in jsonl(os.path.join(data, 'alpaca_eval_instructions_805.jsonl'), 60)]
    with open(os.path.join(data, 'alpaca_eval2_ref_gpt4_1106_preview_outputs.json'), encoding='utf-8') as f:
        alpaca_out = [r['output'] for r in json.load(f)[:20]]
    crafted = [
        '', ' ', '  ', '\n', '\n\n\n', 'x = a ?? b', "it 's fine , isn 't it ? yes .", 'Hello, world!',
        'Emoji: 😀👍🏽👨‍👩‍👧‍👦 🇫🇷 ❤️', '中文分词测试：你好，世界。', '日本語のテキスト、カタカナ・ひらがな。', '한국어 문장입니다.',
        'Combining: e\u0301 a\u0308 n\u0303 \u0915\u093f Z\u0351\u0358', 'CRLF line\r\nnext\r\n\r\nend', 'tabs\tand\t\tmore',
        'long    space     runs' + ' ' * 40 + 'end', ' leading space', 'trailing space ', '\u00a0nbsp\u2009thin\u3000ideographic',
        'def f(x):\n    return {"a": [1, 2, 3]}  # comment\n\nif __name__ == "__main__":\n\tprint(f(1))\n',
        'fn main() { let v: Vec<u8> = vec![0xFF; 4]; println!("{:?}", v); }', '<div class="x">&amp; &lt;tag&gt;</div>',
        'Math: ∑_{i=1}^{n} i² = n(n+1)/2, √2 ≈ 1.414, ∞, ≤≥≠', 'Numbers 1234567890 3.14159 -0.001 1e-9 12,345,678',
        'URLs https://example.com/a?b=c&d=e#f and emails a.b@c.de', "Don't, won't, I'm, you're, they've, we'll, it'd",
        'ALL CAPS and MiXeD cAsE', 'Русский текст, Ελληνικά, עברית, العربية, हिन्दी', '\u200b\u200d\ufeffzero width',
        '....!!!???,,,;;;', '\\n literal backslash n', '▁ metaspace char and Ġ byte-level char', '<0x41> <unk> [INST] </s> <s>',
    ]
    return uf_prompts, uf_responses, alpaca, alpaca_out, crafted


TOOLS = [{
    'type': 'function',
    'function': {
        'name': 'get_weather',
        'description': 'Get the current weather in a city.',
        'parameters': {'type': 'object', 'properties': {'city': {'type': 'string', 'description': 'The city'}, 'unit': {'type': 'string', 'enum': ['celsius', 'fahrenheit']}}, 'required': ['city']},
    },
}]


def conversations(uf_prompts, uf_responses, alpaca, alpaca_out):
    convs = [
        [{'role': 'user', 'content': 'Hello!'}],
        [{'role': 'system', 'content': 'You are a helpful assistant.'}, {'role': 'user', 'content': 'Write a haiku about autumn.'}],
        [{'role': 'user', 'content': 'Hi'}, {'role': 'assistant', 'content': 'Hello! How can I help?'}, {'role': 'user', 'content': 'Tell me a joke.'}],
        [{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'What is 2+2?'}, {'role': 'assistant', 'content': '4'}, {'role': 'user', 'content': 'And 3+3?'}, {'role': 'assistant', 'content': '6'}],
        [{'role': 'user', 'content': '  padded content with spaces  \n'}, {'role': 'assistant', 'content': '\nAn answer with a newline first.'}],
        [{'role': 'user', 'content': 'Emoji 😀 and 中文'}, {'role': 'assistant', 'content': 'Réponse avec accents: é à ü'}],
    ]
    for i in range(12):
        convs.append([{'role': 'user', 'content': uf_prompts[i]}, {'role': 'assistant', 'content': uf_responses[i]}])
    for i in range(8):
        convs.append([{'role': 'user', 'content': alpaca[i]}, {'role': 'assistant', 'content': alpaca_out[i]}, {'role': 'user', 'content': uf_prompts[30 + i]}])
    return convs


def render(tok, conv, **kw):
    try:
        text = tok.apply_chat_template(conv, tokenize=False, **kw)
    except Exception as e:  # noqa: BLE001 (a template's raise_exception, recorded as an error)
        return {'error': str(e)}
    return {'text': text, 'ids': tok(text, add_special_tokens=False)['input_ids']}


def main():
    models_dir = sys.argv[1]
    data = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, '..', 'shared', 'data')
    out = sys.argv[3] if len(sys.argv) > 3 else OUT
    uf_prompts, uf_responses, alpaca, alpaca_out, crafted = corpus(data)
    convs = conversations(uf_prompts, uf_responses, alpaca, alpaca_out)
    os.makedirs(out, exist_ok=True)
    # The texts and conversations every model shares, written once; a model's file lists the results in their order
    # (its own texts, strings with its special tokens, after the shared ones).
    shared = uf_prompts + uf_responses + alpaca + alpaca_out + crafted
    with open(os.path.join(out, 'corpus.json'), 'w', encoding='utf-8') as f:
        json.dump({'texts': shared, 'conversations': convs, 'tools': TOOLS}, f, ensure_ascii=False, separators=(',', ':'))
    for name in sorted(os.listdir(models_dir)):
        folder = os.path.join(models_dir, name)
        tok = AutoTokenizer.from_pretrained(folder)
        specials = [t for t in tok.all_special_tokens]
        extra = [f'text with {s} inside' for s in specials[:6]] + [''.join(specials[:3])]
        texts = shared + extra
        enc = []
        for t in texts:
            ids = tok(t, add_special_tokens=False)['input_ids']
            ids_special = tok(t)['input_ids']
            decoded = tok.decode(ids)
            skipped = tok.decode(ids_special, skip_special_tokens=True)
            # Compact: the special tokens added as a prefix and a suffix of the ids, the decodings null when equal
            # to the text (decoded) or to decoded (decoded_special_skipped).
            n = len(ids_special) - len(ids)
            start = next((i for i in range(n + 1) if ids_special[i:i + len(ids)] == ids), None)
            special = {'prefix': ids_special[:start], 'suffix': ids_special[start + len(ids):]} if start is not None else {'ids': ids_special}
            enc.append({
                'ids': ids, 'special': special,
                'decoded': None if decoded == t else decoded, 'decoded_special_skipped': None if skipped == decoded else skipped,
            })
        # Cut id lists: decodings that end inside a character (byte-level and byte-fallback tokenizers).
        cuts = []
        for t in crafted:
            ids = tok(t, add_special_tokens=False)['input_ids']
            for k in range(1, min(len(ids), 10)):
                cuts.append({'ids': ids[:k], 'decoded': tok.decode(ids[:k])})
        template = tok.chat_template
        chats = []
        for conv in convs:
            entry = {'generation_prompt': render(tok, conv, add_generation_prompt=True), 'plain': render(tok, conv)}
            if conv[-1]['role'] == 'assistant':
                entry['continue_final_message'] = render(tok, conv, continue_final_message=True)
            if template and 'tools' in template:
                entry['tools'] = render(tok, conv, tools=TOOLS, add_generation_prompt=True)
            if template and 'enable_thinking' in template:
                entry['enable_thinking_false'] = render(tok, conv, add_generation_prompt=True, enable_thinking=False)
            chats.append(entry)
        fixture = {
            'model': name, 'transformers': transformers.__version__, 'tokenizers': tokenizers.__version__,
            'tokenizer_class': type(tok).__name__, 'special_tokens_map': tok.special_tokens_map,
            'extra_texts': extra, 'encode': enc, 'cuts': cuts, 'chats': chats if template else [],
        }
        path = os.path.join(out, f'{name}.json')
        with open(path, 'w', encoding='utf-8') as f:
            json.dump(fixture, f, ensure_ascii=False, separators=(',', ':'))
        print(f'{path}: {len(enc)} texts, {len(cuts)} cut id lists, {len(fixture["chats"])} conversations, {os.path.getsize(path)} bytes')


if __name__ == '__main__':
    main()
