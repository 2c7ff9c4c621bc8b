/* sig: a SIGSEGV caught by an SA_SIGINFO handler on an alternate stack that
 * leaves it with siglongjmp, a raise(SIGUSR1) handler, and the FPU intact
 * after both. Prints `sig: fpu after handlers 12.0 ok` and exits 0. */
#include <signal.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
static sigjmp_buf jb; static volatile int got; static void *addr;
/* Through a volatile pointer, so the compiler cannot see the address. */
static int *volatile bad = (int *)16;
static void segv(int s, siginfo_t *i, void *uc) { (void)uc; addr = i->si_addr; siglongjmp(jb, s); }
static void usr1(int s) { got = s; }
int main(void) {
    struct sigaction sa; memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = segv; sa.sa_flags = SA_SIGINFO; sigaction(SIGSEGV, &sa, 0);
    signal(SIGUSR1, usr1);
    static char alt[16384]; stack_t ss = { .ss_sp = alt, .ss_size = sizeof alt }; sigaltstack(&ss, 0);
    int r = sigsetjmp(jb, 1);
    if (r == 0) { *bad = 1; puts("sig: FAIL no fault"); return 1; }
    printf("sig: caught %d at %p\n", r, addr);
    raise(SIGUSR1);
    printf("sig: usr1 handler ran: %d\n", got);
    double x = 1.5; for (int i = 0; i < 3; i++) x *= 2.0;
    printf("sig: fpu after handlers %.1f %s\n", x, (r == SIGSEGV && addr == (void*)16 && got == SIGUSR1 && x == 12.0) ? "ok" : "FAIL");
    return 0;
}
