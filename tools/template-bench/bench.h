/* bench.h - shared by template-bench's two modes (main.c: CPU only over
 * synthetic rows; dv.c: the whole path against a running dvemu). */
#ifndef TEMPLATE_BENCH_H
#define TEMPLATE_BENCH_H

double bench_now_s(void);

/* Arranges rows recipients in dvemu at url and renders tpl_src for all of
 * them; prints the figures. Returns the exit code. */
int bench_dv(const char *url, const char *client, long long rows, long long batch,
             const char *tpl_src);

#endif
