#!/bin/sh
# libxl's hotplug script for the guest's vif in the Xen test bed (the stock
# vif-bridge needs tools the bed does not carry). Called as `$0 online|add`
# or `$0 offline|remove` with XENBUS_PATH=backend/vif/<domid>/<devid>.
dev=${vif:-vif$(echo "$XENBUS_PATH" | awk -F/ '{print $(NF-1) "." $NF}')}
bridge=$(xenstore-read "$XENBUS_PATH/bridge" 2>/dev/null)
case "$1" in
online|add)
    brctl addif "${bridge:-xenbr0}" "$dev" && ip link set "$dev" up || exit 1
    xenstore-write "$XENBUS_PATH/hotplug-status" connected ;;
offline|remove)
    brctl delif "${bridge:-xenbr0}" "$dev" 2>/dev/null
    xenstore-rm "$XENBUS_PATH/hotplug-status" 2>/dev/null ;;
esac
exit 0
