/* epout: what nginx does with a large answer. A non-blocking HTTP server
 * on port 8080 accepts one connection, reads the request, then writes a
 * 1 MiB body with write() until EAGAIN and waits for EPOLLOUT with an
 * edge-triggered epoll (EPOLLIN | EPOLLOUT | EPOLLET), as nginx does. A
 * wait of 10 s without the event while bytes remain prints
 * `epout: stalled after N bytes` and exits 1; else `epout: sent N bytes in
 * K waits`, exit 0. With the argument `blocking` the connection is made
 * blocking after the request and the body goes out in blocking writes. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BODY (1 << 20)

static char body[BODY];

int main(int argc, char **argv)
{
    int blocking = argc > 1 && !strcmp(argv[1], "blocking");
    for (int i = 0; i < BODY; i++)
        body[i] = 'a' + i % 26;
    int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(8080) };
    if (bind(l, (void *)&a, sizeof a) || listen(l, 4)) {
        perror("bind/listen");
        return 2;
    }
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = l };
    epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
    printf("epout: listening\n");
    fflush(stdout);
    int c = -1;
    while (c < 0) {
        struct epoll_event out;
        if (epoll_wait(ep, &out, 1, -1) == 1)
            c = accept4(l, 0, 0, SOCK_NONBLOCK);
    }
    ev = (struct epoll_event){ .events = EPOLLIN | EPOLLOUT | EPOLLET, .data.fd = c };
    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
    /* The request: until its blank line. */
    char req[4096];
    size_t got = 0;
    while (got < sizeof req - 1) {
        ssize_t n = read(c, req + got, sizeof req - 1 - got);
        if (n > 0) {
            got += n;
            req[got] = 0;
            if (strstr(req, "\r\n\r\n"))
                break;
            continue;
        }
        if (n == 0 || errno != EAGAIN)
            return 3;
        struct epoll_event out;
        epoll_wait(ep, &out, 1, 10000);
    }
    if (blocking)
        fcntl(c, F_SETFL, fcntl(c, F_GETFL) & ~O_NONBLOCK);
    char head[128];
    int hl = snprintf(head, sizeof head, "HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n", BODY);
    if (write(c, head, hl) != hl)
        return 4;
    size_t sent = 0;
    int waits = 0;
    while (sent < BODY) {
        ssize_t n = write(c, body + sent, BODY - sent);
        if (n > 0) {
            sent += n;
            continue;
        }
        if (n < 0 && errno != EAGAIN) {
            printf("epout: write error %d after %zu bytes\n", errno, sent);
            return 5;
        }
        struct epoll_event out;
        waits++;
        if (epoll_wait(ep, &out, 1, 10000) == 0) {
            printf("epout: stalled after %zu bytes\n", sent);
            return 1;
        }
    }
    close(c);
    printf("epout: sent %zu bytes in %d waits\n", sent, waits);
    return 0;
}
