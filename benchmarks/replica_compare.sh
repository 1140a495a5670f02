#!/bin/bash
# Replica benchmark (issue 16): the 50-user load against one process, then against
# `arena deploy local --replicas 2` behind HAProxy, on one throwaway PostgreSQL (.ci/services),
# two rounds alternating.  Usage: OUT=DIR bash benchmarks/replica_compare.sh
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d)}; mkdir -p "$OUT"; echo "results in $OUT"
[ -f .venv/bin/activate ] && . .venv/bin/activate
export GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
set +u; . .ci/services; set -u
echo "PG=$ARENA_TEST_PG_URL"
BASE=${ARENA_TEST_PG_URL%/*}
psql "$(echo $BASE | sed 's/+psycopg//')/postgres" -qc "CREATE DATABASE rep_one" -c "CREATE DATABASE rep_two" || true
SPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python benchmarks/stream_server.py --port $SPORT --tokens 24 --delay 0.01 > $OUT/stub.log 2>&1 &
STUB=$!
python - <<PY
import sys; sys.path.insert(0, "benchmarks")
from pathlib import Path
from load_test import write_roster
write_roster(Path("$OUT/roster.toml"), "http://127.0.0.1:$SPORT/v1")
PY
export ARENA_PROMPTS_PER_MINUTE=0 ARENA_VOTES_PER_DAY=0 ARENA_PROMPTS_PER_MINUTE_PER_ADDRESS=0 ARENA_VOTES_PER_DAY_PER_ADDRESS=0 ARENA_DUPLICATE_PROMPT_CAP=0 ARENA_MAX_LIVE_BATTLES=0 ARENA_MAX_LIVE_BATTLES_PER_ADDRESS=0
for round in 1 2; do
  echo "== one process, round $round, load $(cut -d' ' -f1 /proc/loadavg)"
  timeout 200 python benchmarks/load_test.py --users 50 --seconds 40 --db "$BASE/rep_one" --json $OUT/one-$round.json > $OUT/one-$round.log 2>&1
  tail -c 600 $OUT/one-$round.log | grep -E "ack|battles|ratio" | head -5
  echo "== two replicas, round $round, load $(cut -d' ' -f1 /proc/loadavg)"
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  ARENA_DATA_DIR=$OUT/data python -m arena deploy local --replicas 2 --db "$BASE/rep_two" --roster $OUT/roster.toml --port $PORT > $OUT/deploy-$round.log 2>&1 &
  DEP=$!
  for i in $(seq 1 120); do curl -sf --noproxy '*' http://127.0.0.1:$PORT/ >/dev/null && break; sleep 1; done
  timeout 200 python benchmarks/load_test.py --via http://127.0.0.1:$PORT/ --users 50 --seconds 40 --db "$BASE/rep_two" --json $OUT/two-$round.json > $OUT/two-$round.log 2>&1
  kill -TERM $DEP; wait $DEP
done
kill $STUB
OUT="$OUT" python3 - <<'PY'
import glob, json, os
for f in sorted(glob.glob(os.environ["OUT"] + "/*-[12].json")):
    d = json.load(open(f))
    print(f.split("/")[-1], d["battles"], d["battles_per_s"], "lost/dup/err", d["lost_votes"], d["duplicate_votes"], d["errors"],
          "ack", d["vote_ack_p50_s"], d["vote_ack_p95_s"], "ttft", d["ttft_p50_s"], d["ttft_p95_s"],
          "new", d["new_user_ttft_idle_s"], d["new_user_ttft_loaded_s"], d["new_user_ttft_ratio"])
PY
