#!/usr/bin/env bash
# Start the ModelServer stand-in on the example models and the gateway in front of it,
# print working curl and client commands, and stop both on Ctrl-C. Run through `make demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
PORT=${PORT:-8501}
GRPC_PORT=${GRPC_PORT:-8500}
GATEWAY_GRPC_PORT=${GATEWAY_GRPC_PORT:-8001}
LOGS=$(mktemp -d)

cleanup() {
  [[ -n "${GATEWAY_PID:-}" ]] && kill "$GATEWAY_PID" 2>/dev/null || true
  [[ -n "${BACKEND_PID:-}" ]] && kill "$BACKEND_PID" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

"$PY" -m devserver --port "$GRPC_PORT" --model_config_file examples/models.config >"$LOGS/devserver.out" 2>"$LOGS/devserver.err" &
BACKEND_PID=$!
for _ in $(seq 1 600); do
  grep -q "devserver listening" "$LOGS/devserver.out" 2>/dev/null && break
  kill -0 "$BACKEND_PID" 2>/dev/null || { cat "$LOGS/devserver.err" >&2; exit 1; }
  sleep 0.1
done

export TFS_GATEWAY__SERVER__GRPC_PORT="$GATEWAY_GRPC_PORT"  # server.grpc_port: OIP and TF Serving gRPC
"$PY" -m gateway --host 127.0.0.1 --port "$PORT" --backend "127.0.0.1:$GRPC_PORT" \
  --config examples/gateway.yaml >"$LOGS/access.log" 2>"$LOGS/gateway.err" &
GATEWAY_PID=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
  kill -0 "$GATEWAY_PID" 2>/dev/null || { cat "$LOGS/gateway.err" >&2; exit 1; }
  sleep 0.1
done

B="http://127.0.0.1:$PORT"
cat <<MSG

tfserving-gateway is serving on $B (gRPC on 127.0.0.1:$GATEWAY_GRPC_PORT), in front of the
ModelServer stand-in on 127.0.0.1:$GRPC_PORT.
Logs: $LOGS (access.log holds one JSON line per request). Try:

  curl $B/v1/models/half_plus_two
  curl $B/v1/models/half_plus_two/metadata
  curl -d '{"instances": [1.0, 2.0, 5.0]}' $B/v1/models/half_plus_two:predict
  curl -d '{"instances": [1.0, 2.0, 5.0]}' $B/v1/models/half_plus_two/versions/2:predict
  curl -d '{"inputs": [1.0, 2.0]}' $B/v1/models/half_plus_two/labels/stable:predict
  curl -d '{"signature_name": "regress_x_to_y", "examples": [{"x": 1.0}, {"x": 2.0}]}' $B/v1/models/half_plus_two:regress
  curl -d '{"instances": [{"a": [1, 2, 3], "b": 4, "s": "hi"}]}' $B/v1/models/multi_io:predict
  curl -d '{"inputs": [1.0, 2.0]}' $B/model-serving/demo:predict
  curl $B/model-serving/demo/metadata
  curl -H 'X-User-ID: dave' -d '{"instances": [1.0]}' $B/model-serving/canary:predict
  curl $B/metrics

Example clients (examples/clients/): each sends a handwritten 5 (digit5.png; --image FILE for
another) to mnist, a small network trained on scikit-learn's digits, and prints the digit it reads.
TF Serving REST with requests, and TF Serving gRPC with PredictionServiceStub (through the gateway):

  $PY examples/clients/rest_v1.py --url $B --model mnist
  $PY examples/clients/rest_v1.py --url $B --deployment digits
  $PY examples/clients/tfs_grpc.py --url 127.0.0.1:$GATEWAY_GRPC_PORT --model mnist

Open Inference Protocol (V2), for the gateway's V2 fronts: tritonclient.http (binary, then JSON),
kserve's InferenceRESTClient, and tritonclient.grpc (the gateway's gRPC port):

  $PY examples/clients/v2_http.py --url 127.0.0.1:$PORT --model mnist
  $PY examples/clients/v2_http.py --url 127.0.0.1:$PORT --model mnist --json
  $PY examples/clients/v2_kserve.py --url $B --model mnist
  $PY examples/clients/v2_grpc.py --url 127.0.0.1:$GATEWAY_GRPC_PORT --model mnist

Press Ctrl-C to stop.
MSG
for cmd in "curl -s -d '{\"instances\": [1.0, 2.0, 5.0]}' $B/v1/models/half_plus_two:predict" \
  "$PY examples/clients/rest_v1.py --url $B --model mnist"; do
  echo "\$ $cmd"; eval "$cmd"; echo
done
wait "$GATEWAY_PID"
