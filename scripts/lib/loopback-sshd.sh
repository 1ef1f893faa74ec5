# Shared by scripts/demo and scripts/bench: a throwaway OpenSSH sshd on
# 127.0.0.1 with its own keys and a free port; nothing of the user's is read
# or touched. Source this file, then:
#   loopback_sshd_start DIR [sshd_config line...]   (extra lines take precedence)
#   loopback_sshd_stop
# Afterwards DIR holds ssh_config (pass with -F), known_hosts, client_key,
# and SSHD_PORT / SSHD_PID are set. Needs the repository's tests/fixture.

SSHD=${SSHD:-/usr/sbin/sshd}
SSHD_PORT=
SSHD_PID=
_loopback_fixture=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../tests/fixture" && pwd)

loopback_sshd_check() {
    if [ ! -x "$SSHD" ] || ! command -v ssh >/dev/null || ! command -v ssh-keygen >/dev/null; then
        echo "$(basename "$0"): needs OpenSSH (as root: apt-get install -y openssh-server openssh-client)" >&2
        return 1
    fi
}

loopback_port_is_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

loopback_sshd_start() {
    local dir=$1 port attempt
    shift
    loopback_sshd_check || return 1
    ssh-keygen -q -t ed25519 -N '' -C rscp-loopback -f "$dir/host_key"
    ssh-keygen -q -t ed25519 -N '' -C rscp-loopback -f "$dir/client_key"
    cp "$dir/client_key.pub" "$dir/authorized_keys"
    [ "$(id -u)" = 0 ] && mkdir -p /run/sshd
    for attempt in 1 2 3 4 5; do
        port=$((20000 + RANDOM % 40000))
        loopback_port_is_open "$port" && continue
        {
            printf '%s\n' "$@"
            sed -e "s|@PORT@|$port|g" -e "s|@DIR@|$dir|g" "$_loopback_fixture/sshd_config.in"
        } >"$dir/sshd_config"
        "$SSHD" -D -e -f "$dir/sshd_config" 2>"$dir/sshd.log" &
        SSHD_PID=$!
        # Ours is ready when it says so: a port that answers may be another's.
        for _ in $(seq 100); do
            grep -qF "Server listening on 127.0.0.1 port $port." "$dir/sshd.log" && break
            kill -0 "$SSHD_PID" 2>/dev/null || break
            sleep 0.05
        done
        if grep -qF "Server listening on 127.0.0.1 port $port." "$dir/sshd.log" &&
            kill -0 "$SSHD_PID" 2>/dev/null; then
            SSHD_PORT=$port
            break
        fi
        kill "$SSHD_PID" 2>/dev/null || true
        wait "$SSHD_PID" 2>/dev/null || true
        SSHD_PID=
    done
    if [ -z "$SSHD_PID" ]; then
        echo "$(basename "$0"): sshd did not start:" >&2
        cat "$dir/sshd.log" >&2
        return 1
    fi
    echo "[127.0.0.1]:$SSHD_PORT $(cut -d' ' -f1,2 "$dir/host_key.pub")" >"$dir/known_hosts"
    sed -e "s|@PORT@|$SSHD_PORT|g" -e "s|@DIR@|$dir|g" "$_loopback_fixture/ssh_config.in" >"$dir/ssh_config"
}

loopback_sshd_stop() {
    if [ -n "$SSHD_PID" ]; then
        kill "$SSHD_PID" 2>/dev/null || true
        wait "$SSHD_PID" 2>/dev/null || true
        SSHD_PID=
    fi
    return 0
}
