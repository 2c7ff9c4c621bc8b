#!/bin/busybox sh
# /init of the Xen test bed's dom0 (busybox sh, PID 1), written by
# `unikit run --xen-testbed`. It starts the Xen toolstack, boots the guest
# with `xl create -c` and powers the machine off.
#
# Everything this prints goes to hvc0 -> Xen -> COM1 -> QEMU's stdout, which
# `unikit` reads. Two markers (APC strings, like the guest's exit marker)
# tell it where the guest console starts and ends; the rest is boot noise,
# shown only on failure or with UNIKIT_XEN_TESTBED_VERBOSE=1.
/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin:/usr/lib/xen-4.17/bin

# The end line: the host reads xl's status and the shutdown reason from it.
end_line() {
    printf '\033_unikit-xen:end;xl=%s;shutdown=%s\033\\\n' "$1" "$2"
}

poweroff_now() {
    sync
    # -f: no init to ask; QEMU runs with -no-reboot, so even a reboot ends it.
    poweroff -f
    sleep 5
    echo o > /proc/sysrq-trigger
}

fail() {
    echo "unikit-dom0: $*"
    end_line setup none
    poweroff_now
}

mkdir -p /proc /sys /dev
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /run /tmp /var/lock /var/run/xen /var/run/xenstored /var/lib/xen /var/lib/xenstored /var/log/xen
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
. /unikit/run.env

# Kernel modules, in dependency order (see modules.order next to them).
while read -r m; do
    insmod "/lib/modules/unikit/$m.ko" 2>/dev/null || [ -d "/sys/module/$(echo "$m" | tr - _)" ] || echo "unikit-dom0: insmod $m failed"
done < /lib/modules/unikit/modules.order
mount -t xenfs xenfs /proc/xen || fail "cannot mount xenfs (is this dom0 under Xen?)"
grep -q control_d /proc/xen/capabilities || fail "not running as Xen's control domain"

# The daemons' own words go to files: the console carries the guest's.
xenstored --pid-file /var/run/xenstored.pid >/var/log/xen/xenstored.log 2>&1 || fail "xenstored did not start: $(cat /var/log/xen/xenstored.log)"
xen-init-dom0 >/var/log/xen/init-dom0.log 2>&1 || fail "xen-init-dom0 failed: $(cat /var/log/xen/init-dom0.log)"
xenconsoled --pid-file=/var/run/xenconsoled.pid >/var/log/xen/xenconsoled.log 2>&1 || fail "xenconsoled did not start: $(cat /var/log/xen/xenconsoled.log)"

if [ "$UNIKIT_NET" = 1 ]; then
    ip link set lo up
    # dom0's own link to the outside: QEMU user networking (10.0.2.15/24).
    ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2
    brctl addbr xenbr0 || fail "cannot create the bridge xenbr0"
    brctl setfd xenbr0 0
    ip addr add 10.0.0.1/24 dev xenbr0
    ip link set xenbr0 up
    # HOST:GUEST: QEMU forwards 127.0.0.1:HOST to dom0's HOST; relay it on
    # (one nc per connection; "connection refused" before the guest listens
    # goes to the log, not into the guest's console).
    for p in $UNIKIT_PUBLISH; do
        nc -ll -p "${p%%:*}" -e nc 10.0.0.2 "${p##*:}" 2>>/var/log/xen/relay.log &
    done
fi

echo "unikit-dom0: starting the guest"
printf '\033_unikit-xen:begin\033\\\n'
# hvc0 reaches the serial line asynchronously: let the marker out whole
# before `xl create` makes Xen print (PVH domain build), or Xen's lines
# can land inside it.
usleep 300000
# -F: xl stays in the foreground and reports how the domain shut down.
xl create -F -c /unikit/guest.cfg 2>/tmp/xl.log
status=$?
# xl leaves its xenconsole child behind, still copying the guest's last
# output from the pty: let it finish (it exits once xenconsoled closes the
# domain's pty), or those lines land after the end line and are lost.
n=0
while pidof xenconsole >/dev/null && [ $n -lt 100 ]; do
    usleep 50000
    n=$((n + 1))
done
xenconsole_wait="xenconsole still ran $((n * 50)) ms after xl"
reason=$(sed -n 's/.*has shut down, reason code \([0-9]*\).*/\1/p' /tmp/xl.log | head -n 1)
end_line "$status" "${reason:-unknown}"
# After the end line: noise again, for the host to show when the run failed
# (Xen's own log first, so that xl's messages are the last ones).
xl dmesg 2>/dev/null | tail -n 30
for f in /var/log/xen/*.log; do
    [ -s "$f" ] && { echo "--- $f"; tail -n 5 "$f"; }
done
cat /tmp/xl.log
echo "unikit-dom0: $xenconsole_wait"
poweroff_now
