// Resolve hook (see node20-globsync.mjs): "fs" / "node:fs" imported from ESM resolve to
// fs-globsync.mjs, except from that module itself.
const SHIM = new URL('./fs-globsync.mjs', import.meta.url).href;

export async function resolve(specifier, context, nextResolve) {
  if ((specifier === 'fs' || specifier === 'node:fs') && context.parentURL !== SHIM) {
    return { url: SHIM, shortCircuit: true };
  }
  return nextResolve(specifier, context);
}
