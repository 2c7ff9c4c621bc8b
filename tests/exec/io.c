/* io: the groups named by its arguments (default: all but hosts):
 *   pipes  pipes, poll/select, dup3, readv/writev, TCGETS on a pipe;
 *   events eventfd;
 *   tcp    a TCP connection to itself over 127.0.0.1 (socket options and
 *          names, shutdown, sendmsg);
 *   udp    a datagram to itself over 127.0.0.1 (recvmsg);
 *   hosts  getaddrinfo of "exec-test-host", which the rootfs's /etc/hosts
 *          maps to 10.1.2.3;
 *   unix   an AF_UNIX socketpair round trip (nginx makes one at start);
 *   links  symlink, lstat and readlink in a new folder /tmp/io-links.
 * One line per check ending in "ok" or "FAIL ...", then
 * "io: N ok, M failed"; exits with M. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <termios.h>
#include <unistd.h>

static int ok_count, fail_count;

static void check(int ok, const char *name, const char *fmt, ...)
{
    if (ok) {
        printf("%s ok\n", name);
        ok_count++;
        return;
    }
    int e = errno;
    char why[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    printf("%s FAIL %s (errno %d: %s)\n", name, why, e, strerror(e));
    fail_count++;
}

static void *pipe_writer(void *arg)
{
    int fd = *(int *)arg;
    usleep(20000); /* the reader polls first */
    ssize_t n = write(fd, "late", 4);
    return (void *)(intptr_t)n;
}

static void pipes(void)
{
    int p[2];
    check(pipe2(p, O_CLOEXEC) == 0, "pipe2", "");
    check((fcntl(p[0], F_GETFD) & FD_CLOEXEC) != 0, "pipe2 O_CLOEXEC", "");
    struct iovec w[2] = { { "ab", 2 }, { "cde", 3 } };
    check(writev(p[1], w, 2) == 5, "writev pipe", "");
    char a[2], b[8] = { 0 };
    struct iovec r[2] = { { a, 2 }, { b, sizeof b } };
    ssize_t n = readv(p[0], r, 2);
    check(n == 5 && !memcmp(a, "ab", 2) && !strcmp(b, "cde"), "readv pipe", "read %zd", n);

    /* poll wakes when another thread writes. */
    pthread_t t;
    pthread_create(&t, 0, pipe_writer, &p[1]);
    struct pollfd pf = { .fd = p[0], .events = POLLIN };
    int k = poll(&pf, 1, 5000);
    check(k == 1 && (pf.revents & POLLIN), "poll pipe wakes", "poll=%d revents=%#x", k, pf.revents);
    void *wr;
    pthread_join(t, &wr);
    n = read(p[0], b, sizeof b);
    check(n == 4 && !memcmp(b, "late", 4) && (intptr_t)wr == 4, "read after poll", "read %zd", n);

    /* select: a timeout with nothing to read, then readable. */
    fd_set rs;
    FD_ZERO(&rs);
    FD_SET(p[0], &rs);
    struct timeval tv = { 0, 10000 };
    k = select(p[0] + 1, &rs, 0, 0, &tv);
    check(k == 0, "select timeout", "select=%d", k);
    write(p[1], "x", 1);
    FD_ZERO(&rs);
    FD_SET(p[0], &rs);
    tv.tv_sec = 5;
    k = select(p[0] + 1, &rs, 0, 0, &tv);
    check(k == 1 && FD_ISSET(p[0], &rs), "select readable", "select=%d", k);
    read(p[0], b, 1);

    /* Non-blocking: EAGAIN when empty; EOF when the writer is closed. */
    fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) | O_NONBLOCK);
    n = read(p[0], b, 1);
    check(n == -1 && errno == EAGAIN, "non-blocking empty pipe EAGAIN", "read %zd", n);
    int d = dup3(p[1], 10, 0);
    check(d == 10, "dup3", "dup3=%d", d);
    close(p[1]);
    write(10, "y", 1);
    close(10);
    n = read(p[0], b, 1);
    check(n == 1 && b[0] == 'y', "write through the dup", "read %zd", n);
    n = read(p[0], b, 1);
    check(n == 0, "pipe EOF", "read %zd", n);
    close(p[0]);

    /* A pipe is no terminal. */
    pipe(p);
    struct termios tio;
    check(tcgetattr(p[0], &tio) == -1 && errno == ENOTTY, "TCGETS on a pipe ENOTTY", "");
    check(!isatty(p[1]), "isatty(pipe) false", "");
    close(p[0]);
    close(p[1]);
}

static void eventfds(void)
{
    int e = eventfd(0, EFD_NONBLOCK);
    check(e >= 0, "eventfd2", "");
    uint64_t v = 0;
    check(read(e, &v, 8) == -1 && errno == EAGAIN, "eventfd empty EAGAIN", "");
    v = 3;
    write(e, &v, 8);
    v = 4;
    write(e, &v, 8);
    struct pollfd pf = { .fd = e, .events = POLLIN };
    check(poll(&pf, 1, 0) == 1, "poll eventfd", "");
    v = 0;
    check(read(e, &v, 8) == 8 && v == 7, "eventfd sum", "v=%llu", (unsigned long long)v);
    close(e);
}

static void *tcp_client(void *arg)
{
    int port = *(int *)arg;
    int c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (connect(c, (void *)&a, sizeof a))
        return (void *)1;
    const char *m = "ping over loopback";
    if (send(c, m, strlen(m), 0) != (ssize_t)strlen(m))
        return (void *)2;
    shutdown(c, SHUT_WR);
    char buf[64];
    ssize_t n = recv(c, buf, sizeof buf, MSG_WAITALL);
    close(c);
    return (void *)(intptr_t)(n == 4 && !memcmp(buf, "pong", 4) ? 0 : 3);
}

static void tcp(void)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    check(setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0, "setsockopt SO_REUSEADDR", "");
    /* IO_ANY=1: the listener on 0.0.0.0 (the client still connects to
     * 127.0.0.1). */
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(getenv("IO_ANY") ? INADDR_ANY : INADDR_LOOPBACK) };
    check(bind(l, (void *)&a, sizeof a) == 0 && listen(l, 4) == 0, "tcp bind/listen", "");
    socklen_t len = sizeof a;
    getsockname(l, (void *)&a, &len);
    int port = ntohs(a.sin_port);
    check(port != 0, "getsockname ephemeral port", "port %d", port);
    pthread_t t;
    pthread_create(&t, 0, tcp_client, &port);
    struct sockaddr_in peer;
    len = sizeof peer;
    /* Not for ever: the client may fail to connect. */
    struct pollfd pf = { .fd = l, .events = POLLIN };
    int c = poll(&pf, 1, 5000) == 1 ? accept4(l, (void *)&peer, &len, SOCK_CLOEXEC) : -1;
    check(c >= 0 && peer.sin_addr.s_addr == htonl(INADDR_LOOPBACK), "accept4 from 127.0.0.1", "fd %d", c);
    if (c < 0) {
        pthread_join(t, 0);
        close(l);
        return;
    }
    char buf[64] = { 0 };
    size_t got = 0;
    ssize_t n;
    while ((n = recv(c, buf + got, sizeof buf - 1 - got, 0)) > 0)
        got += n;
    check(got == 18 && !strcmp(buf, "ping over loopback") && n == 0, "recv until the peer's shutdown", "got %zu", got);
    int nd = 1;
    check(setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &nd, sizeof nd) == 0, "setsockopt TCP_NODELAY", "");
    int ty = 0;
    len = sizeof ty;
    check(getsockopt(c, SOL_SOCKET, SO_TYPE, &ty, &len) == 0 && ty == SOCK_STREAM, "getsockopt SO_TYPE", "type %d", ty);
    struct sockaddr_in pn;
    len = sizeof pn;
    check(getpeername(c, (void *)&pn, &len) == 0 && pn.sin_port == peer.sin_port, "getpeername", "");
    struct iovec iov = { "pong", 4 };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    check(sendmsg(c, &mh, 0) == 4, "sendmsg", "");
    close(c);
    void *r;
    pthread_join(t, &r);
    check(r == 0, "tcp client round trip", "client result %ld", (long)(intptr_t)r);
    close(l);
}

static void udp(void)
{
    int s = socket(AF_INET, SOCK_DGRAM, 0), c = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    check(bind(s, (void *)&a, sizeof a) == 0, "udp bind", "");
    socklen_t len = sizeof a;
    getsockname(s, (void *)&a, &len);
    check(sendto(c, "datagram", 8, 0, (void *)&a, sizeof a) == 8, "udp sendto", "");
    char buf[32];
    struct sockaddr_in from;
    struct iovec iov = { buf, sizeof buf };
    struct msghdr mh = { .msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &iov, .msg_iovlen = 1 };
    struct pollfd pf = { .fd = s, .events = POLLIN };
    int k = poll(&pf, 1, 5000);
    ssize_t n = k == 1 ? recvmsg(s, &mh, 0) : -1;
    check(n == 8 && !memcmp(buf, "datagram", 8) && from.sin_addr.s_addr == htonl(INADDR_LOOPBACK), "udp recvmsg", "n=%zd", n);
    close(s);
    close(c);
}

static void hosts(void)
{
    struct addrinfo hint = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *res = 0;
    int e = getaddrinfo("exec-test-host", "80", &hint, &res);
    char ip[32] = "";
    if (e == 0)
        inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, ip, sizeof ip);
    check(e == 0 && !strcmp(ip, "10.1.2.3"), "getaddrinfo from /etc/hosts", "%s, %s", gai_strerror(e), ip);
    if (res)
        freeaddrinfo(res);
}

static void unix_pair(void)
{
    int sv[2] = { -1, -1 };
    check(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair AF_UNIX", "");
    char b[8] = { 0 };
    ssize_t w = write(sv[0], "pair", 4), r = read(sv[1], b, sizeof b);
    check(w == 4 && r == 4 && !memcmp(b, "pair", 4), "socketpair round trip", "wrote %zd, read %zd", w, r);
    close(sv[0]);
    close(sv[1]);
}

static void links(void)
{
    mkdir("/tmp", 0777);
    check(mkdir("/tmp/io-links", 0755) == 0 || errno == EEXIST, "mkdir /tmp/io-links", "");
    int fd = open("/tmp/io-links/target", O_CREAT | O_WRONLY | O_TRUNC, 0644);
    check(fd >= 0 && write(fd, "t", 1) == 1, "create the target", "");
    close(fd);
    check(symlink("target", "/tmp/io-links/link") == 0, "symlink", "");
    struct stat st;
    check(lstat("/tmp/io-links/link", &st) == 0 && S_ISLNK(st.st_mode), "lstat sees a link", "mode %o", st.st_mode);
    char buf[64] = { 0 };
    ssize_t n = readlink("/tmp/io-links/link", buf, sizeof buf - 1);
    check(n == 6 && !strcmp(buf, "target"), "readlink", "n=%zd %s", n, buf);
    check(stat("/tmp/io-links/link", &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 1, "stat follows the link", "");
    unlink("/tmp/io-links/link");
    unlink("/tmp/io-links/target");
    rmdir("/tmp/io-links");
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        void (*run)(void);
        int by_default;
    } groups[] = { { "pipes", pipes, 1 }, { "events", eventfds, 1 }, { "tcp", tcp, 1 }, { "udp", udp, 1 }, { "hosts", hosts, 0 }, { "unix", unix_pair, 0 }, { "links", links, 0 } };
    for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++) {
        int want = argc == 1 && groups[g].by_default;
        for (int i = 1; i < argc; i++)
            want |= !strcmp(argv[i], groups[g].name);
        if (want)
            groups[g].run();
    }
    printf("io: %d ok, %d failed\n", ok_count, fail_count);
    return fail_count;
}
