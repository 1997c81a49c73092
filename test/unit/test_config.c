/* Unit tests for the config module: parsing, every error kind with its
 * line, env:/file: values, masking, quoting, the docs staying in sync. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "smsys/config.h"
#include "smsys/log.h"
#include "smsys/util.h"
#include "../lib/testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];

/* A complete, valid client_credentials file; tests append to or edit it. */
static const char base_conf[] =
    "[dataverse]\n"
    "url = https://contoso.crm4.dynamics.com\n"
    "token_url = https://login.microsoftonline.com/t/oauth2/v2.0/token\n"
    "client_id = 11111111-2222-3333-4444-555555555555\n"
    "client_secret = TOPSECRET-cs\n"
    "scope = https://contoso.crm4.dynamics.com/.default\n"
    "[postgres]\n"
    "conninfo = host=/tmp dbname=smsys\n";

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/smsys-test-config-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Writes text to tmpdir/name with mode 0600; returns the path (static). */
static const char *write_file(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    chmod(path, 0600);
    return path;
}

/* Loads text; returns the rc and leaves the message in err. */
static int load_text(const char *text, struct smsys_config **out, struct smsys_err *err)
{
    const char *path = write_file("t.conf", text);
    *out = NULL;
    return config_load(path, out, err);
}

/* Loads base_conf + extra and expects failure whose message contains
 * "t.conf:LINE:" and want. */
static void expect_error(const char *text, int line, const char *want)
{
    struct smsys_config *cfg = NULL;
    struct smsys_err err = {0};
    int rc = load_text(text, &cfg, &err);
    if (rc == 0) {
        config_free(cfg);
        fail_msg("accepted, expected error '%s' for:\n%s", want, text);
    }
    assert_null(cfg);
    char where[64];
    if (line > 0)
        snprintf(where, sizeof(where), "t.conf:%d: ", line);
    else
        snprintf(where, sizeof(where), "t.conf: ");
    if (strstr(err.detail, where) == NULL || strstr(err.detail, want) == NULL)
        fail_msg("error '%s' lacks '%s' or '%s'", err.detail, where, want);
}

static char *concat(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 1);
    assert_non_null(s);
    memcpy(s, a, la);
    memcpy(s + la, b, lb + 1);
    return s;
}

static void test_full_file(void **state)
{
    (void)state;
    setenv("SMSYS_T_SECRET", "env-secret-value", 1);
    write_file("pw.txt", "file-password\n");
    const char *text = "# full example\n"
                       "[dataverse]\n"
                       "url = https://crm.example.local/Org   ; on-premises\n"
                       "api_version = 9.1\n"
                       "auth = ntlm\n"
                       "username = EXAMPLE\\svc-smsys\n"
                       "password = file:pw.txt\n"
                       "poll_interval_ms = 5s\n"
                       "max_concurrency = 4\n"
                       "request_timeout_ms = 15000\n"
                       "proxy = socks5h://127.0.0.1:1080\n"
                       "insecure_skip_verify = no\n"
                       "[service]\n"
                       "instance_name = node-a\n"
                       "grace_period_ms = 2500ms\n"
                       "[postgres]\n"
                       "conninfo = \"host=/tmp dbname=smsys password=p;w\"\n"
                       "pool_size = 6\n"
                       "[http]\n"
                       "listen = [::1]:9000\n"
                       "max_body_bytes = 2048\n"
                       "[sending]\n"
                       "quiet_hours = 22:30-06:00\n"
                       "timezone = Asia/Tehran\n"
                       "[log]\n"
                       "level = DEBUG\n"
                       "format = json\n";
    struct smsys_config *cfg;
    struct smsys_err err = {0};
    int rc = load_text(text, &cfg, &err);
    if (rc)
        fail_msg("%s", err.detail);
    assert_string_equal(cfg->dataverse.url, "https://crm.example.local/Org");
    assert_string_equal(cfg->dataverse.api_version, "9.1");
    assert_int_equal(cfg->dataverse.auth, CONFIG_AUTH_NTLM);
    assert_string_equal(cfg->dataverse.username, "EXAMPLE\\svc-smsys");
    assert_string_equal(cfg->dataverse.password, "file-password");
    assert_int_equal(cfg->dataverse.poll_interval_ms, 5000);
    assert_int_equal(cfg->dataverse.max_concurrency, 4);
    assert_int_equal(cfg->dataverse.request_timeout_ms, 15000);
    assert_string_equal(cfg->dataverse.proxy, "socks5h://127.0.0.1:1080");
    assert_int_equal(cfg->dataverse.insecure_skip_verify, 0);
    assert_null(cfg->dataverse.client_secret);
    assert_null(cfg->dataverse.ca_file);
    assert_string_equal(cfg->service.instance_name, "node-a");
    assert_int_equal(cfg->service.grace_period_ms, 2500);
    assert_string_equal(cfg->postgres.conninfo, "host=/tmp dbname=smsys password=p;w");
    assert_int_equal(cfg->postgres.pool_size, 6);
    assert_string_equal(cfg->http.listen, "[::1]:9000");
    assert_int_equal(cfg->http.max_body_bytes, 2048);
    assert_int_equal(cfg->sending.quiet_hours.set, 1);
    assert_int_equal(cfg->sending.quiet_hours.start_min, 22 * 60 + 30);
    assert_int_equal(cfg->sending.quiet_hours.end_min, 6 * 60);
    assert_string_equal(cfg->sending.timezone, "Asia/Tehran");
    assert_int_equal(cfg->log.level, LOG_DEBUG);
    assert_int_equal(cfg->log.format, LOG_JSON);
    assert_string_equal(cfg->warnings, "");

    /* Round trip: the dump is a config file that loads to the same values
     * (the only secret here is masked, so it is compared apart). */
    struct buf d = BUF_INIT;
    assert_int_equal(config_dump(cfg, &d), 0);
    assert_null(strstr(d.data, "file-password"));
    assert_non_null(strstr(d.data, "password = ***  ; from file:pw.txt"));
    assert_non_null(strstr(d.data, "conninfo = host=/tmp dbname=smsys password=***\n"));
    struct smsys_config *again;
    rc = load_text(d.data, &again, &err);
    if (rc)
        fail_msg("dump does not load: %s\n%s", err.detail, d.data);
    size_t n;
    const struct config_key *keys = config_keys(&n);
    for (size_t i = 0; i < n; i++) {
        if (keys[i].type == CONFIG_SECRET || (keys[i].flags & CONFIG_MASK_DSN))
            continue;
        struct buf a = BUF_INIT, b = BUF_INIT;
        assert_int_equal(config_value_str(cfg, &keys[i], 0, &a), 0);
        assert_int_equal(config_value_str(again, &keys[i], 0, &b), 0);
        if (strcmp(a.data ? a.data : "", b.data ? b.data : "") != 0)
            fail_msg("%s.%s: '%s' became '%s'", keys[i].section, keys[i].key, a.data, b.data);
        buf_free(&a);
        buf_free(&b);
    }
    assert_string_equal(again->dataverse.password, "***");
    config_free(again);
    buf_free(&d);
    config_free(cfg);
}

static void test_defaults(void **state)
{
    (void)state;
    struct smsys_config *cfg;
    struct smsys_err err = {0};
    int rc = load_text(base_conf, &cfg, &err);
    if (rc)
        fail_msg("%s", err.detail);
    assert_string_equal(cfg->dataverse.api_version, "9.2");
    assert_int_equal(cfg->dataverse.auth, CONFIG_AUTH_CLIENT_CREDENTIALS);
    assert_int_equal(cfg->dataverse.poll_interval_ms, 2000);
    assert_int_equal(cfg->dataverse.max_concurrency, 8);
    assert_int_equal(cfg->service.grace_period_ms, 10000);
    assert_string_equal(cfg->http.listen, "127.0.0.1:8480");
    /* Iranian promotional rules by default (issue #9) */
    assert_int_equal(cfg->sending.quiet_hours.set, 1);
    assert_int_equal(cfg->sending.quiet_hours.start_min, 8 * 60);
    assert_int_equal(cfg->sending.quiet_hours.end_min, 21 * 60);
    assert_string_equal(cfg->sending.timezone, "Asia/Tehran");
    assert_int_equal(cfg->bulk.enabled, 1);
    assert_int_equal(cfg->bulk.page_size, 5000);
    assert_int_equal(cfg->bulk.chunk, 1000);
    assert_int_equal(cfg->bulk.counters_interval_ms, 5000);
    assert_int_equal(cfg->log.level, LOG_INFO);
    assert_int_equal(cfg->log.format, LOG_TEXT);
    /* instance_name falls back to the host name, never NULL. */
    assert_non_null(cfg->service.instance_name);
    assert_true(strlen(cfg->service.instance_name) > 0);
    assert_string_equal(cfg->path, write_file("t.conf", base_conf));
    config_free(cfg);
}

struct bad_case {
    const char *extra; /* appended to base_conf (8 lines) */
    int line;          /* 0: no line in the message */
    const char *want;
};

static void test_error_lines(void **state)
{
    (void)state;
    unsetenv("SMSYS_T_UNSET");
    static const struct bad_case cases[] = {
        {"[http]\nlistne = 127.0.0.1:1\n", 10, "unknown key 'listne' in [http]"},
        {"[http]\nurl = https://x\n", 10,
         "unknown key 'url' in [http] (it belongs in [dataverse])"},
        {"\n[nosuch]\nx = 1\n", 10, "unknown section [nosuch]"},
        {"[dataverse]\nurl = https://other.example\n", 10,
         "duplicate key 'url' in [dataverse] (first set on line 2)"},
        {"[postgres]\npool_size = lots\n", 10, "expected an integer, got 'lots'"},
        {"[postgres]\npool_size = 0\n", 10, "0 is out of range (1 to 64)"},
        {"[dataverse]\nmax_concurrency = 99999999999999999999\n", 10, "out of range"},
        {"[log]\nlevel = verbose\n", 10, "'verbose' is not one of: error, warn, info, debug"},
        {"[dataverse]\nauth = kerberos\n", 10, "not one of: client_credentials, ntlm, negotiate"},
        {"[inbound]\nunmatched = ignore\n", 10, "'ignore' is not one of: leave, lead"},
        {"[http]\nlisten = localhost:8480\n", 10, "expected IP:PORT or [IPv6]:PORT"},
        {"[http]\nlisten = 127.0.0.1:99999\n", 10, "port must be a number from 0 to 65535"},
        {"[http]\nlisten = 127.0.0.1\n", 10, "http.listen: expected IP:PORT"},
        {"[sending]\nquiet_hours = 8-21\n", 10, "expected a window HH:MM-HH:MM"},
        {"[sending]\nquiet_hours = 08:00-25:00\n", 10, "not a time of day"},
        {"[sending]\nquiet_hours = 09:00-09:00\n", 10, "the window is empty"},
        {"[sending]\ntimezone = Mars/Olympus\n", 10, "unknown time zone 'Mars/Olympus'"},
        {"[sending]\ntimezone = ../../etc/passwd\n", 10, "not a time zone name"},
        {"[dataverse]\npoll_interval_ms = 2 seconds\n", 10, "expected a duration"},
        {"[dataverse]\npoll_interval_ms = 10\n", 10, "10 is out of range (100 to 3600000 ms)"},
        {"[dataverse]\ninsecure_skip_verify = maybe\n", 10, "expected true or false"},
        {"[dataverse]\nproxy = ftp://proxy\n", 10, "expected a URL starting with http://"},
        {"[dataverse]\nca_file = /nonexistent/ca.pem\n", 10, "dataverse.ca_file: cannot read"},
        {"\n\n[service]\ninstance_name = env:SMSYS_T_UNSET\n", 12,
         "environment variable 'SMSYS_T_UNSET' is not set"},
        {"[service]\ninstance_name = file:/nonexistent/secret\n", 10,
         "cannot read file:/nonexistent/secret: No such file or directory"},
        {"[service]\ninstance_name = \"open\n", 10, "unterminated quoted value"},
        {"[service]\ninstance_name = \"a\" b\n", 10, "text after the closing quote"},
        {"[service]\ninstance_name = \"a\\q\"\n", 10, "unknown escape"},
        {"[service]\njust a line\n", 10, "expected key = value"},
        {"[service\n", 9, "malformed section header"},
        {"[log]\n = info\n", 10, "missing key before '='"},
        {"[log]\nlevel =\n", 10, "empty value (expected enum)"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char *text = concat(base_conf, cases[i].extra);
        expect_error(text, cases[i].line, cases[i].want);
        free(text);
    }
    /* A key before any section. */
    expect_error("level = info\n", 1, "outside any section");
}

static void test_cross_checks(void **state)
{
    (void)state;
    /* Required keys with no default. */
    expect_error("[postgres]\nconninfo = dbname=x\n", 0, "dataverse.url is required");
    /* client_credentials needs its credentials; the line is auth's. */
    expect_error("[dataverse]\nurl = https://a.example\nauth = client_credentials\n"
                 "[postgres]\nconninfo = dbname=x\n",
                 3, "dataverse.token_url is required when auth = client_credentials");
    expect_error("[dataverse]\nurl = https://a.example\nauth = ntlm\nusername = u\n"
                 "[postgres]\nconninfo = dbname=x\n",
                 3, "dataverse.username and dataverse.password are required when auth = ntlm");
    char *both = concat(base_conf, "[dataverse]\nresource = https://a.example\n");
    expect_error(both, 10, "scope and dataverse.resource are both set");
    free(both);
    expect_error("[dataverse]\nurl = https://a.example/api/data/v9.2\nauth = negotiate\n"
                 "[postgres]\nconninfo = dbname=x\n",
                 2, "without /api/data");
    expect_error("[dataverse]\nurl = https://a.example\nauth = negotiate\napi_version = v9\n"
                 "[postgres]\nconninfo = dbname=x\n",
                 4, "expected MAJOR.MINOR");
    /* negotiate alone is complete: Kerberos needs no password here. */
    struct smsys_config *cfg;
    struct smsys_err err = {0};
    int rc = load_text("[dataverse]\nurl = https://a.example\nauth = negotiate\n"
                       "[postgres]\nconninfo = dbname=x\n",
                       &cfg, &err);
    if (rc)
        fail_msg("%s", err.detail);
    config_free(cfg);
}

static void test_check_lists_all(void **state)
{
    (void)state;
    char *text = concat(base_conf, "[http]\nlisten = nowhere\nfoo = 1\n[log]\nlevel = loud\n");
    const char *path = write_file("t.conf", text);
    free(text);
    struct buf report = BUF_INIT;
    struct smsys_config *cfg = NULL;
    assert_int_equal(config_check(path, &report, &cfg), 3);
    assert_null(cfg);
    assert_non_null(strstr(report.data, "t.conf:10: http.listen"));
    assert_non_null(strstr(report.data, "t.conf:11: unknown key 'foo'"));
    assert_non_null(strstr(report.data, "t.conf:13: log.level"));
    buf_free(&report);

    /* config_load reports the first and counts the rest. */
    struct smsys_err err = {0};
    assert_int_equal(config_load(path, &cfg, &err), SMSYS_ECONFIG);
    assert_non_null(strstr(err.detail, "(and 2 more errors"));

    /* A missing file is an error naming the file, not a crash. */
    char missing[300];
    snprintf(missing, sizeof(missing), "%s/none.conf", tmpdir);
    assert_int_equal(config_load(missing, &cfg, &err), -ENOENT);
    assert_non_null(strstr(err.detail, "none.conf: cannot open"));
}

static void test_env_and_file(void **state)
{
    (void)state;
    setenv("SMSYS_T_SECRET", "from-env", 1);
    setenv("SMSYS_T_EMPTY", "", 1);
    write_file("secret.txt", "from-file\r\n");
    write_file("two.txt", "line1\nline2\n\n");
    char abs[400];
    snprintf(abs, sizeof(abs), "%s/two.txt", tmpdir);
    char extra[1024];
    snprintf(extra, sizeof(extra),
             "[dataverse]\npassword = file:secret.txt\nusername = env:SMSYS_T_SECRET\n"
             "ca_file = file:%s\nresource = \"env:SMSYS_T_SECRET\"\n"
             "[service]\ninstance_name = env:SMSYS_T_EMPTY\n",
             abs);
    /* The base has scope; replace it by resource to keep the file valid. */
    char *base = strdup(base_conf);
    char *scope = strstr(base, "scope = ");
    memcpy(scope, "#cope", 5);
    char *text = concat(base, extra);
    free(base);
    struct smsys_config *cfg;
    struct smsys_err err = {0};
    /* ca_file is read as a path after file: resolution: it holds "line1\nline2\n"
     * which is no file, so expect exactly that error first. */
    int rc = load_text(text, &cfg, &err);
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(err.detail, "dataverse.ca_file: cannot read line1"));
    free(text);

    snprintf(extra, sizeof(extra),
             "[dataverse]\npassword = file:secret.txt\nusername = env:SMSYS_T_SECRET\n"
             "resource = \"env:SMSYS_T_SECRET\"\n"
             "[service]\ninstance_name = env:SMSYS_T_EMPTY\n");
    base = strdup(base_conf);
    memcpy(strstr(base, "scope = "), "#cope", 5);
    text = concat(base, extra);
    free(base);
    rc = load_text(text, &cfg, &err);
    free(text);
    if (rc)
        fail_msg("%s", err.detail);
    assert_string_equal(cfg->dataverse.password, "from-file"); /* CRLF trimmed */
    assert_string_equal(cfg->dataverse.username, "from-env");
    assert_string_equal(cfg->dataverse.resource, "env:SMSYS_T_SECRET"); /* quoted: literal */
    assert_non_null(cfg->service.instance_name); /* empty env: the host name */
    config_free(cfg);

    /* Any type may come from env:, and is validated after resolution. */
    setenv("SMSYS_T_LEVEL", "warn", 1);
    setenv("SMSYS_T_PORT", "127.0.0.1:notaport", 1);
    text = concat(base_conf, "[log]\nlevel = env:SMSYS_T_LEVEL\n");
    rc = load_text(text, &cfg, &err);
    free(text);
    if (rc)
        fail_msg("%s", err.detail);
    assert_int_equal(cfg->log.level, LOG_WARN);
    config_free(cfg);
    text = concat(base_conf, "[http]\nlisten = env:SMSYS_T_PORT\n");
    expect_error(text, 10, "port must be a number");
    free(text);
    /* Only one trailing newline goes: content is otherwise kept. */
    text = concat(base_conf, "[service]\ninstance_name = file:two.txt\n");
    rc = load_text(text, &cfg, &err);
    free(text);
    if (rc)
        fail_msg("%s", err.detail);
    assert_string_equal(cfg->service.instance_name, "line1\nline2\n");
    config_free(cfg);
}

static void test_secrets_masked(void **state)
{
    (void)state;
    setenv("SMSYS_T_SECRET", "ENV-SECRET-42", 1);
    char *text = concat("[dataverse]\nurl = https://contoso.crm4.dynamics.com\n"
                        "token_url = https://login.example/t/oauth2/v2.0/token\n"
                        "client_id = id\nclient_secret = env:SMSYS_T_SECRET\n"
                        "scope = https://contoso.crm4.dynamics.com/.default\n"
                        "password = LITERAL-PW\nusername = u\n",
                        "[postgres]\nconninfo = postgresql://smsys:URI-PW@db.local:5432/smsys"
                        "?sslmode=require&password=Q-PW\n");
    struct smsys_config *cfg;
    struct smsys_err err = {0};
    int rc = load_text(text, &cfg, &err);
    free(text);
    if (rc)
        fail_msg("%s", err.detail);
    assert_string_equal(cfg->dataverse.client_secret, "ENV-SECRET-42");
    struct buf d = BUF_INIT, j = BUF_INIT;
    assert_int_equal(config_dump(cfg, &d), 0);
    assert_int_equal(config_dump_json(cfg, &j), 0);
    const char *never[] = {"ENV-SECRET-42", "LITERAL-PW", "URI-PW", "Q-PW"};
    for (size_t i = 0; i < ARRAY_LEN(never); i++) {
        if (strstr(d.data, never[i]) || strstr(j.data, never[i]))
            fail_msg("secret %s shown:\n%s\n%s", never[i], d.data, j.data);
    }
    assert_non_null(strstr(d.data, "client_secret = ***  ; from env:SMSYS_T_SECRET"));
    assert_non_null(strstr(d.data, "postgresql://smsys:***@db.local:5432/smsys?sslmode=require"
                                   "&password=***"));
    assert_non_null(strstr(j.data, "\"client_secret\":\t\"***\""));
    assert_non_null(strstr(j.data, "\"poll_interval_ms\":\t2000"));
    /* An unset secret is shown as unset, not as ***. */
    assert_non_null(strstr(d.data, "\n[dataverse]\n"));
    buf_free(&d);
    buf_free(&j);

    /* The keyword form with a quoted password. */
    free(cfg->postgres.conninfo);
    cfg->postgres.conninfo = strdup("host=db password = 'a b\\' c' dbname=x");
    const struct config_key *k = config_key_find("postgres", "conninfo");
    assert_int_equal(config_value_str(cfg, k, 1, &d), 0);
    assert_string_equal(d.data, "host=db password = *** dbname=x");
    buf_free(&d);
    config_free(cfg);

    /* A literal secret in a world-readable file is warned about. */
    const char *path = write_file("t.conf", base_conf);
    chmod(path, 0644);
    struct buf report = BUF_INIT;
    assert_int_equal(config_check(path, &report, &cfg), 0);
    assert_non_null(strstr(report.data, "warning: dataverse.client_secret is written in a "
                                        "world-readable file"));
    assert_non_null(strstr(cfg->warnings, "client_secret"));
    assert_null(strstr(report.data, "TOPSECRET"));
    buf_free(&report);
    config_free(cfg);
}

static void test_comments_and_quoting(void **state)
{
    (void)state;
    char *text =
        concat(base_conf, "; semicolon comment\n"
                          "   # indented comment\n"
                          "[service]   ; after a header\n"
                          "instance_name = pass#word;x   # trailing comment\n"
                          "grace_period_ms = 1000 ;no space after\n"
                          "[dataverse]\r\n"
                          "username = \"  spaced # not a comment ; \\\"q\\\" \\\\ \"  ; c\n"
                          "password = \"\"\n"
                          "[sending]\n"
                          "quiet_hours =     ; empty: none\n");
    /* UTF-8 BOM in front, as Windows editors write. */
    char *bom = concat("\xEF\xBB\xBF", text);
    free(text);
    struct smsys_config *cfg;
    struct smsys_err err = {0};
    int rc = load_text(bom, &cfg, &err);
    free(bom);
    if (rc)
        fail_msg("%s", err.detail);
    assert_string_equal(cfg->service.instance_name, "pass#word;x");
    assert_int_equal(cfg->service.grace_period_ms, 1000);
    assert_string_equal(cfg->dataverse.username, "  spaced # not a comment ; \"q\" \\ ");
    assert_null(cfg->dataverse.password); /* "" = unset */
    assert_int_equal(cfg->sending.quiet_hours.set, 0);
    /* Values that need quotes are dumped quoted, and read back equal. */
    struct buf d = BUF_INIT;
    assert_int_equal(config_dump(cfg, &d), 0);
    assert_non_null(strstr(d.data, "username = \"  spaced # not a comment ; \\\"q\\\" \\\\ \""));
    assert_non_null(strstr(d.data, "instance_name = pass#word;x\n"));
    buf_free(&d);
    config_free(cfg);
}

static void test_window(void **state)
{
    (void)state;
    struct config_window day = {1, 8 * 60, 21 * 60}, night = {1, 22 * 60, 6 * 60}, none = {0};
    assert_true(config_window_contains(&day, 8 * 60));
    assert_true(config_window_contains(&day, 20 * 60 + 59));
    assert_false(config_window_contains(&day, 21 * 60));
    assert_false(config_window_contains(&day, 7 * 60));
    assert_true(config_window_contains(&night, 23 * 60));
    assert_true(config_window_contains(&night, 5 * 60));
    assert_false(config_window_contains(&night, 12 * 60));
    assert_true(config_window_contains(&none, 0));
}

/* Reads a whole file into a malloc'd string. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        fail_msg("cannot open %s", path);
    struct buf b = BUF_INIT;
    char tmp[4096];
    size_t n;
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
        assert_int_equal(buf_append(&b, tmp, n), 0);
    fclose(f);
    return buf_steal(&b);
}

static void test_docs_match_table(void **state)
{
    (void)state;
    struct buf md = BUF_INIT;
    assert_int_equal(config_keys_markdown(&md), 0);
    char *doc = slurp(tu_src("docs/configuration.md"));
    if (strstr(doc, md.data) == NULL)
        fail_msg("docs/configuration.md is out of date: paste the output of "
                 "`smsysctl config keys --markdown` into it");
    free(doc);
    buf_free(&md);

    /* The example names every key and is itself valid. */
    char *ex = slurp(tu_src("docs/smsys.conf.example"));
    size_t n;
    const struct config_key *keys = config_keys(&n);
    for (size_t i = 0; i < n; i++) {
        char pat[96];
        snprintf(pat, sizeof(pat), "\n%s =", keys[i].key);
        char pat2[96];
        snprintf(pat2, sizeof(pat2), "\n# %s =", keys[i].key);
        if (strstr(ex, pat) == NULL && strstr(ex, pat2) == NULL)
            fail_msg("docs/smsys.conf.example lacks %s.%s", keys[i].section, keys[i].key);
    }
    free(ex);
    setenv("SMSYS_CLIENT_SECRET", "x", 1);
    struct buf report = BUF_INIT;
    int nerr = config_check(tu_src("docs/smsys.conf.example"), &report, NULL);
    if (nerr != 0)
        fail_msg("example invalid: %s", report.data);
    buf_free(&report);
}

static void test_table_sane(void **state)
{
    (void)state;
    size_t n;
    const struct config_key *keys = config_keys(&n);
    assert_true(n >= 25);
    for (size_t i = 0; i < n; i++) {
        assert_non_null(keys[i].help);
        assert_true(strlen(keys[i].help) > 10);
        assert_ptr_equal(config_key_find(keys[i].section, keys[i].key), &keys[i]);
        if (keys[i].type == CONFIG_ENUM)
            assert_non_null(keys[i].choices);
        if (keys[i].type == CONFIG_INT || keys[i].type == CONFIG_DURATION)
            assert_true(keys[i].min <= keys[i].max);
        for (size_t j = 0; j < i; j++) /* sections are contiguous */
            if (strcmp(keys[j].section, keys[i].section) == 0)
                assert_string_equal(keys[i - 1].section, keys[i].section);
    }
    assert_null(config_key_find("dataverse", "nope"));
    struct buf t = BUF_INIT, j = BUF_INIT;
    assert_int_equal(config_keys_text(&t), 0);
    assert_int_equal(config_keys_json(&j), 0);
    assert_non_null(strstr(t.data, "sending.quiet_hours"));
    assert_non_null(strstr(j.data, "\"secret\":\ttrue"));
    buf_free(&t);
    buf_free(&j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_file),       cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_error_lines),     cmocka_unit_test(test_cross_checks),
        cmocka_unit_test(test_check_lists_all), cmocka_unit_test(test_env_and_file),
        cmocka_unit_test(test_secrets_masked),  cmocka_unit_test(test_comments_and_quoting),
        cmocka_unit_test(test_window),          cmocka_unit_test(test_docs_match_table),
        cmocka_unit_test(test_table_sane),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
