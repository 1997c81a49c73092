/* core.c - what every simulated provider shares: the message store and
 * its idempotency index, status progression on a uv timer, the inboxes,
 * balances, error injection, the JSONL log and the request dispatch
 * (latency, 5xx, dropped replies). */
#include "provsim.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "smsys/log.h"
#include "smsys/util.h"

const struct sim_provider *const sim_providers[PROV_COUNT] = {
    [PROV_KAVENEGAR] = &prov_kavenegar, [PROV_SMSIR] = &prov_smsir,
    [PROV_GHASEDAK] = &prov_ghasedak,   [PROV_MELIPAYAMAK] = &prov_melipayamak,
    [PROV_ASANAK] = &prov_asanak,       [PROV_TWILIO] = &prov_twilio,
};

/* Numeric provider ids are base + seq, so a lookup needs no index. The
 * Melipayamak base gives the 16-digit record ids its clients expect. */
static const unsigned long long id_base[PROV_COUNT] = {
    [PROV_KAVENEGAR] = 100000000ULL, [PROV_SMSIR] = 500000000ULL,
    [PROV_GHASEDAK] = 700000000ULL,  [PROV_MELIPAYAMAK] = 2000000000000000ULL,
    [PROV_ASANAK] = 300000000ULL,    [PROV_TWILIO] = 0,
};

#define MAX_REQUEST_RECORDS 100000

struct sim_pending {
    uv_timer_t timer;
    struct sim *sim;
    struct http_resp *resp;
    int status;
    const char *ctype;
    char *body;
    size_t len;
    char hname[64], hval[256];
    struct list_node node; /* on sim->pending */
};

struct idem_ent {
    char *key;
    uint64_t first;
    size_t n;
    struct idem_ent *next;
};

struct sim_idem {
    struct idem_ent **b;
    size_t nb, n;
};

const char *sim_prov_name(enum sim_prov p)
{
    return (unsigned)p < PROV_COUNT ? sim_providers[p]->name : "?";
}

int sim_prov_parse(const char *name)
{
    for (int i = 0; name && i < PROV_COUNT; i++)
        if (strcasecmp(name, sim_providers[i]->name) == 0)
            return i;
    return -1;
}

/* splitmix64: tiny, good enough, and reproducible from --seed. */
uint64_t sim_rand(struct sim *sim)
{
    uint64_t z = (sim->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

double sim_rand01(struct sim *sim)
{
    return (double)(sim_rand(sim) >> 11) / 9007199254740992.0;
}

void sim_time_iso(int64_t us, char *out, size_t len)
{
    util_iso8601(us, out, len);
}

void sim_time_plain(int64_t us, char *out, size_t len)
{
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, len, "%Y-%m-%d %H:%M:%S", &tm);
}

/* ---- idempotency index ---- */

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static void idem_free(struct sim_idem *ix)
{
    if (!ix)
        return;
    for (size_t i = 0; i < ix->nb; i++) {
        struct idem_ent *e = ix->b[i];
        while (e) {
            struct idem_ent *nx = e->next;
            free(e->key);
            free(e);
            e = nx;
        }
    }
    free(ix->b);
    free(ix);
}

static int idem_grow(struct sim_idem *ix)
{
    size_t nb = ix->nb ? ix->nb * 2 : 1024;
    struct idem_ent **b = calloc(nb, sizeof(*b));
    if (!b)
        return -ENOMEM;
    for (size_t i = 0; i < ix->nb; i++) {
        struct idem_ent *e = ix->b[i];
        while (e) {
            struct idem_ent *nx = e->next;
            size_t h = hash_str(e->key) & (nb - 1);
            e->next = b[h];
            b[h] = e;
            e = nx;
        }
    }
    free(ix->b);
    ix->b = b;
    ix->nb = nb;
    return 0;
}

struct sim_msg *sim_idem_get(struct sim *sim, enum sim_prov p, const char *key, size_t *n)
{
    struct sim_idem *ix = sim->acct[p].idem;
    if (!key || !*key || !ix || !ix->nb)
        return NULL;
    for (struct idem_ent *e = ix->b[hash_str(key) & (ix->nb - 1)]; e; e = e->next)
        if (strcmp(e->key, key) == 0) {
            if (n)
                *n = e->n;
            return sim_msg_seq(sim, e->first);
        }
    return NULL;
}

int sim_idem_put(struct sim *sim, enum sim_prov p, const char *key, uint64_t first, size_t n)
{
    if (!key || !*key)
        return 0;
    struct sim_account *a = &sim->acct[p];
    if (!a->idem && !(a->idem = calloc(1, sizeof(*a->idem))))
        return -ENOMEM;
    struct sim_idem *ix = a->idem;
    if (ix->n >= ix->nb * 2 && idem_grow(ix))
        return -ENOMEM;
    struct idem_ent *e = calloc(1, sizeof(*e));
    if (!e || !(e->key = strdup(key))) {
        free(e);
        return -ENOMEM;
    }
    e->first = first;
    e->n = n;
    size_t h = hash_str(key) & (ix->nb - 1);
    e->next = ix->b[h];
    ix->b[h] = e;
    ix->n++;
    return 0;
}

/* ---- progression ---- */

static void heap_swap(struct sim_heap_item *a, struct sim_heap_item *b)
{
    struct sim_heap_item t = *a;
    *a = *b;
    *b = t;
}

static int heap_push(struct sim *sim, uint64_t due, uint64_t seq)
{
    if (sim->nheap == sim->capheap) {
        size_t nc = sim->capheap ? sim->capheap * 2 : 256;
        struct sim_heap_item *nh = realloc(sim->heap, nc * sizeof(*nh));
        if (!nh)
            return -ENOMEM;
        sim->heap = nh;
        sim->capheap = nc;
    }
    size_t i = sim->nheap++;
    sim->heap[i].due_ms = due;
    sim->heap[i].seq = seq;
    while (i > 0 && sim->heap[(i - 1) / 2].due_ms > sim->heap[i].due_ms) {
        heap_swap(&sim->heap[(i - 1) / 2], &sim->heap[i]);
        i = (i - 1) / 2;
    }
    return 0;
}

static void heap_pop(struct sim *sim)
{
    sim->heap[0] = sim->heap[--sim->nheap];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < sim->nheap && sim->heap[l].due_ms < sim->heap[m].due_ms)
            m = l;
        if (r < sim->nheap && sim->heap[r].due_ms < sim->heap[m].due_ms)
            m = r;
        if (m == i)
            break;
        heap_swap(&sim->heap[m], &sim->heap[i]);
        i = m;
    }
}

static void tick_cb(uv_timer_t *t);

static void tick_arm(struct sim *sim)
{
    if (sim->closing)
        return;
    if (!sim->nheap) {
        uv_timer_stop(&sim->tick);
        return;
    }
    uint64_t now = util_now_ms(), due = sim->heap[0].due_ms;
    uv_timer_start(&sim->tick, tick_cb, due > now ? due - now : 0, 0);
}

enum sim_stage sim_msg_stage(struct sim *sim, struct sim_msg *m)
{
    (void)sim;
    uint64_t now = util_now_ms();
    if (m->inbound || m->stage >= STAGE_DELIVERED)
        return m->stage;
    if (now >= m->t_final_ms) {
        m->stage = m->outcome;
        m->done_us = util_wall_us() - (int64_t)(now - m->t_final_ms) * 1000;
    } else if (now >= m->t_sent_ms) {
        m->stage = STAGE_SENT;
    }
    return m->stage;
}

static void tick_cb(uv_timer_t *t)
{
    struct sim *sim = container_of(t, struct sim, tick);
    uint64_t now = util_now_ms();
    while (sim->nheap && sim->heap[0].due_ms <= now) {
        uint64_t seq = sim->heap[0].seq;
        heap_pop(sim);
        struct sim_msg *m = sim_msg_seq(sim, seq);
        if (!m)
            continue;
        sim_msg_stage(sim, m);
        if (m->stage < STAGE_DELIVERED && heap_push(sim, m->t_final_ms, seq))
            log_error("progression stalled", "error=\"out of memory\" seq=%" PRIu64, seq);
        const struct sim_provider *pv = sim_providers[m->prov];
        if (pv->on_stage && m->pushed != m->stage) {
            m->pushed = m->stage;
            pv->on_stage(sim, m);
        }
    }
    tick_arm(sim);
}

/* ---- store ---- */

struct sim_msg *sim_msg_seq(struct sim *sim, uint64_t seq)
{
    return seq >= 1 && seq <= sim->nmsgs ? sim->msgs[seq - 1] : NULL;
}

struct sim_msg *sim_msg_find(struct sim *sim, enum sim_prov p, const char *id)
{
    unsigned long long v = 0;
    char *end = NULL;
    if (!id || !*id)
        return NULL;
    if (p == PROV_TWILIO) {
        if (strncmp(id, "SM", 2) != 0)
            return NULL;
        v = strtoull(id + 2, &end, 16);
    } else {
        v = strtoull(id, &end, 10);
        v = v >= id_base[p] ? v - id_base[p] : 0;
    }
    if (!end || *end)
        return NULL;
    struct sim_msg *m = sim_msg_seq(sim, v);
    return m && m->prov == p && strcmp(m->id, id) == 0 ? m : NULL;
}

static void msg_free(struct sim_msg *m)
{
    if (!m)
        return;
    free(m->to);
    free(m->from);
    free(m->text);
    free(m->idem);
    free(m->callback);
    free(m->pack);
    free(m);
}

static void log_line(struct sim *sim, const struct sim_msg *m)
{
    if (!sim->log)
        return;
    char ts[40];
    sim_time_iso(m->created_us, ts, sizeof(ts));
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return;
    cJSON_AddStringToObject(o, "time", ts);
    cJSON_AddStringToObject(o, "provider", sim_prov_name(m->prov));
    cJSON_AddStringToObject(o, "id", m->id);
    cJSON_AddStringToObject(o, "to", m->to);
    cJSON_AddStringToObject(o, "from", m->from ? m->from : "");
    cJSON_AddStringToObject(o, "text", m->text);
    if (m->idem)
        cJSON_AddStringToObject(o, "idempotency_key", m->idem);
    else
        cJSON_AddNullToObject(o, "idempotency_key");
    cJSON_AddNumberToObject(o, "segments", m->segments);
    cJSON_AddNumberToObject(o, "cost", m->cost);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s)
        return;
    /* A small blocking write per message: the simulator trades loop purity
     * for a log that is complete the moment the reply leaves. */
    fputs(s, sim->log);
    fputc('\n', sim->log);
    fflush(sim->log);
    free(s);
}

struct sim_msg *sim_accept(struct sim_ctx *cx, const char *to, const char *from, const char *text,
                           const char *idem, const char *callback, int64_t not_before)
{
    struct sim *sim = cx->sim;
    if (sim->nmsgs == sim->capmsgs) {
        size_t nc = sim->capmsgs ? sim->capmsgs * 2 : 1024;
        struct sim_msg **nm = realloc(sim->msgs, nc * sizeof(*nm));
        if (!nm)
            return NULL;
        sim->msgs = nm;
        sim->capmsgs = nc;
    }
    struct sim_msg *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->to = strdup(to);
    m->text = strdup(text);
    m->from = util_strdup0(from);
    m->idem = idem && *idem ? strdup(idem) : NULL;
    m->callback = callback && *callback ? strdup(callback) : NULL;
    if (!m->to || !m->text || (from && !m->from) || (idem && *idem && !m->idem) ||
        (callback && *callback && !m->callback)) {
        msg_free(m);
        return NULL;
    }
    m->seq = sim->nmsgs + 1;
    m->prov = cx->prov;
    if (cx->prov == PROV_TWILIO)
        snprintf(m->id, sizeof(m->id), "SM%032" PRIx64, m->seq);
    else
        snprintf(m->id, sizeof(m->id), "%llu", id_base[cx->prov] + (unsigned long long)m->seq);
    m->segments = sim_segments(text, &m->ucs2);
    m->cost = m->segments * cx->acct->cfg.price;
    m->created_us = util_wall_us();
    uint64_t now = util_now_ms(), start = now;
    if (not_before > 0 && not_before * 1000000 > m->created_us) {
        m->due_us = not_before * 1000000;
        start += (uint64_t)((m->due_us - m->created_us) / 1000);
    }
    const struct sim_cfg *c = &cx->acct->cfg;
    m->t_sent_ms = start + (uint64_t)c->receipt_delay_ms / 2;
    m->t_final_ms = start + (uint64_t)c->receipt_delay_ms;
    int total = c->pct_delivered + c->pct_undelivered;
    m->outcome = total > 0 && (int)(sim_rand(sim) % (uint64_t)total) >= c->pct_delivered
                     ? STAGE_UNDELIVERED
                     : STAGE_DELIVERED;
    m->stage = m->pushed = STAGE_QUEUED;
    if (sim_blocked_number(cx, to)) {
        /* the operator refuses it at once; still billed, as panels do */
        m->outcome = m->stage = STAGE_BLOCKED;
        m->t_sent_ms = m->t_final_ms = now;
        m->done_us = m->created_us;
        cx->acct->st_blocked++;
    }
    sim->msgs[sim->nmsgs++] = m;
    cx->acct->balance -= m->cost;
    cx->acct->st_messages++;
    if (heap_push(sim, m->t_sent_ms, m->seq) == 0)
        tick_arm(sim);
    log_line(sim, m);
    if (cx->rec) {
        sim_rec_str(cx, "ids", m->id);
    }
    return m;
}

/* ---- inbox ---- */

struct sim_mo *sim_mo_add(struct sim *sim, enum sim_prov p, const char *line, const char *from,
                          const char *text)
{
    if (sim->nmos == sim->capmos) {
        size_t nc = sim->capmos ? sim->capmos * 2 : 64;
        struct sim_mo **nm = realloc(sim->mos, nc * sizeof(*nm));
        if (!nm)
            return NULL;
        sim->mos = nm;
        sim->capmos = nc;
    }
    struct sim_mo *mo = calloc(1, sizeof(*mo));
    if (!mo)
        return NULL;
    mo->from = strdup(from);
    mo->to = strdup(line);
    mo->text = strdup(text);
    if (!mo->from || !mo->to || !mo->text) {
        free(mo->from);
        free(mo->to);
        free(mo->text);
        free(mo);
        return NULL;
    }
    mo->seq = sim->nmos + 1;
    mo->prov = p;
    if (p == PROV_TWILIO)
        snprintf(mo->id, sizeof(mo->id), "SMf%031" PRIx64, mo->seq);
    else
        snprintf(mo->id, sizeof(mo->id), "%llu", 900000000ULL + (unsigned long long)mo->seq);
    mo->at_us = util_wall_us();
    sim->mos[sim->nmos++] = mo;
    if (sim_providers[p]->on_mo)
        sim_providers[p]->on_mo(sim, mo);
    return mo;
}

struct sim_mo *sim_mo_find(struct sim *sim, enum sim_prov p, const char *id)
{
    for (size_t i = 0; id && i < sim->nmos; i++)
        if (sim->mos[i]->prov == p && strcmp(sim->mos[i]->id, id) == 0)
            return sim->mos[i];
    return NULL;
}

struct sim_mo **sim_mo_take(struct sim *sim, enum sim_prov p, const char *line, size_t max,
                            int read, int mark, size_t *n)
{
    *n = 0;
    struct sim_mo **out = malloc((sim->nmos ? sim->nmos : 1) * sizeof(*out));
    if (!out)
        return NULL;
    for (size_t i = 0; i < sim->nmos && *n < max; i++) {
        struct sim_mo *mo = sim->mos[i];
        if (mo->prov != p || mo->read != read || (line && *line && strcmp(line, mo->to) != 0))
            continue;
        out[(*n)++] = mo;
        if (mark)
            mo->read = 1;
    }
    return out;
}

/* ---- replies and records ---- */

void sim_reply_json(struct sim_ctx *cx, int status, cJSON *root)
{
    char *s = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    buf_reset(&cx->body);
    cx->ctype = "application/json; charset=utf-8";
    if (!s || buf_puts(&cx->body, s)) {
        cx->status = 500;
        buf_reset(&cx->body);
        buf_puts(&cx->body, "{\"error\":\"out of memory\"}");
    } else {
        cx->status = status;
    }
    free(s);
}

cJSON *sim_rec(struct sim_ctx *cx, const char *op)
{
    if (cx->rec)
        return cx->rec;
    char ts[40];
    sim_time_iso(util_wall_us(), ts, sizeof(ts));
    cx->rec = cJSON_CreateObject();
    if (cx->rec) {
        cJSON_AddStringToObject(cx->rec, "provider", sim_prov_name(cx->prov));
        cJSON_AddStringToObject(cx->rec, "op", op);
        cJSON_AddStringToObject(cx->rec, "time", ts);
    }
    cx->acct->st_sends++;
    return cx->rec;
}

cJSON *sim_rec_list(struct sim_ctx *cx, const char *name)
{
    if (!cx->rec)
        return NULL;
    cJSON *l = cJSON_GetObjectItemCaseSensitive(cx->rec, name);
    if (!l)
        l = cJSON_AddArrayToObject(cx->rec, name);
    return l;
}

void sim_rec_str(struct sim_ctx *cx, const char *list, const char *v)
{
    cJSON *l = sim_rec_list(cx, list);
    if (l)
        cJSON_AddItemToArray(l, v ? cJSON_CreateString(v) : cJSON_CreateNull());
}

/* ---- dispatch ---- */

static void pending_close_cb(uv_handle_t *h)
{
    struct sim_pending *pd = container_of((uv_timer_t *)h, struct sim_pending, timer);
    free(pd->body);
    free(pd);
}

static void pending_fire(struct sim_pending *pd)
{
    struct sim *sim = pd->sim;
    list_remove(&sim->pending, &pd->node);
    if (pd->hname[0])
        http_resp_header(pd->resp, pd->hname, pd->hval);
    http_resp_send(pd->resp, pd->status, pd->ctype, pd->body, pd->len);
    uv_close((uv_handle_t *)&pd->timer, pending_close_cb);
}

static void pending_timer_cb(uv_timer_t *t)
{
    pending_fire(container_of(t, struct sim_pending, timer));
}

static void reply_now(struct http_resp *resp, struct sim_ctx *cx)
{
    if (cx->hname[0])
        http_resp_header(resp, cx->hname, cx->hval);
    http_resp_send(resp, cx->status, cx->ctype, cx->body.data ? cx->body.data : "", cx->body.len);
}

void sim_route_cb(struct http_req *req, struct http_resp *resp, void *ud)
{
    struct sim_route *rt = ud;
    struct sim *sim = rt->sim;
    struct sim_ctx cx;
    memset(&cx, 0, sizeof(cx));
    cx.sim = sim;
    cx.req = req;
    cx.prov = rt->prov;
    cx.acct = &sim->acct[rt->prov];
    cx.sub = req->path + 1 + strlen(sim_prov_name(rt->prov));
    cx.status = 500;
    const struct sim_cfg *c = &cx.acct->cfg;
    cx.acct->st_requests++;

    if (c->fail_rate > 0 && sim_rand01(sim) < c->fail_rate) {
        cx.acct->st_5xx++;
        cx.status = 500;
        cx.ctype = "text/plain";
        buf_puts(&cx.body, "simulated internal server error\n");
    } else {
        sim_providers[rt->prov]->handle(&cx);
    }
    if (cx.rec) {
        cJSON_AddNumberToObject(cx.rec, "http_status", cx.status);
        if (sim->nrequests < MAX_REQUEST_RECORDS) {
            cJSON_AddItemToArray(sim->requests, cx.rec);
            sim->nrequests++;
        } else {
            sim->requests_unlogged++;
            cJSON_Delete(cx.rec);
        }
        cx.rec = NULL;
    }
    long long hold = c->latency_ms;
    if (c->drop_rate > 0 && sim_rand01(sim) < c->drop_rate) {
        /* The request took effect; the client just never hears back in
         * time (an unknown outcome). The server contract has no abort, so
         * the reply is held until long after any sane client timeout. */
        cx.acct->st_drop++;
        hold = c->drop_hold_ms;
    }
    struct sim_pending *pd = hold > 0 && !sim->closing ? calloc(1, sizeof(*pd)) : NULL;
    if (pd) {
        pd->sim = sim;
        pd->resp = resp;
        pd->status = cx.status;
        pd->ctype = cx.ctype;
        pd->len = cx.body.len;
        pd->body = buf_steal(&cx.body);
        snprintf(pd->hname, sizeof(pd->hname), "%s", cx.hname);
        snprintf(pd->hval, sizeof(pd->hval), "%s", cx.hval);
        if (!pd->body || uv_timer_init(sim->loop, &pd->timer)) {
            free(pd->body);
            free(pd);
            http_resp_send(resp, 503, "text/plain", "out of memory\n", 14);
            return;
        }
        list_push_front(&sim->pending, &pd->node);
        uv_timer_start(&pd->timer, pending_timer_cb, (uint64_t)hold, 0);
        return;
    }
    reply_now(resp, &cx);
    buf_free(&cx.body);
}

/* ---- life cycle ---- */

static void accounts_defaults(struct sim *sim)
{
    for (int p = 0; p < PROV_COUNT; p++) {
        struct sim_account *a = &sim->acct[p];
        a->cfg = sim->base_cfg;
        a->balance = sim_default_balance((enum sim_prov)p);
        size_t n = 0;
        while (n < ARRAY_LEN(sim_providers[p]->lines) && sim_providers[p]->lines[n])
            n++;
        if (sim_lines_set(a, sim_providers[p]->lines, n))
            log_error("reset failed", "error=\"out of memory\"");
    }
}

static void store_clear(struct sim *sim)
{
    for (size_t i = 0; i < sim->nmsgs; i++)
        msg_free(sim->msgs[i]);
    free(sim->msgs);
    sim->msgs = NULL;
    sim->nmsgs = sim->capmsgs = 0;
    for (size_t i = 0; i < sim->nmos; i++) {
        free(sim->mos[i]->from);
        free(sim->mos[i]->to);
        free(sim->mos[i]->text);
        free(sim->mos[i]);
    }
    free(sim->mos);
    sim->mos = NULL;
    sim->nmos = sim->capmos = 0;
    cJSON_Delete(sim->requests);
    sim->requests = NULL;
    sim->nrequests = 0;
    sim->requests_unlogged = 0;
    free(sim->heap);
    sim->heap = NULL;
    sim->nheap = sim->capheap = 0;
    for (int p = 0; p < PROV_COUNT; p++) {
        struct sim_account *a = &sim->acct[p];
        idem_free(a->idem);
        sim_lines_free(a);
        memset(a, 0, sizeof(*a));
    }
}

void sim_reset(struct sim *sim)
{
    store_clear(sim);
    sim->requests = cJSON_CreateArray();
    sim->rng = sim->seed;
    accounts_defaults(sim);
    if (sim->startup_cfg) {
        char err[256];
        if (sim_config_apply(sim, sim->startup_cfg, err, sizeof(err)))
            log_error("config re-apply failed", "error=%s", log_q(err));
    }
    uv_timer_stop(&sim->tick);
}

int sim_init(struct sim *sim, uv_loop_t *loop, uint64_t seed)
{
    memset(sim, 0, sizeof(*sim));
    sim->loop = loop;
    sim->seed = sim->rng = seed;
    sim_cfg_defaults(&sim->base_cfg);
    for (int p = 0; p < PROV_COUNT; p++) {
        sim->route[p].sim = sim;
        sim->route[p].prov = (enum sim_prov)p;
    }
    sim->requests = cJSON_CreateArray();
    if (!sim->requests)
        return -ENOMEM;
    accounts_defaults(sim);
    int rc = uv_timer_init(loop, &sim->tick);
    if (rc) {
        cJSON_Delete(sim->requests);
        return rc;
    }
    return hooks_new(sim);
}

void sim_close(struct sim *sim)
{
    sim->closing = 1;
    while (!list_empty(&sim->pending))
        pending_fire(list_entry(list_first(&sim->pending), struct sim_pending, node));
    uv_close((uv_handle_t *)&sim->tick, NULL);
    hooks_free(sim);
    store_clear(sim);
    cJSON_Delete(sim->startup_cfg);
    sim->startup_cfg = NULL;
    if (sim->log)
        fclose(sim->log);
    sim->log = NULL;
}
