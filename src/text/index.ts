// Text: Hugging Face tokenizers (tokenizer.json) and chat templates, as transformers renders them.
export * from './tokenizer.js';
export * from './chat_template.js';
export * from './stop_strings.js';
