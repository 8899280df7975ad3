# Runs "$@" with the workspace writable and every other mount read-only, capabilities dropped.
# Called as: unshare --net --mount --propagation private -- sh isolate.sh WORKSPACE CWD COMMAND...
ws="$1"; cwd="$2"; shift 2
mount --bind "$ws" "$ws" || { echo "sandbox: cannot bind the workspace" >&2; exit 97; }
for mp in $(awk '{print $2}' /proc/self/mounts | sort -u); do
  case "$mp" in "$ws"|/proc|/dev|/dev/pts) continue;; esac
  mount -o remount,bind,ro "$mp" 2>/dev/null
done
for p in /proc/sys /proc/sysrq-trigger; do
  mount --bind "$p" "$p" 2>/dev/null && mount -o remount,bind,ro "$p" 2>/dev/null
done
cd "$cwd" || exit 97
exec setpriv --bounding-set=-all --inh-caps=-all --no-new-privs -- "$@"
