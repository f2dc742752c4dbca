// Reads the result directories the conformance CLI writes with `-o DIR`
// (DIR/server-<scenario>-<timestamp>/checks.json) and prints one line per check:
//   <scenario> <check id> <SUCCESS|FAILURE|WARNING|SKIPPED>
// sorted, INFO records (request/response traces) left out. Used by .ci/conformance.sh.
import fs from 'node:fs';
import path from 'node:path';

const dir = process.argv[2];
const lines = [];
for (const entry of fs.readdirSync(dir)) {
  const m = /^server-(.+)-\d{4}-\d\d-\d\dT[\d-]+Z$/.exec(entry);
  if (!m) continue;
  const checks = JSON.parse(fs.readFileSync(path.join(dir, entry, 'checks.json'), 'utf8'));
  for (const c of checks) {
    if (c.status === 'INFO') continue;
    lines.push(`${m[1]} ${c.id} ${c.status}`);
  }
}
lines.sort();
process.stdout.write(lines.length ? lines.join('\n') + '\n' : '');
