# lib.sh — shell helpers shared by the benchmark scripts (sourced, not run).
# Expects BUILD to be set; sets LIB (the library) and PIN_SERVER/PIN_CLIENT.

LIB=$(cd "$BUILD" && pwd -P)/libsluice.so

# Server and client on different CPUs when there are two or more, so that the
# client's work does not come out of the server's share.
PIN_SERVER="" PIN_CLIENT=""
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null 2>&1; then
    PIN_SERVER="taskset -c 0" PIN_CLIENT="taskset -c 1"
fi

need() {  # need TOOL... — stop with a clear message when one is missing
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || { echo "bench: $tool is missing (make deps)" >&2; exit 1; }
    done
}

free_port() {
    /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# CPU time (user + system) of one process, in clock ticks; 0 once it is gone.
cpu_ticks() {
    awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# Children of a process (nginx's workers): the processes whose parent it is,
# from /proc/*/stat (the kernel may lack /proc/PID/task/TID/children).
children_of() {
    for f in /proc/[0-9]*/stat; do
        cat "$f" 2>/dev/null
    done | awk -v parent="$1" '{ pid = $1; sub(/.*\) /, ""); if ($2 == parent) print pid }'
}

# CPU ticks of several processes together.
ticks_of() {
    total=0
    for p in "$@"; do
        total=$((total + $(cpu_ticks "$p")))
    done
    echo $total
}

# Waits until something listens on 127.0.0.1:PORT (up to ~5 s).
wait_port() {
    tries=0
    until /usr/bin/python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2).close()' "$1" 2>/dev/null; do
        tries=$((tries + 1))
        [ $tries -lt 100 ] || { echo "bench: nothing listens on port $1" >&2; return 1; }
        sleep 0.05
    done
}

median() {
    tr ' ' '\n' | grep -v '^$' | sort -n | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print 0; exit }
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# pair_ratio "A1 A2 ..." "B1 B2 ..." -> median of Bi/Ai: each round's two runs
# are close in time, so their ratio is less disturbed by load that comes and
# goes than the ratio of the two medians.
pair_ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { n = split(a, x, " "); split(b, y, " ")
        for (i = 1; i <= n; i++) if (x[i] > 0) print y[i] / x[i] }' | median | awk '{ printf "%.3f\n", $1 }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }

verdict() {  # verdict VALUE TARGET le|ge|lt
    awk -v v="$1" -v t="$2" -v dir="$3" 'BEGIN {
        if (v == "n/a" || v == "") print "?";
        else if ((dir == "le" && v + 0 <= t + 0) || (dir == "ge" && v + 0 >= t + 0) || (dir == "lt" && v + 0 < t + 0)) print "ok";
        else print "MISSED" }'
}

# --- nginx ---------------------------------------------------------------------
# nginx_conf DIR PORT [BACKLOG] [EXTRA_HTTP] [EXTRA_LOCATION]: a config in DIR,
# one worker, serving DIR/html on 127.0.0.1:PORT.
nginx_conf() {
    dir=$1 port=$2 backlog=${3:-511} extra_http=${4:-} extra_loc=${5:-}
    mkdir -p "$dir/html" "$dir/tmp"
    chmod 755 "$dir" "$dir/html"
    cat > "$dir/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 8192;
pid $dir/nginx.pid;
error_log $dir/error.log error;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    keepalive_requests 1000000;
    $extra_http
    server {
        listen 127.0.0.1:$port backlog=$backlog;
        server_name bench;
        root $dir/html;
        location / { $extra_loc }
        location /big { limit_rate 64k; }
    }
}
EOF
}

NGINX_PID=""
# nginx_start DIR ENV...: nginx in the foreground (daemon off) on CPU 0, with
# ENV (VAR=value words, LD_PRELOAD among them or not) in its environment.
nginx_start() {
    dir=$1
    shift
    env -u LD_PRELOAD "$@" $PIN_SERVER nginx -c "$dir/nginx.conf" -p "$dir" 2>>"$dir/error.log" &
    NGINX_PID=$!
}

# nginx_ready DIR PORT: waits until nginx listens and its worker runs, and
# notes the worker's pid in NGINX_WORKERS (found once: a scan of /proc can
# miss a process now and then); says what went wrong (from its error log)
# when nginx died instead.
NGINX_WORKERS=""
nginx_ready() {
    wait_port "$2" || { cat "$1/error.log" >&2; return 1; }
    tries=0
    until NGINX_WORKERS=$(children_of "$NGINX_PID") && [ -n "$NGINX_WORKERS" ]; do
        kill -0 "$NGINX_PID" 2>/dev/null && [ $tries -lt 100 ] ||
            { echo "bench: nginx did not start:" >&2; cat "$1/error.log" >&2; return 1; }
        tries=$((tries + 1))
        sleep 0.05
    done
}

# CPU ticks of nginx's master and workers together.
nginx_ticks() {
    ticks_of "$NGINX_PID" $NGINX_WORKERS
}

nginx_stop() {
    if [ -n "$NGINX_PID" ]; then
        kill -QUIT "$NGINX_PID" 2>/dev/null || true
        # A graceful stop waits for slow downloads; do not let it linger.
        tries=0
        while kill -0 "$NGINX_PID" 2>/dev/null && [ $tries -lt 20 ]; do
            sleep 0.05
            tries=$((tries + 1))
        done
        kill -TERM "$NGINX_PID" 2>/dev/null || true
        wait "$NGINX_PID" 2>/dev/null || true
        NGINX_PID=""
    fi
}

# wrk_run URL DURATION [ARGS...] -> "REQS_PER_S NON2XX ERRORS SECONDS REQUESTS"
# REQS_PER_S counts complete answers only (wrk counts socket errors apart);
# ERRORS sums connect, read, write and timeout errors.
wrk_run() {
    url=$1 dur=$2
    shift 2
    $PIN_CLIENT wrk -t1 -c32 -d"$dur" "$@" "$url" 2>&1 | awk '
        /requests in/ { n = $1; s = $4; sub(/s,?$/, "", s); if (s ~ /ms$/) { sub(/ms$/, "", s); s /= 1000 } }
        /Requests\/sec:/ { rps = $2 }
        /Non-2xx or 3xx responses:/ { non2xx = $NF }
        /Socket errors:/ { gsub(/,/, ""); errs = $4 + $6 + $8 + $10 }
        END { printf "%s %d %d %s %d\n", (rps == "" ? 0 : rps), non2xx, errs, (s == "" ? 0 : s), n }'
}
