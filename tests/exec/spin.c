/* spin: a thread that spins without a system call must not starve main,
 * which sleeps 30 ms and then stops it: needs timer preemption. */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
static volatile int stop;
static void *spin(void *a) { while (!stop) {} return a; }
int main(void) {
    pthread_t t; pthread_create(&t, 0, spin, 0);
    usleep(30000);              /* the spinner must not starve main */
    stop = 1;
    pthread_join(t, 0);
    printf("spin: ok\n");
    return 0;
}
