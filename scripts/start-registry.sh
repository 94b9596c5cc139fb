#!/usr/bin/env bash
# Start a private registry on 127.0.0.1 (Debian's docker-registry, distribution 2.8) as real ones run: TLS with a
# certificate from a CA made here, and htpasswd logins. For the tests (tests/test_registry_engine.py starts one per
# session and removes it) and for trying docs/registry.md on one machine.
#
#   scripts/start-registry.sh DIR PORT USER PASSWORD
#
# Writes into DIR (created): ca.crt + ca.key (the CA), server.crt + server.key (127.0.0.1, localhost), htpasswd,
# config.yml, data/ (the registry's storage), registry.log, registry.pid; prints the registry's pid on stdout.
# Trusting it is the caller's move: Docker reads /etc/docker/certs.d/127.0.0.1:PORT/ca.crt at each push and pull.
# Stop it with: kill "$(cat DIR/registry.pid)"; rm -rf DIR
# Env: REGISTRY_WAIT (seconds, default 30).
set -euo pipefail

if (($# != 4)); then
    echo "usage: $0 DIR PORT USER PASSWORD" >&2
    exit 2
fi
DIR=$1 PORT=$2 USER_NAME=$3 PASSWORD=$4
WAIT="${REGISTRY_WAIT:-30}"
log() { echo "[start-registry] $*" >&2; }

for tool in docker-registry htpasswd openssl curl; do
    command -v "$tool" >/dev/null || {
        log "$tool not found: apt-get install -y docker-registry apache2-utils openssl curl"
        exit 1
    }
done
mkdir -p "$DIR/data"
DIR=$(cd "$DIR" && pwd)

# --- the CA and the server's certificate --------------------------------------------------------------
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=dockyard test registry CA" \
    -keyout "$DIR/ca.key" -out "$DIR/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$DIR/server.key" -out "$DIR/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
    > "$DIR/server.ext"
openssl x509 -req -in "$DIR/server.csr" -CA "$DIR/ca.crt" -CAkey "$DIR/ca.key" -CAcreateserial -days 2 \
    -extfile "$DIR/server.ext" -out "$DIR/server.crt" 2>/dev/null
chmod 600 "$DIR/ca.key" "$DIR/server.key"

# --- logins (bcrypt, what distribution's htpasswd accepts) -----------------------------------------------
htpasswd -Bbn "$USER_NAME" "$PASSWORD" > "$DIR/htpasswd"

cat > "$DIR/config.yml" <<YAML
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $DIR/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$PORT
  tls:
    certificate: $DIR/server.crt
    key: $DIR/server.key
auth:
  htpasswd:
    realm: dockyard-test
    path: $DIR/htpasswd
YAML

setsid nohup docker-registry serve "$DIR/config.yml" > "$DIR/registry.log" 2>&1 < /dev/null &
pid=$!
echo "$pid" > "$DIR/registry.pid"
for ((i = 0; i < WAIT * 4; i++)); do
    # 401 is the answer of a registry that wants a login: it is up, and its certificate verifies with our CA.
    code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$DIR/ca.crt" "https://127.0.0.1:$PORT/v2/" || true)
    if [[ $code == 401 || $code == 200 ]]; then
        log "registry (pid $pid) answers on https://127.0.0.1:$PORT after $((i / 4))s"
        echo "$pid"
        exit 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
        log "docker-registry exited; its log:"
        tail -n 20 "$DIR/registry.log" >&2
        exit 1
    fi
    sleep 0.25
done
log "no answer within ${WAIT}s; stopping it"
kill "$pid" 2>/dev/null || true
exit 1
