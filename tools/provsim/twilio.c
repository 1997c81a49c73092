/* twilio.c - Twilio Programmable Messaging: /2010-04-01/Accounts/{Sid}/...
 * with HTTP Basic (AccountSid:AuthToken), form requests, JSON replies;
 * StatusCallback and the inbound webhook are form POSTs signed with
 * X-Twilio-Signature (hook.c), to loopback URLs only. */
#include "provsim.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "smsys/util.h"

#define TW_UNDELIVERED_CODE "30003" /* unreachable destination handset */

static const char *tw_status(enum sim_stage st)
{
    switch (st) {
    case STAGE_QUEUED:
        return "queued";
    case STAGE_SENT:
        return "sent";
    case STAGE_DELIVERED:
        return "delivered";
    case STAGE_UNDELIVERED:
        return "undelivered";
    case STAGE_BLOCKED:
        return "failed";
    }
    return "queued";
}

/* Twilio's statuses are words; /_sim/messages shows the stage index. */
static int tw_code(enum sim_stage st)
{
    return (int)st;
}

static void tw_date(int64_t us, char *out, size_t len)
{
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, len, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

static void tw_error(struct sim_ctx *cx, int http, int code, const char *msg)
{
    char more[96];
    snprintf(more, sizeof(more), "https://www.twilio.com/docs/errors/%d", code);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "code", code);
    cJSON_AddStringToObject(root, "message", msg);
    cJSON_AddStringToObject(root, "more_info", more);
    cJSON_AddNumberToObject(root, "status", http);
    if (cx->rec)
        cJSON_AddNumberToObject(cx->rec, "code", code);
    sim_reply_json(cx, http, root);
}

static void tw_fault(struct sim_ctx *cx, enum sim_fault f)
{
    if (f == FAULT_RATE)
        tw_error(cx, 429, 20429, "Too Many Requests");
    else if (f == FAULT_BUSY)
        tw_error(cx, 503, 20503, "Service Unavailable");
    else
        tw_error(cx, 403, 10001, "Account is not active: insufficient balance");
}

static cJSON *tw_resource(struct sim *sim, struct sim_msg *m)
{
    char ts[64], uri[160], seg[16];
    const char *sid = sim->creds.twilio_sid;
    enum sim_stage st = sim_msg_stage(sim, m);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "sid", m->id);
    cJSON_AddStringToObject(o, "account_sid", sid);
    cJSON_AddStringToObject(o, "to", m->to);
    cJSON_AddStringToObject(o, "from", m->from ? m->from : "");
    cJSON_AddNullToObject(o, "messaging_service_sid");
    cJSON_AddStringToObject(o, "body", m->text);
    cJSON_AddStringToObject(o, "status", tw_status(st));
    snprintf(seg, sizeof(seg), "%d", m->segments);
    cJSON_AddStringToObject(o, "num_segments", seg);
    cJSON_AddStringToObject(o, "num_media", "0");
    cJSON_AddStringToObject(o, "direction", "outbound-api");
    cJSON_AddStringToObject(o, "api_version", "2010-04-01");
    snprintf(seg, sizeof(seg), "-%.4f", m->cost);
    cJSON_AddStringToObject(o, "price", seg);
    cJSON_AddStringToObject(o, "price_unit", "USD");
    if (st == STAGE_UNDELIVERED) {
        cJSON_AddNumberToObject(o, "error_code", 30003);
        cJSON_AddStringToObject(o, "error_message", "Unreachable destination handset");
    } else {
        cJSON_AddNullToObject(o, "error_code");
        cJSON_AddNullToObject(o, "error_message");
    }
    tw_date(m->created_us, ts, sizeof(ts));
    cJSON_AddStringToObject(o, "date_created", ts);
    cJSON_AddStringToObject(o, "date_sent", ts);
    tw_date(m->done_us ? m->done_us : m->created_us, ts, sizeof(ts));
    cJSON_AddStringToObject(o, "date_updated", ts);
    snprintf(uri, sizeof(uri), "/2010-04-01/Accounts/%s/Messages/%s.json", sid, m->id);
    cJSON_AddStringToObject(o, "uri", uri);
    return o;
}

static cJSON *tw_mo_resource(struct sim *sim, struct sim_mo *mo)
{
    char ts[64];
    int ucs2;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "sid", mo->id);
    cJSON_AddStringToObject(o, "account_sid", sim->creds.twilio_sid);
    cJSON_AddStringToObject(o, "to", mo->to);
    cJSON_AddStringToObject(o, "from", mo->from);
    cJSON_AddStringToObject(o, "body", mo->text);
    cJSON_AddStringToObject(o, "status", "received");
    cJSON_AddNumberToObject(o, "num_segments", sim_segments(mo->text, &ucs2));
    cJSON_AddStringToObject(o, "direction", "inbound");
    tw_date(mo->at_us, ts, sizeof(ts));
    cJSON_AddStringToObject(o, "date_created", ts);
    cJSON_AddNullToObject(o, "error_code");
    return o;
}

/* HTTP Basic "sid:token", compared in constant time. */
static int tw_auth_ok(struct sim_ctx *cx, const char *path_sid, size_t path_sid_len)
{
    const struct sim_creds *cr = &cx->sim->creds;
    const char *h = http_req_header(cx->req, "Authorization");
    if (!h || strncasecmp(h, "Basic ", 6) != 0)
        return 0;
    h += 6;
    while (*h == ' ')
        h++;
    size_t inlen = strlen(h);
    if (inlen == 0 || inlen % 4 || inlen > 512)
        return 0;
    unsigned char dec[400];
    int n = EVP_DecodeBlock(dec, (const unsigned char *)h, (int)inlen);
    if (n < 0)
        return 0;
    for (size_t i = inlen; i > 0 && h[i - 1] == '='; i--)
        n--; /* EVP_DecodeBlock counts the padding */
    dec[n] = '\0';
    char *colon = strchr((char *)dec, ':');
    if (!colon)
        return 0;
    *colon = '\0';
    const char *user = (const char *)dec, *pass = colon + 1;
    return strcmp(user, cr->twilio_sid) == 0 && strlen(cr->twilio_sid) == path_sid_len &&
           strncmp(path_sid, cr->twilio_sid, path_sid_len) == 0 &&
           strlen(pass) == strlen(cr->twilio_token) &&
           util_memeq_ct(pass, cr->twilio_token, strlen(pass));
}

static void tw_create(struct sim_ctx *cx)
{
    struct sim_form f = {0};
    if (form_from_req(&f, cx->req)) {
        form_free(&f);
        return tw_error(cx, 400, 21601, "Malformed request body");
    }
    const char *to = form_get(&f, "To"), *from = form_get(&f, "From");
    const char *svc = form_get(&f, "MessagingServiceSid"), *body = form_get(&f, "Body");
    const char *cb = form_get(&f, "StatusCallback");
    sim_rec_str(cx, "to", to);
    sim_rec_str(cx, "from", from ? from : svc);
    sim_rec_str(cx, "text", body);
    enum sim_fault fl;
    if (!to || !*to) {
        tw_error(cx, 400, 21604, "A 'To' phone number is required.");
    } else if (!body || !*body) {
        tw_error(cx, 400, 21602, "Message body is required.");
    } else if ((!from || !*from) && (!svc || !*svc)) {
        tw_error(cx, 400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required.");
    } else if (from && *from && !sim_line_ok(cx, from)) {
        tw_error(cx, 400, 21606,
                 "The 'From' phone number provided is not a valid message-capable Twilio "
                 "phone number for this destination/account");
    } else if (cb && *cb && !hooks_url_is_loopback(cb)) {
        tw_error(cx, 400, 21609, "Invalid StatusCallback URL (simulator: loopback only)");
    } else if ((fl = sim_fault(cx, 1))) {
        tw_fault(cx, fl);
    } else if (to[0] != '+' || sim_bad_number(cx, to)) {
        tw_error(cx, 400, 21211, "Invalid 'To' Phone Number");
    } else if (sim_blocked_number(cx, to)) {
        cx->acct->st_blocked++;
        tw_error(cx, 400, 21610, "Attempt to send to unsubscribed recipient");
    } else if (!sim_afford(cx, sim_cost(cx, body))) {
        tw_fault(cx, FAULT_NOCREDIT);
    } else {
        const char *sender = from && *from ? from : cx->acct->lines[0];
        struct sim_msg *m = sim_accept(cx, to, sender, body, NULL, cb, 0);
        if (!m) {
            tw_error(cx, 500, 20500, "Internal Server Error");
        } else {
            cJSON *o = tw_resource(cx->sim, m);
            if (svc && *svc)
                cJSON_ReplaceItemInObject(o, "messaging_service_sid", cJSON_CreateString(svc));
            sim_reply_json(cx, 201, o);
        }
    }
    form_free(&f);
}

static void tw_list(struct sim_ctx *cx)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(root, "messages");
    struct sim *sim = cx->sim;
    /* newest first, as Twilio lists */
    for (size_t i = sim->nmsgs; i > 0; i--)
        if (sim->msgs[i - 1]->prov == PROV_TWILIO)
            cJSON_AddItemToArray(arr, tw_resource(sim, sim->msgs[i - 1]));
    for (size_t i = sim->nmos; i > 0; i--)
        if (sim->mos[i - 1]->prov == PROV_TWILIO)
            cJSON_AddItemToArray(arr, tw_mo_resource(sim, sim->mos[i - 1]));
    cJSON_AddNumberToObject(root, "page", 0);
    cJSON_AddNumberToObject(root, "page_size", cJSON_GetArraySize(arr));
    cJSON_AddNullToObject(root, "next_page_uri");
    sim_reply_json(cx, 200, root);
}

static void tw_handle(struct sim_ctx *cx)
{
    const char *rest = path_eat(cx->sub, "/2010-04-01/Accounts/");
    const char *slash = rest ? strchr(rest, '/') : NULL;
    if (!slash)
        return tw_error(cx, 404, 20404, "The requested resource was not found");
    const char *res = slash + 1, *meth = cx->req->method;
    int create = strcmp(meth, "POST") == 0 && strcmp(res, "Messages.json") == 0;
    if (create)
        sim_rec(cx, "Messages.json");
    if (!tw_auth_ok(cx, rest, (size_t)(slash - rest))) {
        cx->acct->st_auth++;
        snprintf(cx->hname, sizeof(cx->hname), "WWW-Authenticate");
        snprintf(cx->hval, sizeof(cx->hval), "Basic realm=\"Twilio API\"");
        return tw_error(cx, 401, 20003, "Authenticate");
    }
    if (create)
        return tw_create(cx);
    if (strcmp(meth, "GET") != 0)
        return tw_error(cx, 405, 20004, "Method not allowed");
    enum sim_fault f = sim_fault(cx, 0);
    if (f)
        return tw_fault(cx, f);
    const char *msid = path_eat(res, "Messages/");
    if (msid) {
        char id[64];
        const char *dot = strstr(msid, ".json");
        if (!dot || dot[5] || (size_t)(dot - msid) >= sizeof(id))
            return tw_error(cx, 404, 20404, "The requested resource was not found");
        snprintf(id, sizeof(id), "%.*s", (int)(dot - msid), msid);
        struct sim_msg *m = sim_msg_find(cx->sim, cx->prov, id);
        struct sim_mo *mo = m ? NULL : sim_mo_find(cx->sim, cx->prov, id);
        if (m)
            return sim_reply_json(cx, 200, tw_resource(cx->sim, m));
        if (mo)
            return sim_reply_json(cx, 200, tw_mo_resource(cx->sim, mo));
        return tw_error(cx, 404, 20404, "The requested resource was not found");
    }
    if (strcmp(res, "Messages.json") == 0)
        return tw_list(cx);
    if (strcmp(res, "Balance.json") == 0) {
        char b[32];
        snprintf(b, sizeof(b), "%.2f", cx->acct->balance);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "account_sid", cx->sim->creds.twilio_sid);
        cJSON_AddStringToObject(o, "balance", b);
        cJSON_AddStringToObject(o, "currency", "USD");
        return sim_reply_json(cx, 200, o);
    }
    if (strcmp(res, "IncomingPhoneNumbers.json") == 0) {
        cJSON *o = cJSON_CreateObject();
        cJSON *arr = cJSON_AddArrayToObject(o, "incoming_phone_numbers");
        for (size_t i = 0; i < cx->acct->nlines; i++) {
            char sid[40];
            snprintf(sid, sizeof(sid), "PN%032zx", i + 1);
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "sid", sid);
            cJSON_AddStringToObject(e, "phone_number", cx->acct->lines[i]);
            cJSON_AddStringToObject(e, "friendly_name", cx->acct->lines[i]);
            cJSON_AddItemToArray(arr, e);
        }
        return sim_reply_json(cx, 200, o);
    }
    tw_error(cx, 404, 20404, "The requested resource was not found");
}

static void tw_on_stage(struct sim *sim, struct sim_msg *m)
{
    if (!m->callback)
        return;
    const char *st = tw_status(m->stage);
    const char *pairs[] = {"AccountSid",
                           sim->creds.twilio_sid,
                           "ApiVersion",
                           "2010-04-01",
                           "From",
                           m->from ? m->from : "",
                           "To",
                           m->to,
                           "MessageSid",
                           m->id,
                           "SmsSid",
                           m->id,
                           "MessageStatus",
                           st,
                           "SmsStatus",
                           st,
                           NULL,
                           NULL,
                           NULL};
    if (m->stage == STAGE_UNDELIVERED) {
        pairs[16] = "ErrorCode";
        pairs[17] = TW_UNDELIVERED_CODE;
    }
    hooks_post(sim, PROV_TWILIO, m->callback, pairs, sim->creds.twilio_token);
}

static void tw_on_mo(struct sim *sim, struct sim_mo *mo)
{
    const char *url = sim->acct[PROV_TWILIO].cfg.inbound_url;
    if (!url[0])
        return;
    int ucs2;
    char segs[16];
    snprintf(segs, sizeof(segs), "%d", sim_segments(mo->text, &ucs2));
    const char *pairs[] = {"AccountSid",
                           sim->creds.twilio_sid,
                           "ApiVersion",
                           "2010-04-01",
                           "MessageSid",
                           mo->id,
                           "SmsMessageSid",
                           mo->id,
                           "SmsSid",
                           mo->id,
                           "From",
                           mo->from,
                           "To",
                           mo->to,
                           "Body",
                           mo->text,
                           "NumMedia",
                           "0",
                           "NumSegments",
                           segs,
                           "SmsStatus",
                           "received",
                           NULL};
    hooks_post(sim, PROV_TWILIO, url, pairs, sim->creds.twilio_token);
}

const struct sim_provider prov_twilio = {
    .name = "twilio",
    .unit = "USD",
    .lines = {"+15005550006", "+15005550001", NULL},
    .handle = tw_handle,
    .status_code = tw_code,
    .on_stage = tw_on_stage,
    .on_mo = tw_on_mo,
};
