/* cmd_config.c - smsysctl config check|keys|dump. */
#include "ctl.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

/* Splits report lines into errors and warnings for --json. */
static void report_to_json(const char *report, cJSON *errors, cJSON *warnings)
{
    const char *p = report;
    while (p && *p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        char *line = strndup(p, len);
        if (line) {
            int warn = strstr(line, ": warning: ") != NULL;
            cJSON_AddItemToArray(warn ? warnings : errors, cJSON_CreateString(line));
            free(line);
        }
        p += len + (nl ? 1 : 0);
    }
}

int cmd_config_check(struct ctl *ctl, int argc, char **argv)
{
    if (argc > 1)
        return ctl_usage_error(ctl, "too many arguments");
    if (argc == 1 && argv[0][0] == '-' && argv[0][1] != '\0')
        return ctl_usage_error(ctl, "unknown option '%s'", argv[0]);
    const char *path = argc == 1 ? argv[0] : ctl->config_path;
    struct buf report = BUF_INIT;
    int nerr = config_check(path, &report, NULL);
    if (nerr < 0) {
        buf_free(&report);
        return ctl_fail("out of memory checking %s", path);
    }
    if (ctl->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "file", path);
        cJSON_AddBoolToObject(o, "valid", nerr == 0);
        cJSON *errs = cJSON_AddArrayToObject(o, "errors");
        cJSON *warns = cJSON_AddArrayToObject(o, "warnings");
        report_to_json(report.data, errs, warns);
        char *s = cJSON_Print(o);
        if (s)
            printf("%s\n", s);
        free(s);
        cJSON_Delete(o);
    } else {
        /* Problems go to stderr like a compiler's; the verdict to stdout. */
        if (report.data)
            fputs(report.data, stderr);
        if (nerr == 0)
            printf("%s: ok\n", path);
        else
            printf("%s: %d error%s\n", path, nerr, nerr == 1 ? "" : "s");
    }
    buf_free(&report);
    return nerr ? CTL_FAIL : CTL_OK;
}

int cmd_config_keys(struct ctl *ctl, int argc, char **argv)
{
    int markdown = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--markdown") == 0)
            markdown = 1;
        else
            return ctl_usage_error(ctl, "unexpected argument '%s'", argv[i]);
    }
    if (markdown && ctl->json)
        return ctl_usage_error(ctl, "--markdown and --json exclude each other");
    struct buf b = BUF_INIT;
    int rc = ctl->json  ? config_keys_json(&b)
             : markdown ? config_keys_markdown(&b)
                        : config_keys_text(&b);
    if (rc == 0)
        ctl_out(&b);
    buf_free(&b);
    return rc ? ctl_fail("out of memory") : CTL_OK;
}

int cmd_config_dump(struct ctl *ctl, int argc, char **argv)
{
    if (argc > 0)
        return ctl_usage_error(ctl, "unexpected argument '%s'", argv[0]);
    struct smsys_config *cfg = ctl_load_config(ctl);
    if (cfg == NULL)
        return CTL_FAIL;
    struct buf b = BUF_INIT;
    int rc = ctl->json ? config_dump_json(cfg, &b) : config_dump(cfg, &b);
    if (rc == 0)
        ctl_out(&b);
    buf_free(&b);
    config_free(cfg);
    return rc ? ctl_fail("out of memory") : CTL_OK;
}
