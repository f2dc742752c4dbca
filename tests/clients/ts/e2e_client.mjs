#!/usr/bin/env node
// Drive an MCP server with the official TypeScript SDK (@modelcontextprotocol/sdk 1.x) for the
// mcp-security end-to-end tests (tests/tests/e2e_typescript.rs), and print ONE JSON line on
// stdout saying what the client saw. Exit 0 when the client connected, listed the tools and
// called them; 1 when it failed (the JSON line then carries the HTTP status); 2 on bad usage.
//
//   node e2e_client.mjs --url URL [--token TOKEN]
//   node e2e_client.mjs --url URL --oauth-client-id ID --oauth-client-secret SECRET --oauth-issuer AS_URL
//
// --token sends `Authorization: Bearer TOKEN`. The --oauth-* options use the SDK's
// ClientCredentialsProvider instead: on our 401 the SDK reads the RFC 9728 protected-resource
// metadata named in WWW-Authenticate, checks its `resource`, fetches the authorization server's
// metadata, asks its token endpoint for a token (grant client_credentials, RFC 8707 `resource`)
// and retries. Every HTTP exchange the SDK makes is reported in `requests`.
//
// The SDK 1.x speaks the 2025-era protocol (initialize + Mcp-Session-Id); it has no 2026-07-28
// stateless mode.
//
// Setup: `npm ci` in this folder (or `bash .ci/e2e-setup.sh` at the repository root).

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ClientCredentialsProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js';
import { LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js';
import { closeQuietly, runClient } from './common.mjs';

class RecordingProvider extends ClientCredentialsProvider {
  saveDiscoveryState(state) {
    this.discovery = state;
  }
}

async function drive(args, report) {
  const requests = [];
  report.requests = requests;
  // Wrap fetch to record each exchange: method, URL, status (never headers: they hold tokens).
  const recordingFetch = async (input, init) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const method = (init?.method ?? (typeof input === 'object' && 'method' in input ? input.method : 'GET')).toUpperCase();
    const response = await fetch(input, init);
    requests.push({ method, url, status: response.status });
    return response;
  };

  const opts = { fetch: recordingFetch };
  let provider;
  if (args['oauth-client-id']) {
    provider = new RecordingProvider({
      clientId: args['oauth-client-id'],
      clientSecret: args['oauth-client-secret'],
      expectedIssuer: args['oauth-issuer'],
      clientName: 'mcp-security-e2e',
    });
    opts.authProvider = provider;
  } else if (args.token) {
    opts.requestInit = { headers: { Authorization: `Bearer ${args.token}` } };
  }

  const transport = new StreamableHTTPClientTransport(new URL(args.url), opts);
  const client = new Client({ name: 'mcp-security-e2e-ts', version: '0.0.0' });
  try {
    await client.connect(transport);
    report.connected = true;
    report.protocol = transport.protocolVersion ?? LATEST_PROTOCOL_VERSION;
    report.session = transport.sessionId !== undefined;
    const listed = await client.listTools();
    report.tools = listed.tools.map(t => t.name).sort();
    const who = await client.callTool({ name: 'whoami', arguments: {} });
    report.whoami = JSON.parse(who.content?.[0]?.text ?? 'null');
    const sent = `ts-${process.pid}-${Date.now()}`;
    const echoed = await client.callTool({ name: 'echo', arguments: { text: sent } });
    report.echo = { sent, got: echoed.content?.[0]?.text ?? null, isError: echoed.isError === true };
    if (provider) {
      const tokens = provider.tokens();
      report.oauth = {
        resource: provider.discovery?.resourceMetadata?.resource ?? null,
        authorization_server: provider.discovery?.authorizationServerUrl ?? null,
        token_type: tokens?.token_type ?? null,
        got_token: typeof tokens?.access_token === 'string' && tokens.access_token.length > 0,
      };
    }
    report.ok = true;
  } finally {
    await closeQuietly(transport, client);
  }
}

process.exitCode = await runClient(
  { client: 'typescript', sdk: '@modelcontextprotocol/sdk', ok: false },
  ['url'],
  drive,
);
