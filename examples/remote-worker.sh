#!/usr/bin/env bash
# A minimal conveyor worker in shell: curl, plus jq when installed (else python3 for JSON).
# Each job's data goes to your command's stdin; exit 0 completes the job (stdout becomes its
# result, as a string), anything else fails the attempt (the last stderr lines are the error).
#
#   CONVEYOR_URL=http://127.0.0.1:8080 CONVEYOR_KEY=cvk_... CONVEYOR_QUEUES=email \
#     examples/remote-worker.sh ./send-mail.sh
#
# One job at a time; its lease is renewed every 10 s while the command runs; SIGTERM/SIGINT
# stop the worker after the job in hand. See docs/http-api.md.
set -uo pipefail
URL=${CONVEYOR_URL:-http://127.0.0.1:8080}
QUEUES=${CONVEYOR_QUEUES:?set CONVEYOR_QUEUES, e.g. email or email,sms}
LEASE_MS=30000 WAIT_MS=${CONVEYOR_WAIT_MS:-20000}
[ $# -gt 0 ] || { echo "usage: $0 command [args...]" >&2; exit 2; }

if command -v jq >/dev/null; then
  get() { jq -r "$1 | if type == \"string\" then . else tojson end"; }   # get '.jobs[0].id' < json
  str() { jq -Rs .; }                                                    # stdin as one JSON string
else
  get() { python3 -c 'import json, re, sys
v = json.load(sys.stdin)
for k in re.findall(r"[^.\[\]]+", sys.argv[1]): v = v[int(k)] if isinstance(v, list) else v[k]
print(v if isinstance(v, str) else json.dumps(v))' "$1"; }
  str() { python3 -c 'import json, sys; print(json.dumps(sys.stdin.read()))'; }
fi
auth=(); [ -n "${CONVEYOR_KEY:-}" ] && auth=(-H "authorization: Bearer $CONVEYOR_KEY")
api() { curl -sS --fail-with-body -X POST "$URL$1" "${auth[@]}" -H 'content-type: application/json' --data-binary "$2"; }

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
stop=0; poll=; trap 'stop=1; [ -n "$poll" ] && kill "$poll" 2>/dev/null' TERM INT
queues=$(printf '%s' "$QUEUES" | str | sed 's/,/","/g')   # a,b -> "a","b"
while [ $stop = 0 ]; do
  # Long-poll in the background, so a signal ends the wait at once (the server then gives back
  # anything it was about to hand over).
  api /api/v1/claim "{\"queues\":[$queues],\"limit\":1,\"leaseMs\":$LEASE_MS,\"waitMs\":$WAIT_MS}" > "$tmp/claim" &
  poll=$!; wait $poll; ok=$?; poll=
  [ $stop = 1 ] && break
  [ $ok = 0 ] || { echo "claim failed: $(cat "$tmp/claim")" >&2; sleep 2; continue; }
  [ "$(get '.jobs' < "$tmp/claim")" = '[]' ] && continue
  id=$(get '.jobs[0].id' < "$tmp/claim"); queue=$(get '.jobs[0].queue' < "$tmp/claim")
  token=$(get '.jobs[0].lease.token' < "$tmp/claim"); job="/api/v1/queues/$queue/jobs/$id"  # (URL-encode ids you choose)

  (while sleep 10; do api "$job/heartbeat" "{\"token\":\"$token\",\"leaseMs\":$LEASE_MS}" > /dev/null; done) &
  beat=$!
  get '.jobs[0].data' < "$tmp/claim" | "$@" > "$tmp/out" 2> "$tmp/err"; status=$?
  kill $beat
  if [ $status = 0 ]; then
    answer=$(api "$job/complete" "{\"token\":\"$token\",\"result\":$(str < "$tmp/out")}")
  else
    answer=$(api "$job/fail" "{\"token\":\"$token\",\"error\":{\"message\":$(tail -n 20 "$tmp/err" | str)}}")
  fi
  echo "job $id: $answer" >&2   # 409 LEASE_LOST: the lease expired (the job runs again elsewhere)
done
