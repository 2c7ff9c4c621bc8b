/* Stage 1: the MBR boot sector, loaded by the BIOS at 0000:7c00 with the
   boot drive in DL. It reads stage 2 (stage2_sectors sectors from LBA
   stage2_lba, both patched in by the host tool) to 0000:8000 with INT 13h
   extensions and jumps there, DL still the drive. Stage 2 reads those two
   fields (and boot_drive) from this sector, which stays at 0x7c00.

   Only bytes 0..440 are ours: 440..446 is the disk signature and 446..512
   the partition table and 0x55aa, written by the host tool. */

    .section .boot1, "awx"
    .code16
    .globl boot1_start
boot1_start:
    /* Some BIOSes enter at 07c0:0000: normalise CS to 0. */
    ljmp $0, $1f
1:  cli
    xorw %ax, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw $0x7c00, %sp
    sti
    cld
    movb %dl, boot_drive

    /* INT 13h AH=41h: extensions present, with the packet interface? */
    movb $0x41, %ah
    movw $0x55aa, %bx
    int $0x13
    movw $msg_no_ext, %si
    jc boot_fail
    cmpw $0xaa55, %bx
    jne boot_fail
    testb $1, %cl
    jz boot_fail

    /* INT 13h AH=42h: read stage 2 in one call (at most 64 sectors). */
    movw stage2_sectors, %ax
    movw %ax, dap1_count
    movl stage2_lba, %eax
    movl %eax, dap1_lba
    movl stage2_lba + 4, %eax
    movl %eax, dap1_lba + 4
    movw $dap1, %si
    movb boot_drive, %dl
    movb $0x42, %ah
    int $0x13
    movw $msg_read, %si
    jc boot_fail
    movb boot_drive, %dl
    ljmp $0, $boot2_start

/* Print "unikit-boot: <message at SI>" and CR LF on the screen (INT 10h
   teletype) and COM1, then halt for good. Used by stage 2 too. */
    .globl boot_fail
boot_fail:
    cld
    pushw %si
    /* COM1: 115200 8N1, FIFOs on (a VMware VM's console is its serial
       port; the BIOS may have left it unset). */
    movw $serial_init, %si
1:  lodsw
    testb %ah, %ah
    jz 2f
    movzbw %ah, %dx
    addw $0x3f7, %dx
    outb %al, %dx
    jmp 1b
2:  movw $msg_prefix, %si
    call puts
    popw %si
    call puts
    movw $msg_crlf, %si
    call puts
3:  cli
    hlt
    jmp 3b

/* Print the NUL-terminated string at SI. */
puts:
    lodsb
    testb %al, %al
    jz 2f
    pushw %si
    pushw %ax
    movb $0x0e, %ah
    movw $0x0007, %bx
    int $0x10
    movw $0x3fd, %dx
    movw $0xffff, %cx       /* bounded: a missing UART must not hang us */
1:  inb %dx, %al
    testb $0x20, %al        /* LSR: transmit holding register empty */
    loopz 1b
    popw %ax
    movw $0x3f8, %dx
    outb %al, %dx
    popw %si
    jmp puts
2:  ret

/* (value, port - 0x3f7) pairs, ended by a 0 port. */
serial_init:
    .byte 0x00, 2           /* IER: no interrupts */
    .byte 0x80, 4           /* LCR: DLAB */
    .byte 0x01, 1           /* DLL: divisor 1 (115200) */
    .byte 0x00, 2           /* DLM */
    .byte 0x03, 4           /* LCR: 8N1, DLAB off */
    .byte 0xc7, 3           /* FCR: FIFOs on and cleared */
    .byte 0x03, 5           /* MCR: DTR, RTS */
    .byte 0x00, 0

msg_prefix: .asciz "unikit-boot: "
msg_crlf:   .asciz "\r\n"
msg_no_ext: .asciz "no INT 13h extensions (LBA disk access)"
    .globl msg_read
msg_read:   .asciz "disk read failed"

    .globl boot_drive
boot_drive: .byte 0

    .balign 4
dap1:       .byte 16, 0
dap1_count: .word 0
            .word boot2_start, 0    /* buffer, offset:segment */
dap1_lba:   .quad 0

    /* Fields the host tool checks and patches (bios.rs: STAGE1_*). */
    .org 0x1aa
    .ascii "UKB1"
    .globl stage2_sectors
stage2_sectors: .word 0
    .globl stage2_lba
stage2_lba: .quad 0
    .org 440
