/* fault: a null-pointer write. Under Linux the shell shows 139
 * (128 + SIGSEGV); unikit must report the fault and exit with 139 too. */
#include <stdio.h>

int main(void)
{
    printf("fault: writing through a null pointer\n");
    fflush(stdout);
    volatile int *p = (volatile int *)0;
    *p = 42;
    printf("fault: FAIL still running\n");
    return 1;
}
