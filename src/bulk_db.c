/* bulk_db.c - the PostgreSQL calls of the bulk engine (sql/007_bulk.sql)
 * and small pure helpers of bulk.h. Each call is one prepared statement. */
#include "bulk_int.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *bulk_state_name(int state)
{
    static const char *const names[] = {"?",      "Draft",     "Ready",    "Expanding", "Sending",
                                        "Paused", "Completed", "Canceled", "Failed"};
    return state >= 1 && state <= 8 ? names[state] : "?";
}

const char *bulk_member_status_name(int status)
{
    static const char *const names[] = {"to_send",    "no_number", "invalid_number", "opted_out",
                                        "do_not_sms", "duplicate", "render_failed"};
    return status >= 0 && status <= 6 ? names[status] : "?";
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Parses a 36-char GUID (8-4-4-4-12) into 16 bytes. */
static int guid_bytes(const char *s, unsigned char out[16])
{
    if (s == NULL || strlen(s) != 36)
        return -EINVAL;
    size_t o = 0;
    for (size_t i = 0; i < 36;) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return -EINVAL;
            i++;
            continue;
        }
        int h = hexval((unsigned char)s[i]), l = hexval((unsigned char)s[i + 1]);
        if (h < 0 || l < 0)
            return -EINVAL;
        out[o++] = (unsigned char)(h << 4 | l);
        i += 2;
    }
    return o == 16 ? 0 : -EINVAL;
}

int bulk_activity_id(const char *bulk_id, const char *member_key, char out[37])
{
    unsigned char ns[16];
    if (guid_bytes(bulk_id, ns) != 0 || member_key == NULL)
        return -EINVAL;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (c == NULL)
        return -ENOMEM;
    int ok = EVP_DigestInit_ex(c, EVP_sha1(), NULL) == 1 &&
             EVP_DigestUpdate(c, ns, sizeof(ns)) == 1 &&
             EVP_DigestUpdate(c, member_key, strlen(member_key)) == 1 &&
             EVP_DigestFinal_ex(c, md, &mdlen) == 1 && mdlen >= 16;
    EVP_MD_CTX_free(c);
    if (!ok)
        return -ENOMEM;
    md[6] = (unsigned char)((md[6] & 0x0f) | 0x50); /* version 5 */
    md[8] = (unsigned char)((md[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[md[i] >> 4];
        out[o++] = hex[md[i] & 15];
    }
    out[o] = '\0';
    return 0;
}

static int col_ll(const PGresult *res, int row, const char *name, long long *out)
{
    int c = PQfnumber(res, name);
    if (c < 0)
        return -EINVAL;
    if (PQgetisnull(res, row, c)) {
        *out = 0;
        return 0;
    }
    char *end;
    errno = 0;
    long long v = strtoll(PQgetvalue(res, row, c), &end, 10);
    if (errno != 0 || *end != '\0')
        return -EINVAL;
    *out = v;
    return 0;
}

int bulk_progress_parse(const PGresult *res, int row, struct bulk_progress *out)
{
    memset(out, 0, sizeof(*out));
    if (res == NULL || row < 0 || row >= PQntuples(res))
        return -EINVAL;
    if (col_ll(res, row, "total", &out->total) || col_ll(res, row, "sent", &out->sent) ||
        col_ll(res, row, "delivered", &out->delivered) ||
        col_ll(res, row, "failed", &out->failed) || col_ll(res, row, "skipped", &out->skipped) ||
        col_ll(res, row, "canceled", &out->canceled) || col_ll(res, row, "queued", &out->queued) ||
        col_ll(res, row, "inflight", &out->inflight) ||
        col_ll(res, row, "awaiting", &out->awaiting) ||
        col_ll(res, row, "unreleased", &out->unreleased))
        return -EINVAL;
    int f = PQfnumber(res, "finished");
    if (f < 0)
        return -EINVAL;
    out->finished = !PQgetisnull(res, row, f) && strcmp(PQgetvalue(res, row, f), "t") == 0;
    return 0;
}

static int q(struct pg_pool *pool, const char *name, const char *sql, int n, const char *const *p,
             pg_result_cb cb, void *ud)
{
    return pg_query_prepared(pool, name, sql, n, p, cb, ud);
}

int bulk_db_accept(struct pg_pool *pool, const char *json, pg_result_cb cb, void *ud)
{
    const char *p[1] = {json};
    return q(pool, "bulk_accept", "SELECT * FROM smsys_bulk_accept($1::jsonb)", 1, p, cb, ud);
}

int bulk_db_restart(struct pg_pool *pool, const char *json, pg_result_cb cb, void *ud)
{
    const char *p[1] = {json};
    return q(pool, "bulk_restart", "SELECT smsys_bulk_restart($1::jsonb)", 1, p, cb, ud);
}

int bulk_db_set_sources(struct pg_pool *pool, const char *bulk_id, const char *sources_json,
                        pg_result_cb cb, void *ud)
{
    const char *p[2] = {bulk_id, sources_json};
    return q(pool, "bulk_sources", "SELECT smsys_bulk_set_sources($1::uuid, $2::jsonb)", 2, p, cb,
             ud);
}

int bulk_db_page(struct pg_pool *pool, const char *bulk_id, int at_index, const char *at_cursor,
                 int next_index, const char *next_cursor, int done, const char *members_json,
                 pg_result_cb cb, void *ud)
{
    char ai[16], ni[16];
    snprintf(ai, sizeof(ai), "%d", at_index);
    snprintf(ni, sizeof(ni), "%d", next_index);
    const char *p[7] = {bulk_id, ai, at_cursor, ni, next_cursor, done ? "t" : "f", members_json};
    return q(pool, "bulk_page",
             "SELECT applied, inserted FROM smsys_bulk_page($1::uuid, $2::int4, $3, $4::int4, $5, "
             "$6::bool, $7::jsonb)",
             7, p, cb, ud);
}

int bulk_db_to_render(struct pg_pool *pool, const char *bulk_id, int lim, pg_result_cb cb, void *ud)
{
    char l[16];
    snprintf(l, sizeof(l), "%d", lim);
    const char *p[2] = {bulk_id, l};
    return q(pool, "bulk_to_render",
             "SELECT member_key, entity, member_id FROM smsys_bulk_to_render($1::uuid, $2::int4)",
             2, p, cb, ud);
}

int bulk_db_rendered(struct pg_pool *pool, const char *bulk_id, const char *keys,
                     const char *bodies, const char *segs, const char *encs, const char *errs,
                     pg_result_cb cb, void *ud)
{
    const char *p[6] = {bulk_id, keys, bodies, segs, encs, errs};
    return q(pool, "bulk_rendered",
             "SELECT smsys_bulk_rendered($1::uuid, $2::text[], $3::text[], $4::int4[], "
             "$5::int2[], $6::text[])",
             6, p, cb, ud);
}

int bulk_db_summary(struct pg_pool *pool, const char *bulk_id, pg_result_cb cb, void *ud)
{
    const char *p[1] = {bulk_id};
    return q(pool, "bulk_summary", "SELECT smsys_bulk_summary($1::uuid)", 1, p, cb, ud);
}

int bulk_db_set_preflight(struct pg_pool *pool, const char *bulk_id, const char *json,
                          pg_result_cb cb, void *ud)
{
    const char *p[2] = {bulk_id, json};
    return q(pool, "bulk_preflight",
             "UPDATE smsys_bulk SET preflight = $2::jsonb, updated_at = now() WHERE id = $1::uuid",
             2, p, cb, ud);
}

int bulk_db_next_chunk(struct pg_pool *pool, const char *bulk_id, int lim, pg_result_cb cb,
                       void *ud)
{
    char l[16], pr[16];
    snprintf(l, sizeof(l), "%d", lim);
    snprintf(pr, sizeof(pr), "%d", BULK_PRIORITY);
    const char *p[3] = {bulk_id, l, pr};
    return q(pool, "bulk_next_chunk",
             "SELECT fresh, member_key, entity, member_id, activity_id, message_id, number, body, "
             "segments, msg_state FROM smsys_bulk_next_chunk($1::uuid, $2::int4, $3::int2)",
             3, p, cb, ud);
}

int bulk_db_release(struct pg_pool *pool, const char *bulk_id, const char *keys,
                    const char *fail_keys, const char *fail_errs, pg_result_cb cb, void *ud)
{
    const char *p[4] = {bulk_id, keys, fail_keys, fail_errs};
    return q(pool, "bulk_release",
             "SELECT smsys_bulk_release($1::uuid, $2::text[], $3::text[], $4::text[])", 4, p, cb,
             ud);
}

int bulk_db_pause(struct pg_pool *pool, const char *bulk_id, pg_result_cb cb, void *ud)
{
    const char *p[1] = {bulk_id};
    return q(pool, "bulk_pause", "SELECT smsys_bulk_pause($1::uuid)", 1, p, cb, ud);
}

int bulk_db_resume(struct pg_pool *pool, const char *bulk_id, pg_result_cb cb, void *ud)
{
    const char *p[1] = {bulk_id};
    return q(pool, "bulk_resume", "SELECT smsys_bulk_resume($1::uuid)", 1, p, cb, ud);
}

int bulk_db_cancel(struct pg_pool *pool, const char *bulk_id, pg_result_cb cb, void *ud)
{
    const char *p[1] = {bulk_id};
    return q(pool, "bulk_cancel", "SELECT smsys_bulk_cancel($1::uuid)", 1, p, cb, ud);
}

int bulk_db_set_state(struct pg_pool *pool, const char *bulk_id, int state, const char *err,
                      pg_result_cb cb, void *ud)
{
    char s[8];
    snprintf(s, sizeof(s), "%d", state);
    const char *p[3] = {bulk_id, s, err};
    return q(pool, "bulk_set_state", "SELECT smsys_bulk_set_state($1::uuid, $2::int2, $3)", 3, p,
             cb, ud);
}

int bulk_db_gate(struct pg_pool *pool, int open, pg_result_cb cb, void *ud)
{
    const char *p[1] = {open ? "t" : "f"};
    return q(pool, "bulk_gate", "SELECT smsys_bulk_gate_set($1::bool)", 1, p, cb, ud);
}

int bulk_db_progress(struct pg_pool *pool, const char *bulk_id, pg_result_cb cb, void *ud)
{
    const char *p[1] = {bulk_id};
    return q(pool, "bulk_progress", BULK_SQL_PROGRESS, 1, p, cb, ud);
}

int bulk_db_set_written(struct pg_pool *pool, const char *bulk_id, const char *json,
                        pg_result_cb cb, void *ud)
{
    const char *p[2] = {bulk_id, json};
    return q(pool, "bulk_written", "UPDATE smsys_bulk SET written = $2::jsonb WHERE id = $1::uuid",
             2, p, cb, ud);
}

int bulk_db_commands(struct pg_pool *pool, pg_result_cb cb, void *ud)
{
    return q(pool, "bulk_commands",
             "SELECT id, bulk_id, command, rate, who FROM smsys_bulk_command "
             "WHERE done_at IS NULL ORDER BY id LIMIT 100",
             0, NULL, cb, ud);
}

int bulk_db_command_done(struct pg_pool *pool, long long id, const char *result, pg_result_cb cb,
                         void *ud)
{
    char s[24];
    snprintf(s, sizeof(s), "%lld", id);
    const char *p[2] = {s, result};
    return q(pool, "bulk_cmd_done",
             "UPDATE smsys_bulk_command SET done_at = now(), result = $2 WHERE id = $1::int8", 2, p,
             cb, ud);
}

int bulk_arr_add(struct buf *b, const char *s)
{
    int rc = 0;
    if (b->len > 0 && b->data[b->len - 1] != '{')
        rc = buf_putc(b, ',');
    if (rc != 0)
        return rc;
    if (s == NULL)
        return buf_puts(b, "NULL");
    rc = buf_putc(b, '"');
    for (; rc == 0 && *s; s++) {
        if (*s == '"' || *s == '\\')
            rc = buf_putc(b, '\\');
        if (rc == 0)
            rc = buf_putc(b, *s);
    }
    return rc == 0 ? buf_putc(b, '"') : rc;
}
