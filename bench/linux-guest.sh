#!/usr/bin/env bash
# Assembles the Linux guest the network benchmark compares against: Debian's
# stock kernel (linux-image-amd64) with a tiny busybox initramfs that brings
# up virtio-net (QEMU) or xen-netfront (Xen PV) and serves a directory with
# nginx on port 80 (the host's nginx-light binary and the shared libraries it
# links, same config as the bench's host nginx: one worker, access log off)
# and busybox httpd on port 8080 when the second argument is `nginx`;
# otherwise busybox httpd alone on port 80. The address comes from `guest_ip=`/`guest_gw=` on the kernel
# command line (default: QEMU user networking's 10.0.2.15). Downloads by
# package name into a cache outside the repository; nothing is committed.
#   bench/linux-guest.sh WWW_DIR [nginx]   -> prints "KERNEL INITRD"
set -euo pipefail
www=$(realpath "${1:?usage: linux-guest.sh WWW_DIR [nginx]}")
want_nginx=${2:-}
cache=${UNIKIT_CACHE:-$HOME/.cache/unikit}/linux-guest
mkdir -p "$cache"
cd "$cache"

if [ ! -d kernel ]; then
    pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
    [ -n "$pkg" ] || { echo "linux-guest: cannot resolve linux-image-amd64" >&2; exit 1; }
    rm -f ./*.deb
    apt-get download "$pkg" >/dev/null 2>&1 || { echo "linux-guest: apt-get download $pkg failed" >&2; exit 1; }
    rm -rf kernel.tmp && dpkg-deb -x ./"$pkg"_*.deb kernel.tmp && mv kernel.tmp kernel
fi
if [ ! -x busybox ]; then
    apt-get download busybox-static >/dev/null 2>&1 || { echo "linux-guest: apt-get download busybox-static failed" >&2; exit 1; }
    rm -rf bb.tmp && dpkg-deb -x ./busybox-static_*.deb bb.tmp && cp bb.tmp/bin/busybox busybox && rm -rf bb.tmp
fi

vmlinuz=$(ls kernel/boot/vmlinuz-* | head -n1)
moddir=$(ls -d kernel/lib/modules/* | head -n1)
root=$(mktemp -d)
chmod 755 "$root" # the initramfs root: nginx's worker (nobody) must traverse it
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,proc,sys,dev,www,lib/modules,etc,tmp}
cp busybox "$root/bin/busybox"
nginx=
if [ "$want_nginx" = nginx ]; then
    nginx=$(command -v nginx || ls /usr/sbin/nginx 2>/dev/null) ||
        { echo "linux-guest: nginx not installed (apt-get install nginx-light)" >&2; exit 1; }
fi
if [ -n "$nginx" ]; then
    # The binary and every library the dynamic loader resolves for it, at
    # the same paths (the guest runs the host's Debian userland pieces).
    mkdir -p "$root/usr/sbin"
    cp "$nginx" "$root/usr/sbin/nginx"
    for lib in $(ldd "$nginx" | grep -o '/[^ ]*'); do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
    # nginx's master runs as root and its worker as nobody (getpwnam).
    printf 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
    # The same configuration as bench/src/net.rs's nginx_conf().
    d=/tmp/nginx
    cat > "$root/etc/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $d/nginx.pid;
error_log $d/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  default_type application/octet-stream;
  types { text/html html; }
  client_body_temp_path $d/body;
  proxy_temp_path $d/proxy;
  fastcgi_temp_path $d/fastcgi;
  uwsgi_temp_path $d/uwsgi;
  scgi_temp_path $d/scgi;
  server { listen 80; root /www; }
}
CONF
fi
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net xen-netfront; do
    f=$(find "$moddir" -name "$m.ko*" | head -n1)
    [ -n "$f" ] && cp "$f" "$root/lib/modules/"
done
cp -r "$www"/. "$root/www/"
cat > "$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net xen-netfront; do
    [ -e /lib/modules/$m.ko ] && insmod /lib/modules/$m.ko
done
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
ip link set lo up
ip link set eth0 up
ip=10.0.2.15/24 gw=10.0.2.2
for w in $(cat /proc/cmdline); do
    case $w in guest_ip=*) ip=${w#guest_ip=} ;; guest_gw=*) gw=${w#guest_gw=} ;; esac
done
ip addr add $ip dev eth0
ip route add default via $gw
if [ -x /usr/sbin/nginx ]; then
    mkdir -p /tmp/nginx
    httpd -p 8080 -h /www
    echo "linux-guest: serving /www with nginx on port 80, busybox httpd on 8080"
    exec /usr/sbin/nginx -c /etc/nginx.conf -e /tmp/nginx/error.log
fi
echo "linux-guest: serving /www on port 80"
exec httpd -f -p 80 -h /www
INIT
chmod +x "$root/init"
initrd=initrd${nginx:+-nginx}.img
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$initrd"
echo "$cache/$vmlinuz $cache/$initrd"
