// Node 20 shim for the conformance suite: `fs.globSync` arrived in Node 22, and the suite's CLI
// imports it by name from "fs" (it only calls it in `tier-check`, which CI does not run), so on
// Node 20 the whole CLI fails to link. Preload with `node --import ./node20-globsync.mjs`: on a
// Node without `fs.globSync` it registers a resolve hook that hands ESM importers of "fs" a
// module re-exporting `node:fs` plus a small `globSync`. On Node 22+ it does nothing.
import fs from 'node:fs';
import { register } from 'node:module';

if (typeof fs.globSync !== 'function') {
  register(new URL('./node20-globsync-hooks.mjs', import.meta.url));
}
