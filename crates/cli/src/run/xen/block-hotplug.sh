#!/bin/sh
# libxl's hotplug script for the guest's disks in the Xen test bed: tells
# blkback which block device to serve ("physical-device" = major:minor in
# hex), as the stock `block` script does for phy: disks.
case "$1" in
add)
    dev=$(xenstore-read "$XENBUS_PATH/params") || exit 1
    [ -b "$dev" ] || { echo "unikit block hotplug: $dev is not a block device" >&2; exit 1; }
    xenstore-write "$XENBUS_PATH/physical-device" "$(stat -L -c '%t:%T' "$dev")" &&
    xenstore-write "$XENBUS_PATH/hotplug-status" connected ;;
remove)
    xenstore-rm "$XENBUS_PATH/hotplug-status" 2>/dev/null ;;
esac
exit 0
