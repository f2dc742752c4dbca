# Shared by scripts/soak.sh and scripts/key-flood.sh: watch and stop the example server they
# started. Source it after setting SERVER (the server's pid), PORT, WORK (its log is
# $WORK/server.log) and NAME (the script's name, for messages).

# Wait until the server accepts a TCP connection (not an HTTP request: every audited request
# comes from the traffic); exit naming the failure when it dies first or never listens.
wait_listening() {
  for _ in $(seq 1 150); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 1)" 2>/dev/null && return 0
    kill -0 "$SERVER" 2>/dev/null || { cat "$WORK/server.log"; echo "$NAME: FAIL the server exited at start"; exit 1; }
    sleep 0.2
  done
  cat "$WORK/server.log"
  echo "$NAME: FAIL the server did not listen on port $PORT (150 attempts, 0.2 s apart)"
  exit 1
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER/status" 2>/dev/null; }
fds() { find "/proc/$SERVER/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

# In the background, every INTERVAL seconds until the server exits: seconds since now, RSS
# (KiB), open fds, to FILE. Sets SAMPLER and start.
sample() { # INTERVAL FILE
  start=$(date +%s)
  (
    while kill -0 "$SERVER" 2>/dev/null; do
      echo "$(( $(date +%s) - start )) $(rss_kib) $(fds)"
      sleep "$1"
    done
  ) >"$2" &
  SAMPLER=$!
}

# Connections drain: wait (bounded) for the fds to come back to IDLE + 4. Sets fd_after.
drain_fds() { # IDLE
  for _ in $(seq 1 30); do
    fd_after=$(fds)
    [ "$fd_after" -le $(($1 + 4)) ] && break
    sleep 0.5
  done
}

# Stop the sampler, then the server, gracefully (which closes the audit chain).
stop_server() {
  [ -n "${SAMPLER:-}" ] && kill "$SAMPLER" 2>/dev/null
  SAMPLER=""
  kill -TERM "$SERVER" 2>/dev/null
  for _ in $(seq 1 50); do kill -0 "$SERVER" 2>/dev/null || break; sleep 0.2; done
  kill -KILL "$SERVER" 2>/dev/null
  wait "$SERVER" 2>/dev/null
  SERVER=""
}
