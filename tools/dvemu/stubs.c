/* stubs.c - temporary */
#include "dvemu.h"
void batch_run(struct emu *e, const struct api_req *q, const char *ctype, struct api_res *r)
{
    api_error(r, 501, "0x0", "not yet");
}
void fetchxml_run(struct emu *e, struct table *t, const char *xml, const struct api_req *q,
                  const struct prefer *pf, struct api_res *r)
{
    api_error(r, 501, "0x0", "not yet");
}
void metadata_exec(struct emu *e, const struct api_req *q, const char *rest, struct api_res *r)
{
    api_error(r, 501, "0x0", "not yet");
}
int journal_open(struct emu *e, const char *dir, struct journal **out)
{
    return -1;
}
int journal_flush(struct journal *j)
{
    return 0;
}
void journal_close(struct journal *j, int compact)
{
}
int seed_demo(struct emu *e)
{
    return -1;
}
int seed_file(struct emu *e, const char *path)
{
    return -1;
}
