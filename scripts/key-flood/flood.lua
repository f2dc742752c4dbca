-- wrk script for scripts/key-flood.sh: every request comes from a new client address through
-- the trusted proxy (X-Forwarded-For), without a credential, as a stateless 2026-07-28
-- tools/call. Addresses are counted from 10.0.0.0 upwards: thread t of T sends addresses
-- START + t, START + t + T, ... and stops after COUNT / T answers, so the run sends COUNT
-- distinct addresses (plus at most one in flight per connection when a thread stops).
-- A stopped thread creates the file DONE<thread number>; wrk itself runs until its -d or a
-- SIGINT, which the script sends once every thread is done.
--
--   wrk -t2 -c64 -d1h -s flood.lua URL -- START COUNT THREADS DONE   (THREADS = wrk's -t)
--
-- done() prints one line: "flood: <answers> answers, status <code>=<n> ..." for the script.

local next_id = 0
local threads = {}

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo",'
  .. '"arguments":{"text":"flood"},"_meta":{"io.modelcontextprotocol/protocolVersion":'
  .. '"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}'

function init(args)
  start = tonumber(args[1]) or 0
  count = tonumber(args[2]) or 1000000
  nthreads = tonumber(args[3]) or 1
  done_prefix = args[4]
  stopped = false
  sent = 0
  answers = 0
  statuses = {}
end

local function address(n)
  return string.format("10.%d.%d.%d", math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
end

function request()
  local n = start + id + nthreads * sent
  sent = sent + 1
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/json, text/event-stream",
    ["MCP-Protocol-Version"] = "2026-07-28",
    ["Mcp-Method"] = "tools/call",
    ["Mcp-Name"] = "echo",
    ["X-Forwarded-For"] = address(n),
  }, body)
end

function response(status, headers, body)
  answers = answers + 1
  statuses[status] = (statuses[status] or 0) + 1
  if not stopped and answers >= math.ceil(count / nthreads) then
    stopped = true
    if done_prefix then
      local f = io.open(done_prefix .. id, "w")
      if f then f:close() end
    end
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local total = 0
  local by = {}
  for _, t in ipairs(threads) do
    total = total + (t:get("answers") or 0)
    local s = t:get("statuses") or {}
    for k, v in pairs(s) do by[k] = (by[k] or 0) + v end
  end
  local parts = {}
  for k, v in pairs(by) do table.insert(parts, string.format("%s=%d", tostring(k), v)) end
  table.sort(parts)
  io.write(string.format("flood: %d answers, %d socket errors, status %s\n", total,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    table.concat(parts, " ")))
end
