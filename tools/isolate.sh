# Fallback isolation (used when bwrap cannot run): runs COMMAND with the workspace and the extra
# writable paths writable, every other mount read-only, capabilities dropped.
# Called as: unshare --net --mount --propagation private --pid --fork --kill-child --mount-proc --
#            sh -c "$(cat isolate.sh)" isolate WORKSPACE CWD [WRITABLE...] -- COMMAND...
ws="$1"; cwd="$2"; shift 2
keep="$ws"
mount --bind "$ws" "$ws" || { echo "sandbox: cannot bind the workspace" >&2; exit 97; }
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
  mount --bind "$1" "$1" || { echo "sandbox: cannot bind $1" >&2; exit 97; }
  keep="$keep
$1"; shift
done
[ "$1" = "--" ] && shift
for mp in $(awk '{print $2}' /proc/self/mounts | sort -u); do
  case "$mp" in /proc|/dev/pts) continue;; esac  # /dev read-only too: its device nodes still work
  case "
$keep
" in *"
$mp
"*) continue;; esac
  mount -o remount,bind,ro "$mp" 2>/dev/null
done
# a private, bounded /dev/shm (multiprocessing needs one), then /proc's knobs read-only
[ -d /dev/shm ] && mount -t tmpfs -o size=256m,mode=1777,nosuid,nodev tmpfs /dev/shm 2>/dev/null
for p in /proc/sys /proc/sysrq-trigger; do
  mount --bind "$p" "$p" 2>/dev/null && mount -o remount,bind,ro "$p" 2>/dev/null
done
cd "$cwd" || exit 97
exec setpriv --bounding-set=-all --inh-caps=-all --no-new-privs -- "$@"
