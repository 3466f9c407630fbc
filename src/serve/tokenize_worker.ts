// The tokenizer thread of `sppo serve` (tokenize.ts): its own copy of the model folder's tokenizer; encodes
// the long prompts it is sent, one at a time, off the server's event loop.
import { parentPort, workerData } from 'node:worker_threads';
import { Tokenizer } from '../text/tokenizer.js';

const tokenizer = Tokenizer.fromFolder((workerData as { dir: string }).dir);
parentPort!.on('message', (m: { id: number; text: string; addSpecialTokens: boolean }) => {
  try {
    parentPort!.postMessage({ id: m.id, ids: tokenizer.encode(m.text, { addSpecialTokens: m.addSpecialTokens }) });
  } catch (e) {
    parentPort!.postMessage({ id: m.id, error: (e as Error).message });
  }
});
