/* threads: 4 pthreads adding to a mutex-protected counter, a condition
 * variable handshake, a 20 ms nanosleep measured with CLOCK_MONOTONIC,
 * and pthread_join. */
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#define THREADS 4
#define ROUNDS 10000

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static long counter;
static int ready; /* set by the main thread, under lock */
static int acked; /* set by the worker, under lock */

static void *add(void *arg)
{
    (void)arg;
    for (int i = 0; i < ROUNDS; i++) {
        pthread_mutex_lock(&lock);
        counter++;
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

static void *handshake(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lock);
    while (!ready)
        pthread_cond_wait(&cond, &lock);
    acked = 1;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    return NULL;
}

static long elapsed_ns(const struct timespec *a, const struct timespec *b)
{
    return (b->tv_sec - a->tv_sec) * 1000000000L + (b->tv_nsec - a->tv_nsec);
}

int main(void)
{
    int failed = 0;
    pthread_t t[THREADS], h;
    for (int i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], NULL, add, NULL) != 0) {
            printf("threads: FAIL pthread_create %d\n", i);
            return 1;
        }

    if (pthread_create(&h, NULL, handshake, NULL) != 0) {
        printf("threads: FAIL pthread_create handshake\n");
        return 1;
    }
    pthread_mutex_lock(&lock);
    ready = 1;
    pthread_cond_broadcast(&cond);
    while (!acked)
        pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    printf("condvar handshake ok\n");

    struct timespec t0, t1, d = {0, 20 * 1000 * 1000};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    nanosleep(&d, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ns = elapsed_ns(&t0, &t1);
    if (ns >= 20 * 1000 * 1000) {
        printf("nanosleep 20 ms ok\n");
    } else {
        printf("nanosleep 20 ms FAIL slept %ld ns\n", ns);
        failed++;
    }

    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    pthread_join(h, NULL);
    printf("counter=%ld\n", counter);
    if (counter != (long)THREADS * ROUNDS) {
        printf("counter FAIL expected %ld\n", (long)THREADS * ROUNDS);
        failed++;
    }
    printf("threads: %s\n", failed ? "FAIL" : "ok");
    return failed;
}
