// What the end-to-end clients in this folder share: argument parsing, the closing of a client,
// and the run itself (a time bound, errors into the report, ONE JSON line on stdout, the exit
// code: 0 when the report is ok, 1 otherwise, 2 on bad usage).

const TOTAL_TIMEOUT_MS = 60_000;

// `--name value` pairs into an object; each of `required` (names without `--`) must be given.
export function parseArgs(argv, required) {
  const args = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const value = argv[i + 1];
    if (value === undefined) throw new Error(`${a} needs a value`);
    args[a.slice(2)] = value;
    i++;
  }
  if (required.some(name => !args[name])) {
    const names = required.map(name => `--${name}`);
    throw new Error(`${names.join(' and ')} ${names.length > 1 ? 'are' : 'is'} required`);
  }
  return args;
}

// DELETE the session (legacy era) and close the client; a failure here is not the test's concern.
export async function closeQuietly(transport, client) {
  await transport.terminateSession?.().catch(() => {});
  await client.close().catch(() => {});
}

// Parse the command line, run `drive(args, report)` within the time bound, print `report` as one
// JSON line and return the exit code. On failure the report has `error`, and `status` when the
// error carries an HTTP status (401 for the SDK's UnauthorizedError).
export async function runClient(report, required, drive) {
  let args;
  try {
    args = parseArgs(process.argv.slice(2), required);
  } catch (e) {
    console.error(`usage error: ${e.message}`);
    return 2;
  }
  const timer = setTimeout(() => {
    report.error = `did not finish within ${TOTAL_TIMEOUT_MS} ms`;
    console.log(JSON.stringify(report));
    process.exit(1);
  }, TOTAL_TIMEOUT_MS);
  try {
    await drive(args, report);
  } catch (e) {
    report.ok = false;
    report.error = `${e?.name ?? 'Error'}: ${e?.message ?? String(e)}`;
    if (typeof e?.code === 'number' && e.code > 0) report.status = e.code;
    else if (e?.name === 'UnauthorizedError') report.status = 401;
  }
  clearTimeout(timer);
  console.log(JSON.stringify(report));
  return report.ok ? 0 : 1;
}
