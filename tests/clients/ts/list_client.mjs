#!/usr/bin/env node
// List and use everything an MCP server shows this caller, with the official TypeScript SDK
// (@modelcontextprotocol/sdk 1.x, 2025-11-25 era), for tests/tests/e2e_list_filter.rs. Prints ONE
// JSON line: `ok`, `tools`, `prompts`, `resources` (URIs), `templates` (URI templates), each
// sorted, and `calls` (for each listed tool, prompt and resource: whether using it worked; a tool
// call is ok when not `isError`). Exit 0 when listing worked, 1 otherwise, 2 on bad usage.
//
//   node list_client.mjs --url URL --token TOKEN
//
// Setup: `npm ci` in this folder (or `bash .ci/e2e-setup.sh` at the repository root).

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { closeQuietly, runClient } from './common.mjs';

const TOOL_ARGS = { echo: { text: 'hi' } };
const DEFAULT_ARGS = { name: 'welcome' };

async function drive(args, report) {
  const transport = new StreamableHTTPClientTransport(new URL(args.url), {
    requestInit: { headers: { Authorization: `Bearer ${args.token}` } },
  });
  const client = new Client({ name: 'mcp-security-e2e-ts-lists', version: '0.0.0' });
  const calls = [];
  report.calls = calls;
  try {
    await client.connect(transport);
    const tools = await client.listTools();
    const prompts = await client.listPrompts();
    const resources = await client.listResources();
    const templates = await client.listResourceTemplates();
    report.tools = tools.tools.map(t => t.name).sort();
    report.prompts = prompts.prompts.map(p => p.name).sort();
    report.resources = resources.resources.map(r => r.uri).sort();
    report.templates = templates.resourceTemplates.map(t => t.uriTemplate).sort();
    for (const name of report.tools) {
      try {
        const res = await client.callTool({ name, arguments: TOOL_ARGS[name] ?? DEFAULT_ARGS });
        calls.push({ kind: 'tool', name, ok: res.isError !== true, detail: res.content?.[0]?.text ?? null });
      } catch (e) {
        calls.push({ kind: 'tool', name, ok: false, detail: String(e?.message ?? e) });
      }
    }
    for (const name of report.prompts) {
      try {
        await client.getPrompt({ name, arguments: {} });
        calls.push({ kind: 'prompt', name, ok: true });
      } catch (e) {
        calls.push({ kind: 'prompt', name, ok: false, detail: String(e?.message ?? e) });
      }
    }
    for (const uri of report.resources) {
      try {
        await client.readResource({ uri });
        calls.push({ kind: 'resource', name: uri, ok: true });
      } catch (e) {
        calls.push({ kind: 'resource', name: uri, ok: false, detail: String(e?.message ?? e) });
      }
    }
    report.ok = true;
  } finally {
    await closeQuietly(transport, client);
  }
}

process.exitCode = await runClient({ client: 'typescript', ok: false }, ['url', 'token'], drive);
