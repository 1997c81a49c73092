/* cmd_text.c - smsysctl text info: what a text costs on the wire.
 *
 * Uses the same counter as sending, templates and bulk preflight
 * (text_analyze), so what the admin sees here is what gets billed. */
#include "ctl.h"

#include "smsys/text.h"
#include "smsys/util.h"

#include <stdio.h>
#include <string.h>

/* Reads all of stdin into b; returns 0 or a buf error. */
static int read_stdin(struct buf *b)
{
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0) {
        int rc = buf_append(b, chunk, n);
        if (rc)
            return rc;
    }
    /* A trailing newline from `echo` or a file is not part of the SMS. */
    if (b->len && b->data[b->len - 1] == '\n')
        b->data[--b->len] = '\0';
    return 0;
}

int cmd_text_info(struct ctl *ctl, int argc, char **argv)
{
    struct text_opts opts = {0};
    const char *text = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--ucs2") == 0) {
            opts.force_ucs2 = 1;
        } else if (strcmp(argv[i], "--smsc-default") == 0 && i + 1 < argc) {
            long long v;
            if (util_parse_int(argv[++i], 0, 3, &v) != 0 || v == 2)
                return ctl_usage_error(ctl, "--smsc-default takes 0, 1 or 3");
            opts.smsc_default = (int)v;
        } else if (text == NULL) {
            text = argv[i];
        } else {
            return ctl_usage_error(ctl, "unexpected argument '%s'", argv[i]);
        }
    }
    if (text == NULL)
        return ctl_usage_error(ctl, "missing TEXT (use - to read it from standard input)");

    struct buf in = BUF_INIT;
    if (strcmp(text, "-") == 0) {
        if (read_stdin(&in) != 0) {
            buf_free(&in);
            return ctl_fail("cannot read standard input");
        }
        text = in.data ? in.data : "";
    }

    struct text_info ti;
    int rc = text_analyze_opts(text, strlen(text), &opts, &ti);
    struct buf out = BUF_INIT;
    if (rc == SMSYS_EUTF8) {
        if (ctl->json) {
            text_info_json(text, &out);
            buf_putc(&out, '\n');
            ctl_out(&out);
        } else {
            fprintf(stderr, "smsysctl: invalid UTF-8 at byte %zu: %s\n", ti.bad_offset,
                    text_utf8_strerror(ti.bad_kind));
        }
        buf_free(&out);
        buf_free(&in);
        return CTL_FAIL;
    }
    if (rc) {
        buf_free(&in);
        return ctl_fail("cannot analyse the text: %s", smsys_strerror(rc));
    }
    if (ctl->json) {
        /* The library's JSON knows only the defaults; options change the
         * figures, so build the object here from the same analysis. */
        buf_printf(&out,
                   "{\"valid\":true,\"encoding\":\"%s\",\"data_coding\":%u,\"chars\":%zu,"
                   "\"units\":%zu,\"unit\":\"%s\",\"segments\":%zu,\"single_limit\":%zu,"
                   "\"per_segment\":%zu,\"remaining\":%zu}\n",
                   ti.encoding == TEXT_UCS2 ? "UCS-2" : "GSM-7", ti.data_coding, ti.chars, ti.units,
                   ti.encoding == TEXT_UCS2 ? "ucs2" : "septets", ti.segments, ti.single_limit,
                   ti.per_segment, ti.remaining);
    } else {
        buf_printf(&out, "encoding    %s (data_coding %u)\n",
                   ti.encoding == TEXT_UCS2 ? "UCS-2" : "GSM-7", ti.data_coding);
        buf_printf(&out, "characters  %zu\n", ti.chars);
        buf_printf(&out, "units       %zu %s\n", ti.units,
                   ti.encoding == TEXT_UCS2 ? "UCS-2 code units" : "septets");
        buf_printf(&out, "segments    %zu\n", ti.segments);
        buf_printf(&out, "per segment %zu (a single message holds %zu)\n", ti.per_segment,
                   ti.single_limit);
        buf_printf(&out, "remaining   %zu in the last segment\n", ti.remaining);
    }
    ctl_out(&out);
    buf_free(&out);
    buf_free(&in);
    return CTL_OK;
}
