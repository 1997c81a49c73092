/* fuzz_dvemu_api.c - libFuzzer target for dvemu's whole Web API layer
 * below HTTP: OData query options, JSON bodies, $batch multipart framing,
 * FetchXML, metadata calls. dvemu is a program, so its sources (all but
 * main.c) are compiled in here. Input: an HTTP-like request
 *   "METHOD path?query\n" headers ("Name: value\n")... "\n" body
 * run against a fresh store holding one contact. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../../tools/dvemu/api.c"
#include "../../tools/dvemu/auth.c"
#include "../../tools/dvemu/batch.c"
#include "../../tools/dvemu/expand.c"
#include "../../tools/dvemu/faults.c"
#include "../../tools/dvemu/fetchxml.c"
#include "../../tools/dvemu/filter.c"
#include "../../tools/dvemu/journal.c"
#include "../../tools/dvemu/lists.c"
#include "../../tools/dvemu/metadata.c"
#include "../../tools/dvemu/query.c"
#include "../../tools/dvemu/render.c"
#include "../../tools/dvemu/schema.c"
#include "../../tools/dvemu/seed.c"
#include "../../tools/dvemu/store.c"
#include "../../tools/dvemu/write.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz_hdrs {
    char *names[16];
    char *values[16];
    size_t n;
};

static const char *fz_header_cb(void *ud, const char *name)
{
    struct fz_hdrs *h = ud;
    for (size_t i = 0; i < h->n; i++)
        if (strcasecmp(h->names[i], name) == 0)
            return h->values[i];
    return NULL;
}

static void fz_setup(struct emu *e)
{
    memset(e, 0, sizeof(*e));
    e->clients = cJSON_CreateObject();
    e->client_certs = cJSON_CreateObject();
    e->actions = cJSON_CreateObject();
    cJSON_AddArrayToObject(e->actions, "smsys_Notify");
    e->metadata_log = cJSON_CreateArray();
    e->stats.by_method = cJSON_CreateObject();
    e->stats.by_set = cJSON_CreateObject();
    e->delta_ttl_s = 604800;
    snprintf(e->user_id, sizeof(e->user_id), "%s", "5d6c1c1e-0000-4000-8000-00000000a001");
    snprintf(e->bu_id, sizeof(e->bu_id), "%s", "5d6c1c1e-0000-4000-8000-00000000b001");
    store_init(&e->store);
    schema_install_standard(&e->store, 1);
    struct table *ct = store_by_logical(&e->store, "contact");
    cJSON *o = cJSON_CreateObject();
    write_defaults(e, ct, o, "00000000-0000-4000-8000-000000000001");
    cJSON_AddStringToObject(o, "firstname", "Ali");
    cJSON_AddStringToObject(o, "mobilephone", "09121234567");
    store_put(&e->store, ct, "00000000-0000-4000-8000-000000000001", o);
    /* a row fault rule, so writes also go through its matching */
    e->faults = cJSON_CreateArray();
    char why[200];
    const char *rule = "{\"entity_set\":\"contacts\",\"match\":{\"lastname\":\"Refused\","
                       "\"parentcustomerid\":null}}";
    faults_add(e, rule, strlen(rule), why, sizeof(why));
}

static void fz_teardown(struct emu *e)
{
    store_table_free(e->pointer);
    store_free(&e->store);
    cJSON_Delete(e->clients);
    cJSON_Delete(e->client_certs);
    cJSON_Delete(e->actions);
    cJSON_Delete(e->faults);
    cJSON_Delete(e->metadata_log);
    cJSON_Delete(e->stats.by_method);
    cJSON_Delete(e->stats.by_set);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size + 1);
    if (in == NULL)
        return 0;
    memcpy(in, data, size);
    in[size] = '\0';
    char *line = in, *nl = strchr(line, '\n');
    if (nl == NULL) {
        free(in);
        return 0;
    }
    *nl = '\0';
    char *sp = strchr(line, ' ');
    if (sp == NULL) {
        free(in);
        return 0;
    }
    *sp = '\0';
    const char *method = line;
    char *target = sp + 1;
    struct fz_hdrs h = {.n = 0};
    char *p = nl + 1;
    while (*p && *p != '\n' && h.n < 16) {
        char *e = strchr(p, '\n');
        if (e)
            *e = '\0';
        char *colon = strchr(p, ':');
        if (colon) {
            *colon = '\0';
            h.names[h.n] = p;
            h.values[h.n] = colon + 1 + (colon[1] == ' ');
            h.n++;
        }
        if (e == NULL) {
            p += strlen(p);
            break;
        }
        p = e + 1;
    }
    if (*p == '\n')
        p++;
    static struct emu e;
    fz_setup(&e);
    struct api_req q = {
        .method = method,
        .base = "http://127.0.0.1:8401/api/data/v9.2/",
        .header = fz_header_cb,
        .header_ud = &h,
        .body = p,
        .body_len = strlen(p),
    };
    char *qm = strchr(target, '?');
    q.query = strdup(qm ? qm + 1 : "");
    if (qm)
        *qm = '\0';
    q.path = strdup(target);
    struct api_res r;
    api_res_init(&r);
    if (q.path && q.query && http_urldecode(q.path, 0) >= 0)
        api_exec(&e, &q, &r);
    api_res_free(&r);
    free(q.path);
    free(q.query);
    fz_teardown(&e);
    free(in);
    return 0;
}
