/* nosys: system calls the guest does not serve must fail with ENOSYS
 * (and a log line), never crash it: fork, and an unassigned number. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *errno_name(int e)
{
    switch (e) {
    case 0: return "0";
    case ENOSYS: return "ENOSYS";
    case EPERM: return "EPERM";
    case EINVAL: return "EINVAL";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    default: return strerror(e);
    }
}

int main(void)
{
    errno = 0;
    long fork_r = syscall(SYS_fork);
    int fork_e = errno;
    if (fork_r == 0)
        _exit(0); /* a child, where fork works (a Linux host) */
    if (fork_r > 0)
        waitpid((pid_t)fork_r, NULL, 0);
    printf("fork: %ld %s\n", fork_r, errno_name(fork_e));

    errno = 0;
    long none_r = syscall(1000);
    int none_e = errno;
    printf("syscall 1000: %ld %s\n", none_r, errno_name(none_e));

    int ok = fork_r == -1 && fork_e == ENOSYS && none_r == -1 && none_e == ENOSYS;
    printf("nosys: %s\n", ok ? "ok" : "FAIL");
    return ok ? 0 : 1;
}
