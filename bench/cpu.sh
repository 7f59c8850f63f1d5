#!/bin/bash
# CPU per request of each process involved, for one or more bench servers run one after the
# other (alternate them for paired figures):
#
#   bench/cpu.sh SCENARIO SECS KIND[:ENV=VALUE] ...
#
# e.g. `bench/cpu.sh returning 4 redis actix-redis redis actix-redis`, or
# `bench/cpu.sh returning 4 redis redis:LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2`.
# Needs `cargo build --release --manifest-path bench/Cargo.toml`, a redis-server at REDIS_URL
# (default redis://127.0.0.1:6379/0; it is flushed before each server) and, for the postgres
# kinds, DATABASE_URL. A spec's ENV may be BENCH_SERVER=PATH: another build of the server (to
# compare two builds, alternating). Reports requests/s and the CPU (user + system, from /proc) per request
# of the app server (and its user share), of Redis (its `INFO`), and of every process of the `postgres` user. With
# BENCH_CMDSTATS=1 it also prints, per Redis command, the calls per request and the µs Redis spent
# in each call (`INFO commandstats` after `CONFIG RESETSTAT`; a script's own commands included).
set -eu
cd "$(dirname "$0")/.."
scenario=$1 secs=$2
shift 2
redis=${REDIS_URL:-redis://127.0.0.1:6379/0}
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
uticks() { awk '{print $14}' "/proc/$1/stat" 2>/dev/null || echo 0; }
pg_ticks() {
    local sum=0 p
    for p in $(pgrep -u postgres || true); do sum=$((sum + $(ticks "$p"))); done
    echo "$sum"
}
redis_secs() { redis-cli -u "$redis" INFO cpu | awk -F: '/used_cpu_(sys|user):/ {s += $2} END {print s}'; }
for spec in "$@"; do
    kind=${spec%%:*}
    env=()
    [[ $spec == *:* ]] && env=("${spec#*:}")
    redis-cli -u "$redis" FLUSHALL >/dev/null
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    bin=bench/target/release/server
    [[ ${env[0]:-} == BENCH_SERVER=* ]] && bin=${env[0]#BENCH_SERVER=} && env=()
    env "${env[@]}" "$bin" "$kind" "$port" "$redis" >/dev/null &
    server=$!
    sleep 1
    bench/target/release/load "http://127.0.0.1:$port" 32 1 "$scenario" >/dev/null
    [[ ${BENCH_CMDSTATS:-} == 1 ]] && redis-cli -u "$redis" CONFIG RESETSTAT >/dev/null
    c0=$(ticks $server) u0=$(uticks $server) p0=$(pg_ticks) r0=$(redis_secs)
    out=$(bench/target/release/load "http://127.0.0.1:$port" 32 "$secs" "$scenario")
    c1=$(ticks $server) u1=$(uticks $server) p1=$(pg_ticks) r1=$(redis_secs)
    kill $server
    wait $server 2>/dev/null || true
    requests=$(grep -o 'requests=[0-9]*' <<<"$out" | cut -d= -f2)
    rps=$(grep -o 'rps=[0-9]*' <<<"$out" | cut -d= -f2)
    awk -v s="$spec" -v rps="$rps" -v n="$requests" -v c=$((c1 - c0)) -v u=$((u1 - u0)) -v p=$((p1 - p0)) \
        -v r="$(awk -v a="$r0" -v b="$r1" 'BEGIN {print b - a}')" \
        'BEGIN {printf "%-48s %7d req/s  server %6.1f µs (user %5.1f)  redis %5.1f µs  postgres %6.1f µs per request\n",
                s, rps, c * 1e4 / n, u * 1e4 / n, r * 1e6 / n, p * 1e4 / n}'
    if [[ ${BENCH_CMDSTATS:-} == 1 ]]; then
        redis-cli -u "$redis" INFO commandstats | tr -d '\r' | awk -F'[:,=]' -v n="$requests" \
            '/^cmdstat_/ && $2 != "" {sub("cmdstat_", "", $1); if ($1 !~ /^(info|config)/)
                printf "    %-10s %5.2f calls/req  %5.2f µs/call\n", $1, $3 / n, $7}'
    fi
done
