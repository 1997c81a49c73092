/* smsysd - placeholder entry until the service core lands. */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("smsysd 0.1.0\n");
        return 0;
    }
    fprintf(stderr, "smsysd: usage: smsysd --config FILE\n");
    return 2;
}
