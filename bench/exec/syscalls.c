/* System-call round trips, in TSC ticks per call: getpid, and a 1-byte
   read of /dev/zero. Medians of 7 batches of N calls each. Built by the
   bench with musl-gcc -static and run both as a Linux process and in
   unikit (`unikit run --exec`). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <x86intrin.h>

static int cmp(const void *a, const void *b) {
    unsigned long long x = *(const unsigned long long *)a, y = *(const unsigned long long *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 20000;
    int fd = open("/dev/zero", O_RDONLY);
    char c;
    unsigned long long g[7], r[7];
    for (int b = 0; b < 7; b++) {
        unsigned long long t0 = __rdtsc();
        for (long i = 0; i < n; i++) syscall(SYS_getpid);
        unsigned long long t1 = __rdtsc();
        for (long i = 0; i < n; i++) if (read(fd, &c, 1) != 1) return 1;
        unsigned long long t2 = __rdtsc();
        g[b] = (t1 - t0) / n;
        r[b] = (t2 - t1) / n;
    }
    qsort(g, 7, sizeof g[0], cmp);
    qsort(r, 7, sizeof r[0], cmp);
    printf("getpid_ticks=%llu read_ticks=%llu\n", g[3], r[3]);
    return 0;
}
