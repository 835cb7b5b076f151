#!/bin/sh
# A pool of N copies of a service, each under `huptime --multi=1`: the copies share the listening
# port (SO_REUSEPORT). SIGHUP to this script restarts every copy with zero downtime; SIGTERM or
# SIGINT stops them all; the script exits when they have all exited.
#
#   N=4 examples/pool.sh /usr/bin/myservice --its --options &
#   kill -HUP $!      # restart all
#   kill -TERM $!     # stop all
HUPTIME=${HUPTIME:-huptime}
N=${N:-4}
pids=""

# The traps run between the commands of the wait loop below, and sh has no local variables: they
# use a name of their own so that the loop's "$pid" is not changed under it.
reload() {
    for copy in $pids; do kill -HUP "$copy" 2>/dev/null; done
}

stop() {
    for copy in $pids; do kill -TERM "$copy" 2>/dev/null; done
}

trap reload HUP
trap stop TERM INT

count=0
while [ "$count" -lt "$N" ]; do
    "$HUPTIME" --multi=1 "$@" &
    pids="$pids $!"
    count=$((count + 1))
done

status=0
for pid in $pids; do
    # `wait` returns early when a trapped signal arrives: keep waiting until this copy has exited.
    while kill -0 "$pid" 2>/dev/null; do
        wait "$pid"
        rc=$?
    done
    [ "$status" -ne 0 ] || status=${rc:-0}
done
exit "$status"
