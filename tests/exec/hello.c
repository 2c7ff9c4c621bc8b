/* hello: its arguments and environment, as the guest hands them over.
 * Exits with the number in argv[1], if one is given. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    printf("hello from C\n");
    printf("argc=%d\n", argc);
    for (int i = 0; i < argc; i++)
        printf("argv[%d]=%s\n", i, argv[i]);
    const char *greeting = getenv("GREETING");
    printf("GREETING=%s\n", greeting ? greeting : "(unset)");
    fflush(stdout);
    return argc > 1 ? atoi(argv[1]) : 0;
}
