/* idle: a program without a single socket that sleeps: prints `idle: up`,
 * sleeps argv[1] seconds (default 10), prints `idle: done`, exits 0. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    unsigned s = argc > 1 ? (unsigned)atoi(argv[1]) : 10;
    printf("idle: up\n");
    fflush(stdout);
    sleep(s);
    printf("idle: done\n");
    return 0;
}
