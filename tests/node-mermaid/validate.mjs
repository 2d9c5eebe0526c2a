// Parses each Mermaid file named on the command line with Mermaid's own parser (mermaid.parse) and prints
// one JSON object per line: {"file": ..., "ok": true, "diagramType": ...} or {"file": ..., "ok": false,
// "error": ...}. Exits 0 when every file parses, 1 otherwise.
// mermaid.parse sanitises labels with DOMPurify, which needs a DOM: jsdom provides one (no browser needed).
import { readFileSync } from 'node:fs';
import { JSDOM } from 'jsdom';

const { window } = new JSDOM('');
globalThis.window = window;
globalThis.document = window.document;
const { default: mermaid } = await import('mermaid');

let failed = false;
for (const file of process.argv.slice(2)) {
  try {
    const result = await mermaid.parse(readFileSync(file, 'utf8'));
    console.log(JSON.stringify({ file, ok: true, diagramType: result.diagramType }));
  } catch (error) {
    failed = true;
    console.log(JSON.stringify({ file, ok: false, error: String(error?.message ?? error) }));
  }
}
process.exit(failed ? 1 : 0);
