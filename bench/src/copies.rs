//! Copies per frame, counted from the code path (not measured at run time).
//!
//! How they are counted: every time the bytes of a TCP segment are copied
//! in guest memory between the device's buffer (virtio's DMA slot; on
//! linuxu the buffer the tap is read into or written from) and the app's
//! own buffer. The host kernel's copy of a tap read/write and QEMU's copy
//! into the DMA slot are outside the guest and not counted; smoltcp
//! building a frame's headers is not a copy, its writing the payload into
//! the frame is. The figures name the commits they were read at.
pub const REPORT_NOTE: &str = "\
Copies per frame, counted from the code path (not measured): every copy of a TCP segment's bytes in guest memory between the device's buffer (virtio's DMA slot; on linuxu the buffer a tap is read into or written from) and the app's buffer. The host's and QEMU's own copies are outside the guest and not counted.

| path | a33640b | 99eb8aa (main after the drvsafe merge) |
|---|---|---|
| virtio-net receive | 3: DMA slot -> the adapter's `rx` Vec (`slots.read` in drivers/src/virtio/net.rs `receive`), -> smoltcp's socket buffer, -> the app's buffer | 2: the driver lends the DMA slot to smoltcp (`receive_with`, `DmaRegion::lend`), -> socket buffer, -> app |
| virtio-net transmit | 3: app -> socket buffer, -> the frame smoltcp builds in the adapter's `tx` Vec, -> DMA slot (`slots.write` in `transmit`) | 2: app -> socket buffer, -> the frame smoltcp builds in the lent DMA slot (`transmit_with`, `lend_mut`); +1 only for a frame that waits in the backlog while the ring is full (`Stats::tx_copies`) |
| linuxu receive | 2: read(2) straight into the adapter's `rx` Vec, -> socket buffer, -> app | 2: read(2) into the buffer lent to smoltcp, -> socket buffer, -> app |
| linuxu transmit | 2: app -> socket buffer, -> the frame in the adapter's `tx` Vec, then write(2) | 2: app -> socket buffer, -> the frame on the stack, then write(2) |
";
