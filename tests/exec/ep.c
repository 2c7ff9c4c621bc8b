/* ep: a non-blocking, edge-triggered epoll HTTP server on port 8080 that
 * answers 2 requests and exits 0. */
#include <sys/epoll.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <stdio.h>
#include <unistd.h>
#include <fcntl.h>
#include <string.h>
#include <errno.h>
int main(void) {
    int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(8080) };
    if (bind(l, (void*)&a, sizeof a) || listen(l, 16)) { perror("bind/listen"); return 1; }
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.fd = l };
    epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
    printf("ep: listening\n"); fflush(stdout);
    for (int served = 0; served < 2;) {
        struct epoll_event out[8];
        int n = epoll_wait(ep, out, 8, -1);
        printf("ep: epoll_wait=%d\n", n); fflush(stdout);
        for (int i = 0; i < n; i++) {
            if (out[i].data.fd == l) {
                int c;
                while ((c = accept4(l, 0, 0, SOCK_NONBLOCK)) >= 0) {
                    struct epoll_event ce = { .events = EPOLLIN | EPOLLET, .data.fd = c };
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
                }
            } else {
                char buf[2048]; int c = out[i].data.fd;
                ssize_t r = read(c, buf, sizeof buf);
                if (r > 0) { const char *m = "HTTP/1.0 200 OK\r\n\r\nhello from epoll\n"; write(c, m, strlen(m)); close(c); served++; }
                else if (r == 0) close(c);
            }
        }
    }
    return 0;
}
