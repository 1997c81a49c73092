/* stubs.c - temporary */
#include "dvemu.h"
int seed_demo(struct emu *e)
{
    return -1;
}
int seed_file(struct emu *e, const char *path)
{
    return -1;
}
