// `node:fs` plus the `globSync` Node 22 added, for the conformance suite on Node 20 (see
// node20-globsync.mjs). Only the pattern shapes the suite uses are supported: `**/<name>` and a
// plain relative path, with `options.cwd`; anything else throws rather than guess.
import fs from 'node:fs';
import path from 'node:path';

export * from 'node:fs';
export default fs;

export function globSync(pattern, options = {}) {
  const cwd = options.cwd ?? process.cwd();
  if (/[*?[\]{}]/.test(pattern.replace(/^\*\*\//, ''))) {
    throw new Error(`fs.globSync shim (Node 20): unsupported pattern ${pattern}`);
  }
  if (!pattern.startsWith('**/')) {
    return fs.existsSync(path.join(cwd, pattern)) ? [pattern] : [];
  }
  const name = pattern.slice(3);
  return fs
    .readdirSync(cwd, { recursive: true })
    .map(String)
    .filter((p) => p === name || p.endsWith(path.sep + name));
}
