/* Stage 2, loaded by stage 1 to 0000:8000 (DL = boot drive). In real mode
   with BIOS services:
     1. A20 on (checked);
     2. the load table: the sector after stage 2 (layout in bios.rs);
     3. the E820 memory map, straight into hvm_start_info's memmap format;
     4. every table entry: sectors read with INT 13h AH=42h into a bounce
        buffer below 1 MiB, copied to their physical address (>= 1 MiB)
        in unreal mode, the rest of the entry's memory size zeroed;
     5. the ACPI RSDP (EBDA's first KiB, then 0xe0000-0xfffff);
     6. hvm_start_info, then 32-bit protected mode (paging off, flat
        segments, EFER 0) and the kernel's PVH entry with EBX pointing at it.
   Every failure prints one line ("unikit-boot: ...") and halts.

   Low memory: 0x1000 start_info, 0x1040 module list, 0x1100 memory map
   (128 entries at most), 0x2000 load table, stack below 0x7c00, stage 1 at
   0x7c00, stage 2 from 0x8000, bounce buffer 0x10000-0x17fff. */

    .set START_INFO, 0x1000
    .set MODLIST, 0x1040
    .set MEMMAP, 0x1100
    .set MEMMAP_MAX, 128
    .set TABLE, 0x2000
    .set TABLE_MAGIC, 0x4c424b55        /* "UKBL" */
    .set TABLE_VERSION, 1
    .set TABLE_HEADER, 32
    .set ENTRY_SIZE, 24
    .set MAX_ENTRIES, 20                 /* (512 - 32) / 24 */
    .set BOUNCE_SEG, 0x1000
    .set BOUNCE, 0x10000
    .set CHUNK_SECTORS, 64
    .set HVM_START_MAGIC, 0x336ec578

    .section .boot2, "awx"
    .code16
    .globl boot2_start
boot2_start:
    cli
    xorw %ax, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw $0x7c00, %sp
    sti
    cld

    call enable_a20

    /* The load table. */
    movl stage2_lba, %eax
    movl stage2_lba + 4, %edx
    movzwl stage2_sectors, %ecx
    addl %ecx, %eax
    adcl $0, %edx
    movw $1, %cx
    call read_sectors
    pushw %ds
    movw $BOUNCE_SEG, %ax
    movw %ax, %ds
    xorw %si, %si
    movw $TABLE, %di
    movw $256, %cx
    rep movsw
    popw %ds
    movw $msg_table, %si
    cmpl $TABLE_MAGIC, TABLE
    jne boot_fail
    cmpl $TABLE_VERSION, TABLE + 4
    jne boot_fail
    cmpl $MAX_ENTRIES, TABLE + 8
    ja boot_fail

    call read_e820

    /* Every entry goes to RAM at or above 1 MiB (below is ours). */
    movw $TABLE + TABLE_HEADER, %bp
    movw TABLE + 8, %cx
1:  jcxz 2f
    movl 8(%bp), %eax
    movl 16(%bp), %edx
    movw $msg_table, %si
    cmpl 12(%bp), %edx
    jb boot_fail                /* file size > memory size */
    movw $msg_mem, %si
    cmpl $0x100000, %eax
    jb boot_fail
    addl %eax, %edx
    jc boot_fail
    call ram_covers
    jc boot_fail
    addw $ENTRY_SIZE, %bp
    decw %cx
    jmp 1b
2:
    movw $TABLE + TABLE_HEADER, %bp
    movw TABLE + 8, %cx
1:  jcxz 2f
    pushw %cx
    call load_entry
    popw %cx
    addw $ENTRY_SIZE, %bp
    decw %cx
    jmp 1b
2:
    /* No more BIOS calls: interrupts stay off from here. */
    cli
    call unreal

    /* hvm_start_info and its module list. */
    movw $START_INFO, %di
    movw $(MEMMAP - START_INFO) / 2, %cx
    xorw %ax, %ax
    rep stosw
    movl $HVM_START_MAGIC, START_INFO
    movl $1, START_INFO + 4
    movl TABLE + 24, %eax       /* initrd size */
    testl %eax, %eax
    jz 1f
    movl $1, START_INFO + 12
    movl $MODLIST, START_INFO + 16
    movl TABLE + 20, %edx
    movl %edx, MODLIST
    movl %eax, MODLIST + 8
1:  movl TABLE + 16, %eax
    movl %eax, START_INFO + 24
    call find_rsdp
    movl %eax, START_INFO + 32
    movl $MEMMAP, START_INFO + 40
    movzwl memmap_count, %eax
    movl %eax, START_INFO + 48

    /* The PVH entry state: protected mode, flat segments, paging off. */
    lgdtl gdt_ptr
    movl %cr0, %eax
    orb $1, %al
    movl %eax, %cr0
    ljmpl $0x08, $pm32

    .code32
pm32:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %fs
    movw %ax, %gs
    movw %ax, %ss
    movl $0x7c00, %esp
    movl $0x11, %eax            /* CR0: PE, ET; caches on */
    movl %eax, %cr0
    xorl %eax, %eax
    movl %eax, %cr4
    xorl %edx, %edx
    movl $0xc0000080, %ecx      /* EFER */
    wrmsr
    movl TABLE + 12, %eax
    movl $START_INFO, %ebx
    jmp *%eax
    .code16

/* A20: already on, else INT 15h AX=2401h, else port 0x92; checked. */
enable_a20:
    call a20_test
    jnc 1f
    movw $0x2401, %ax
    int $0x15
    call a20_test
    jnc 1f
    inb $0x92, %al
    orb $2, %al
    andb $0xfe, %al             /* not a reset */
    outb %al, $0x92
    call a20_test
    jnc 1f
    movw $msg_a20, %si
    jmp boot_fail
1:  ret

/* CF set if 0000:0500 and ffff:0510 (1 MiB higher) are the same byte. */
a20_test:
    cli
    movw $0xffff, %ax
    movw %ax, %es
    movb 0x500, %bl
    movb %es:0x510, %bh
    movb $0x00, 0x500
    movb $0xff, %es:0x510
    cmpb $0xff, 0x500
    pushfw
    movb %bh, %es:0x510
    movb %bl, 0x500
    xorw %ax, %ax
    movw %ax, %es
    popfw
    sti
    je 1f
    clc
    ret
1:  stc
    ret

/* Read CX (1..CHUNK_SECTORS) sectors from LBA EDX:EAX to the bounce
   buffer; three tries with a reset between. */
read_sectors:
    movw %cx, read_count
    movl %eax, dap2_lba
    movl %edx, dap2_lba + 4
    movw $3, %di
1:  movw read_count, %ax
    movw %ax, dap2_count
    movw $dap2, %si
    movb boot_drive, %dl
    movb $0x42, %ah
    pushal                      /* some BIOSes clobber registers */
    int $0x13
    popal                       /* (keeps CF) */
    jnc 2f
    xorb %ah, %ah
    movb boot_drive, %dl
    pushal
    int $0x13
    popal
    decw %di
    jnz 1b
    movw $msg_read, %si
    jmp boot_fail
2:  ret

/* Load the table entry at BP: file bytes from its LBA to its address,
   then zeros up to its memory size. */
load_entry:
    movl (%bp), %eax
    movl %eax, cur_lba
    movl 4(%bp), %eax
    movl %eax, cur_lba + 4
    movl 8(%bp), %eax
    movl %eax, cur_dest
    movl 12(%bp), %eax
    movl %eax, cur_left
1:  movl cur_left, %ecx
    jecxz 3f
    cmpl $CHUNK_SECTORS * 512, %ecx
    jbe 2f
    movl $CHUNK_SECTORS * 512, %ecx
2:  movl %ecx, cur_n
    addl $511, %ecx
    shrl $9, %ecx
    movl cur_lba, %eax
    movl cur_lba + 4, %edx
    addl %ecx, cur_lba
    adcl $0, cur_lba + 4
    call read_sectors
    cli                         /* the BIOS may have reset the limits */
    call unreal
    movl $BOUNCE, %esi
    movl cur_dest, %edi
    movl cur_n, %ecx
    call copy
    sti
    movl cur_n, %eax
    addl %eax, cur_dest
    subl %eax, cur_left
    jmp 1b
3:  movl 16(%bp), %ecx
    subl 12(%bp), %ecx
    jz 4f
    cli
    call unreal
    movl cur_dest, %edi
    xorl %eax, %eax
    movl %ecx, %edx
    shrl $2, %ecx
    .byte 0x67                  /* addr32: EDI, ECX */
    rep stosl
    movl %edx, %ecx
    andl $3, %ecx
    .byte 0x67
    rep stosb
    sti
4:  ret

/* Copy ECX bytes from ESI to EDI (linear; unreal mode). */
copy:
    movl %ecx, %edx
    shrl $2, %ecx
    .byte 0x67                  /* addr32: ESI, EDI, ECX */
    rep movsl
    movl %edx, %ecx
    andl $3, %ecx
    .byte 0x67
    rep movsb
    ret

/* Give DS and ES 4 GiB limits (and base 0) for 32-bit addressing in real
   mode. Call with interrupts off; clobbers EAX, DX. */
unreal:
    lgdtl gdt_ptr
    movl %cr0, %eax
    orb $1, %al
    movl %eax, %cr0
    jmp 1f
1:  movw $0x10, %dx
    movw %dx, %ds
    movw %dx, %es
    andb $0xfe, %al
    movl %eax, %cr0
    jmp 2f
2:  xorw %dx, %dx
    movw %dx, %ds
    movw %dx, %es
    ret

/* INT 15h EAX=E820h into MEMMAP: 24-byte entries are hvm memmap entries
   (the ACPI 3.0 attribute word becomes the reserved 0; entries it marks
   "ignore" and empty ones are left out). */
read_e820:
    xorl %ebx, %ebx
    movw $MEMMAP, %di
    xorw %bp, %bp
1:  movl $1, 20(%di)
    movl $0xe820, %eax
    movl $0x534d4150, %edx      /* "SMAP" */
    movl $24, %ecx
    int $0x15
    jc 3f
    cmpl $0x534d4150, %eax
    jne 3f
    cmpl $20, %ecx
    jbe 2f
    testb $1, 20(%di)
    jz 4f
2:  movl $0, 20(%di)
    movl 8(%di), %eax
    orl 12(%di), %eax
    jz 4f
    incw %bp
    addw $24, %di
    cmpw $MEMMAP_MAX, %bp
    jae 3f
4:  testl %ebx, %ebx
    jnz 1b
3:  movw %bp, memmap_count
    movw $msg_e820, %si
    testw %bp, %bp
    jz boot_fail
    ret

/* CF clear if E820 RAM entries (one, or several that adjoin or overlap)
   hold [EAX, EDX). Clobbers EAX, EBX, EDI; keeps CX, BP. */
ram_covers:
    pushw %cx
    pushw %si
1:  cmpl %edx, %eax
    jae 4f                      /* covered up to EAX >= end */
    movw $MEMMAP, %si
    movw memmap_count, %cx
2:  jcxz 3f                     /* nothing holds EAX */
    cmpl $1, 16(%si)
    jne 5f
    cmpl $0, 4(%si)
    jne 5f                      /* starts above 4 GiB */
    cmpl %eax, (%si)
    ja 5f                       /* starts after EAX */
    movl (%si), %ebx
    addl 8(%si), %ebx
    movl 12(%si), %edi
    adcl $0, %edi
    jnz 4f                      /* ends at or above 4 GiB */
    cmpl %eax, %ebx
    jbe 5f                      /* ends at or before EAX */
    movl %ebx, %eax             /* covered up to its end: go on from there */
    jmp 1b
5:  addw $24, %si
    decw %cx
    jmp 2b
3:  stc
    jmp 6f
4:  clc
6:  popw %si
    popw %cx
    ret

/* EAX = the RSDP's address (0 if none): the EBDA's first KiB, then
   0xe0000-0xfffff, on 16-byte boundaries, with a valid ACPI 1.0 checksum.
   Unreal mode. */
find_rsdp:
    movzwl 0x40e, %esi          /* BDA: the EBDA's segment */
    shll $4, %esi
    jz 1f
    cmpl $0xa0000 - 1024, %esi
    ja 1f
    movl $1024 / 16, %ecx
    call scan_rsdp
    jnc 2f
1:  movl $0xe0000, %esi
    movl $0x20000 / 16, %ecx
    call scan_rsdp
    jnc 2f
    xorl %esi, %esi
2:  movl %esi, %eax
    ret

/* Look at ECX 16-byte slots from ESI; CF clear and ESI at the RSDP if
   found. */
scan_rsdp:
1:  cmpl $0x20445352, (%esi)    /* "RSD " */
    jne 3f
    cmpl $0x20525450, 4(%esi)   /* "PTR " */
    jne 3f
    xorb %al, %al
    xorl %edx, %edx
2:  addb (%esi,%edx), %al
    incl %edx
    cmpl $20, %edx
    jb 2b
    testb %al, %al
    jnz 3f
    clc
    ret
3:  addl $16, %esi
    decl %ecx
    jnz 1b
    stc
    ret

    .balign 8
gdt:
    .quad 0
    .quad 0x00cf9a000000ffff    /* 0x08: code, 32-bit, base 0, 4 GiB */
    .quad 0x00cf92000000ffff    /* 0x10: data, base 0, 4 GiB */
gdt_ptr:
    .word gdt_ptr - gdt - 1
    .long gdt

    .balign 4
dap2:       .byte 16, 0
dap2_count: .word 0
            .word 0, BOUNCE_SEG     /* buffer, offset:segment */
dap2_lba:   .quad 0
cur_lba:    .quad 0
cur_dest:   .long 0
cur_left:   .long 0
cur_n:      .long 0
read_count: .word 0
memmap_count: .word 0

msg_table: .asciz "bad load table (rebuild the image)"
msg_e820:  .asciz "no E820 memory map from the BIOS"
msg_mem:   .asciz "not enough memory: the kernel or initrd lies outside RAM"
msg_a20:   .asciz "the A20 gate could not be enabled"
