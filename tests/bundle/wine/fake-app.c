/* A stand-in for an older version's app/VERSION/timb.exe in the wine update test
 * (tests/bundle/tests/bundle.rs): it prints "timb VERSION ARGS…", as the Linux update tests'
 * shell script does, so the test sees which version folder the real launcher started.
 * Compiled there with mingw-w64 (-DTIMB_VERSION="…"); never in a bundle. */
#include <stdio.h>

int main(int argc, char **argv)
{
    printf("timb %s", TIMB_VERSION);
    for (int i = 1; i < argc; i++)
        printf(" %s", argv[i]);
    printf("\n");
    return 0;
}
