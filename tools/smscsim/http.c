/* http.c - smscsim's control API over the project's HTTP server:
 *   GET  /stats            counters as JSON
 *   POST /mo               {"from","to","text","parts":N,"order":[3,1,2]}
 *   POST /drop             cut every SMPP connection
 *   POST /config           {"throttle-every":5,"receipt-outcomes":"DELIVRD:9,UNDELIV:1",...}
 *   POST /flush            write the buffered log now (tests read it next) */
#include "sim.h"

#include "smsys/error.h"
#include "smsys/http_server.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static void reply(struct http_resp *resp, int status, const struct buf *b)
{
    http_resp_send(resp, status, "application/json", b->data ? b->data : "{}", b->len);
}

static void reply_err(struct http_resp *resp, int status, const char *what)
{
    struct buf b = BUF_INIT;
    buf_puts(&b, "{\"ok\":false,\"error\":\"");
    buf_put_jsonstr(&b, what);
    buf_puts(&b, "\"}");
    reply(resp, status, &b);
    buf_free(&b);
}

static void reply_ok(struct http_resp *resp)
{
    static const char ok[] = "{\"ok\":true}";
    http_resp_send(resp, 200, "application/json", ok, sizeof(ok) - 1);
}

static void stats_cb(struct http_req *req, struct http_resp *resp, void *ud)
{
    struct buf b = BUF_INIT;
    simlog_stats(ud, &b);
    reply(resp, 200, &b);
    buf_free(&b);
}

static void drop_cb(struct http_req *req, struct http_resp *resp, void *ud)
{
    simlog_event(ud, "drop-all", NULL);
    sim_drop_all(ud);
    reply_ok(resp);
}

static void flush_cb(struct http_req *req, struct http_resp *resp, void *ud)
{
    simlog_flush(ud);
    reply_ok(resp);
}

static void mo_cb(struct http_req *req, struct http_resp *resp, void *ud)
{
    cJSON *j = cJSON_ParseWithLength(req->body, req->body_len);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        reply_err(resp, 400, "body must be a JSON object");
        return;
    }
    const char *from = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "from"));
    const char *to = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "to"));
    const char *text = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "text"));
    const cJSON *jp = cJSON_GetObjectItemCaseSensitive(j, "parts");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(j, "order");
    unsigned parts = cJSON_IsNumber(jp) ? (unsigned)jp->valuedouble : 1;
    unsigned order[255];
    size_t norder = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, jo)
    {
        if (!cJSON_IsNumber(it) || norder == 255)
            break;
        order[norder++] = (unsigned)it->valuedouble;
    }
    int rc = -EINVAL;
    if (from && to && text && parts >= 1 && parts <= 255 && (norder == 0 || norder == parts))
        rc = sim_inject_mo(ud, from, to, text, parts, norder ? order : NULL, norder);
    cJSON_Delete(j);
    if (rc)
        reply_err(resp, 400,
                  rc == -EINVAL ? "need from, to, text; order must list every part"
                                : smsys_strerror(rc));
    else
        reply_ok(resp);
}

static void config_cb(struct http_req *req, struct http_resp *resp, void *ud)
{
    cJSON *j = cJSON_ParseWithLength(req->body, req->body_len);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        reply_err(resp, 400, "body must be a JSON object");
        return;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, j)
    {
        char v[256];
        if (cJSON_IsNumber(it))
            snprintf(v, sizeof(v), "%.0f", it->valuedouble);
        else if (cJSON_IsBool(it))
            snprintf(v, sizeof(v), "%d", cJSON_IsTrue(it));
        else if (cJSON_IsString(it))
            snprintf(v, sizeof(v), "%s", it->valuestring);
        else
            v[0] = '\0';
        if (sim_config_set(ud, it->string, v)) {
            reply_err(resp, 400, it->string);
            cJSON_Delete(j);
            return;
        }
    }
    cJSON_Delete(j);
    reply_ok(resp);
}

int sim_control_start(struct sim *sim)
{
    struct http_server_opts o = {.listen = sim->cfg.control};
    int rc = http_server_new(sim->loop, &o, &sim->http);
    if (rc)
        return rc;
    if ((rc = http_server_route(sim->http, "GET", "/stats", stats_cb, sim)) ||
        (rc = http_server_route(sim->http, "POST", "/mo", mo_cb, sim)) ||
        (rc = http_server_route(sim->http, "POST", "/drop", drop_cb, sim)) ||
        (rc = http_server_route(sim->http, "POST", "/config", config_cb, sim)) ||
        (rc = http_server_route(sim->http, "POST", "/flush", flush_cb, sim)))
        return rc;
    return 0;
}

void sim_control_stop(struct sim *sim)
{
    if (sim->http)
        http_server_close(sim->http, NULL, NULL);
    sim->http = NULL;
}
