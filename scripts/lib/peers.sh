# Shared by .ci/run, scripts/test and scripts/demo: the real peers rscp is
# tested against, installed when missing. Source this file, then:
#   install_peers server client dropbear   (any of them)
# Installs with apt-get as root (through sudo when it can ask nothing);
# otherwise says what is missing and returns 1.

_peer_packages() {
    local want
    for want in "$@"; do
        case $want in
            server)
                [ -x /usr/sbin/sshd ] || echo openssh-server
                # SFTP mode's tests (and Dropbear's sftp subsystem) use it.
                [ -x /usr/lib/openssh/sftp-server ] || echo openssh-sftp-server
                ;;
            client)
                local tool
                for tool in ssh scp ssh-keygen ssh-agent ssh-add sftp; do
                    command -v "$tool" >/dev/null || { echo openssh-client; break; }
                done
                ;;
            dropbear) command -v dropbear >/dev/null || echo dropbear-bin ;;
        esac
    done
}

install_peers() {
    local missing
    missing=$(_peer_packages "$@" | sort -u | tr '\n' ' ')
    [ -n "${missing// /}" ] || return 0
    local sudo=
    if [ "$(id -u)" != 0 ]; then
        if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
            sudo=sudo
        else
            echo "$(basename "$0"): not installed: $missing(as root: apt-get install -y $missing)" >&2
            return 1
        fi
    fi
    if ! command -v apt-get >/dev/null; then
        echo "$(basename "$0"): not installed: $missing(no apt-get here)" >&2
        return 1
    fi
    echo "== installing $missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    # shellcheck disable=SC2086
    $sudo apt-get install -y -q $missing >/dev/null ||
        { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q $missing >/dev/null; }
}
