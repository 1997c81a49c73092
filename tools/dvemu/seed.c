/* seed.c - --seed demo (a deterministic Iranian demo organisation) and
 * --seed FILE.json ({"<entity set>":[<create body>, ...], ...,
 * "_links":[{"nav":..,"left":..,"right":..}]}, created in file order
 * through the same path as POST, so @odata.bind works). Seeding is
 * skipped when the store already holds contacts (a --data restart). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dvemu.h"
#include "smsys/util.h"

#define N_ACCOUNTS 300
#define N_CONTACTS 3000
#define N_LEADS    1000

static uint64_t rng_state;

static uint32_t rnd(void)
{
    /* splitmix64: fixed seed, so every run builds the same organisation */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return (uint32_t)((z ^ (z >> 31)) >> 32);
}

static void guid(char out[37])
{
    uint32_t a = rnd(), b = rnd(), c = rnd(), d = rnd();
    snprintf(out, 37, "%08x-%04x-4%03x-%04x-%04x%08x", a, b >> 16, b & 0xfff, (c & 0x3fff) | 0x8000,
             c >> 16, d);
}

static const char *first_m[] = {"علی",  "محمد", "حسین", "رضا",  "مهدی", "امیر",
                                "حمید", "سعید", "مجید", "کاوه", "بابک", "آرش"};
static const char *first_f[] = {"زهرا",  "فاطمه", "مریم",   "سارا",  "نرگس",  "لیلا",
                                "شیرین", "مینا",  "نازنین", "پریسا", "الهام", "سمیرا"};
static const char *last[] = {"محمدی", "احمدی", "حسینی", "رضایی",  "کریمی",  "موسوی",
                             "جعفری", "صادقی", "رحیمی", "نوری",   "قاسمی",  "اکبری",
                             "طاهری", "کاظمی", "شریفی", "یزدانی", "تهرانی", "اصفهانی"};
static const char *cities[] = {"تهران", "اصفهان", "مشهد", "شیراز", "تبریز", "کرج", "قم", "اهواز"};
static const char *company_kind[] = {"شرکت", "گروه", "بازرگانی", "صنایع", "فروشگاه"};
static const char *company_word[] = {"پارس", "آریا",  "البرز", "کوروش", "دماوند",
                                     "سپهر", "آفتاب", "نگین",  "ستاره", "زاگرس"};
static const char *prefixes[] = {"912", "935", "901", "919", "921", "990", "915", "936"};

static const char *pick(const char *const *a, size_t n)
{
    return a[rnd() % n];
}

#define PICK(a) pick(a, ARRAY_LEN(a))

/* A valid Iranian mobile number written the way people type them. */
static void mobile(char *out, size_t len)
{
    const char *p = PICK(prefixes);
    unsigned n = rnd() % 10000000u;
    char digits[8];
    snprintf(digits, sizeof(digits), "%07u", n);
    switch (rnd() % 6) {
    case 0:
    case 1:
        snprintf(out, len, "0%s%s", p, digits);
        break;
    case 2:
        snprintf(out, len, "+98 %s %.3s %s", p, digits, digits + 3);
        break;
    case 3:
        snprintf(out, len, "+98%s%s", p, digits);
        break;
    case 4:
        snprintf(out, len, "0%s-%.3s-%s", p, digits, digits + 3);
        break;
    default: {
        /* Persian digits (U+06F0..U+06F9, two bytes each in UTF-8) */
        char ascii[16];
        snprintf(ascii, sizeof(ascii), "0%s%s", p, digits);
        size_t o = 0;
        for (size_t i = 0; ascii[i] && o + 3 < len; i++) {
            out[o++] = (char)0xDB;
            out[o++] = (char)(0xB0 + (ascii[i] - '0'));
        }
        out[o] = '\0';
    }
    }
}

static int create(struct emu *e, const char *logical, cJSON *body, char id_out[37])
{
    struct table *t = store_by_logical(&e->store, logical);
    if (t == NULL) {
        cJSON_Delete(body);
        return -ENOENT;
    }
    char id[37];
    guid(id);
    cJSON_AddStringToObject(body, t->pk, id);
    struct api_res r;
    api_res_init(&r);
    struct row *row;
    int rc = write_create(e, t, body, NULL, &r, &row);
    if (rc != 0)
        fprintf(stderr, "dvemu: seed %s failed: %s\n", logical, r.body.data ? r.body.data : "");
    api_res_free(&r);
    cJSON_Delete(body);
    if (rc == 0 && id_out)
        memcpy(id_out, id, 37);
    return rc;
}

static void seed_bind(cJSON *b, const char *nav, const char *set, const char *id)
{
    char v[200];
    snprintf(v, sizeof(v), "/%s(%s)", set, id);
    char k[160];
    snprintf(k, sizeof(k), "%s@odata.bind", nav);
    cJSON_AddStringToObject(b, k, v);
}

static void person(cJSON *b, int *female)
{
    *female = (int)(rnd() & 1);
    cJSON_AddStringToObject(b, "firstname", *female ? PICK(first_f) : PICK(first_m));
    cJSON_AddStringToObject(b, "lastname", PICK(last));
}

int seed_demo(struct emu *e)
{
    struct table *ct = store_by_logical(&e->store, "contact");
    if (ct && ct->live > 0)
        return 0;
    if (!store_by_logical(&e->store, "smsys_sms")) {
        fprintf(stderr, "dvemu: --seed demo needs the smsys tables\n");
        return -ENOENT;
    }
    rng_state = 20261128;
    int rc = 0;
    char users[8][37], teams[2][37], queue[37], accounts[N_ACCOUNTS][37];
    static char contacts[N_CONTACTS][37], leads[N_LEADS][37];
    int fem;
    for (int i = 0; i < 8 && rc == 0; i++) {
        cJSON *b = cJSON_CreateObject();
        person(b, &fem);
        char mail[64], m[40];
        snprintf(mail, sizeof(mail), "user%d@demo.smsys.ir", i + 1);
        cJSON_AddStringToObject(b, "internalemailaddress", mail);
        cJSON_AddStringToObject(b, "domainname", mail);
        mobile(m, sizeof(m));
        cJSON_AddStringToObject(b, "mobilephone", m);
        seed_bind(b, "businessunitid", "businessunits", e->bu_id);
        rc = create(e, "systemuser", b, users[i]);
    }
    const char *team_names[] = {"تیم پشتیبانی", "تیم فروش"};
    for (int i = 0; i < 2 && rc == 0; i++) {
        cJSON *b = cJSON_CreateObject();
        cJSON_AddStringToObject(b, "name", team_names[i]);
        cJSON_AddNumberToObject(b, "teamtype", 0);
        seed_bind(b, "businessunitid", "businessunits", e->bu_id);
        rc = create(e, "team", b, teams[i]);
    }
    if (rc == 0) {
        cJSON *b = cJSON_CreateObject();
        cJSON_AddStringToObject(b, "name", "پشتیبانی ۲۴/۷");
        cJSON_AddStringToObject(b, "description", "24/7 support queue: incoming SMS and cases");
        cJSON_AddStringToObject(b, "emailaddress", "support@demo.smsys.ir");
        seed_bind(b, "ownerid", "teams", teams[0]);
        rc = create(e, "queue", b, queue);
    }
    for (int i = 0; i < N_ACCOUNTS && rc == 0; i++) {
        cJSON *b = cJSON_CreateObject();
        char name[160], tel[32], m[40];
        snprintf(name, sizeof(name), "%s %s %s %d", PICK(company_kind), PICK(company_word),
                 PICK(company_word), i + 1);
        cJSON_AddStringToObject(b, "name", name);
        snprintf(tel, sizeof(tel), "021%08u", rnd() % 100000000u);
        cJSON_AddStringToObject(b, "telephone1", tel);
        mobile(m, sizeof(m));
        if (rnd() % 3)
            cJSON_AddStringToObject(b, "mobilephone", m);
        cJSON_AddStringToObject(b, "address1_city", PICK(cities));
        seed_bind(b, "ownerid", "systemusers", users[rnd() % 8]);
        rc = create(e, "account", b, accounts[i]);
    }
    for (int i = 0; i < N_CONTACTS && rc == 0; i++) {
        cJSON *b = cJSON_CreateObject();
        person(b, &fem);
        char m[40];
        mobile(m, sizeof(m));
        if (rnd() % 20) /* 5% without a mobile number */
            cJSON_AddStringToObject(b, "mobilephone", m);
        if (rnd() % 4 == 0) {
            char tel[32];
            snprintf(tel, sizeof(tel), "0%u%07u", 21 + rnd() % 70, rnd() % 10000000u);
            cJSON_AddStringToObject(b, "telephone1", tel);
        }
        cJSON_AddNumberToObject(b, "gendercode", fem ? 2 : 1);
        cJSON_AddStringToObject(b, "address1_city", PICK(cities));
        cJSON_AddBoolToObject(b, "smsys_donotsms", rnd() % 25 == 0);
        seed_bind(b, "parentcustomerid_account", "accounts", accounts[rnd() % N_ACCOUNTS]);
        seed_bind(b, "ownerid", "systemusers", users[rnd() % 8]);
        rc = create(e, "contact", b, contacts[i]);
    }
    for (int i = 0; i < N_LEADS && rc == 0; i++) {
        cJSON *b = cJSON_CreateObject();
        person(b, &fem);
        char m[40], co[160];
        mobile(m, sizeof(m));
        cJSON_AddStringToObject(b, "mobilephone", m);
        snprintf(co, sizeof(co), "%s %s", PICK(company_kind), PICK(company_word));
        cJSON_AddStringToObject(b, "companyname", co);
        cJSON_AddStringToObject(b, "subject", "درخواست پیش‌فاکتور");
        cJSON_AddStringToObject(b, "address1_city", PICK(cities));
        cJSON_AddBoolToObject(b, "smsys_donotsms", rnd() % 30 == 0);
        rc = create(e, "lead", b, leads[i]);
    }
    /* marketing lists: static contact and lead lists, a dynamic one */
    char l_vip[37], l_leads[37], l_dyn[37], camp[37];
    if (rc == 0) {
        cJSON *b = cJSON_CreateObject();
        cJSON_AddStringToObject(b, "listname", "مشتریان ویژه (VIP)");
        cJSON_AddBoolToObject(b, "type", 0);
        cJSON_AddNumberToObject(b, "createdfromcode", 2);
        cJSON_AddNumberToObject(b, "membercount", 250);
        rc = create(e, "list", b, l_vip);
        for (int i = 0; i < 250 && rc == 0; i++)
            store_link(&e->store, "listcontact_association", l_vip, contacts[i * 7 % N_CONTACTS]);
    }
    if (rc == 0) {
        cJSON *b = cJSON_CreateObject();
        cJSON_AddStringToObject(b, "listname", "سرنخ‌های نمایشگاه");
        cJSON_AddBoolToObject(b, "type", 0);
        cJSON_AddNumberToObject(b, "createdfromcode", 4);
        cJSON_AddNumberToObject(b, "membercount", 120);
        rc = create(e, "list", b, l_leads);
        for (int i = 0; i < 120 && rc == 0; i++)
            store_link(&e->store, "listlead_association", l_leads, leads[i * 3]);
    }
    if (rc == 0) {
        cJSON *b = cJSON_CreateObject();
        cJSON_AddStringToObject(b, "listname", "مخاطبان تهران (پویا)");
        cJSON_AddBoolToObject(b, "type", 1);
        cJSON_AddNumberToObject(b, "createdfromcode", 2);
        cJSON_AddStringToObject(
            b, "query",
            "<fetch version=\"1.0\" output-format=\"xml-platform\" mapping=\"logical\" "
            "distinct=\"false\"><entity name=\"contact\"><attribute name=\"fullname\"/>"
            "<attribute name=\"mobilephone\"/><attribute name=\"contactid\"/><filter "
            "type=\"and\"><condition attribute=\"address1_city\" operator=\"eq\" "
            "value=\"تهران\"/><condition attribute=\"mobilephone\" operator=\"not-null\"/>"
            "<condition attribute=\"statecode\" operator=\"eq\" value=\"0\"/></filter>"
            "</entity></fetch>");
        rc = create(e, "list", b, l_dyn);
    }
    if (rc == 0) {
        cJSON *b = cJSON_CreateObject();
        cJSON_AddStringToObject(b, "name", "جشنواره یلدا ۱۴۰۵");
        cJSON_AddStringToObject(b, "codename", "YALDA1405");
        cJSON_AddStringToObject(b, "description", "Yalda night offer to VIP and Tehran contacts");
        rc = create(e, "campaign", b, camp);
        if (rc == 0) {
            store_link(&e->store, "campaignlist_association", camp, l_vip);
            store_link(&e->store, "campaignlist_association", camp, l_dyn);
        }
    }
    /* provider accounts pointing at the local simulators */
    char s_smpp[37], s_kn[37];
    if (rc == 0) {
        cJSON *b = cJSON_CreateObject();
        cJSON_AddStringToObject(b, "smsys_name", "SMPP محلی (شبیه‌ساز)");
        cJSON_AddStringToObject(b, "smsys_provider", "smpp");
        cJSON_AddBoolToObject(b, "smsys_isdefault", 1);
        cJSON_AddBoolToObject(b, "smsys_enabled", 1);
        cJSON_AddStringToObject(b, "smsys_config",
                                "{\"host\":\"127.0.0.1\",\"port\":2775,\"system_id\":\"smsys\","
                                "\"bind\":\"transceiver\",\"window\":10,\"rate_per_sec\":50,"
                                "\"sender\":\"30001234\"}");
        cJSON_AddStringToObject(b, "smsys_apikey", "smsyspw"); /* SMPP: <= 8 */
        cJSON_AddNumberToObject(b, "smsys_inboundinterval", 10);
        cJSON_AddNumberToObject(b, "smsys_maxretries", 3);
        cJSON_AddStringToObject(b, "smsys_separators", " ,،;:\n");
        rc = create(e, "smsys_smssetting", b, s_smpp);
    }
    if (rc == 0) {
        cJSON *b = cJSON_CreateObject();
        cJSON_AddStringToObject(b, "smsys_name", "کاوه‌نگار (شبیه‌ساز)");
        cJSON_AddStringToObject(b, "smsys_provider", "kavenegar");
        cJSON_AddBoolToObject(b, "smsys_isdefault", 0);
        cJSON_AddBoolToObject(b, "smsys_enabled", 1);
        cJSON_AddStringToObject(b, "smsys_config",
                                "{\"base_url\":\"http://127.0.0.1:8402/kavenegar\","
                                "\"sender\":\"10004346\",\"rate_per_sec\":20}");
        cJSON_AddStringToObject(b, "smsys_apikey", "demo-kavenegar-key");
        cJSON_AddNumberToObject(b, "smsys_inboundinterval", 30);
        cJSON_AddNumberToObject(b, "smsys_maxretries", 3);
        rc = create(e, "smsys_smssetting", b, s_kn);
    }
    struct {
        const char *num;
        int kn, user, queue, def;
    } lines[] = {
        {"30001234", 0, -1, 0, 1},
        {"30001235", 0, 1, 0, 0},
        {"10004346", 1, -1, 1, 1},
        {"+982191001234", 1, -1, 1, 0},
    };
    for (size_t i = 0; i < ARRAY_LEN(lines) && rc == 0; i++) {
        cJSON *b = cJSON_CreateObject();
        cJSON_AddStringToObject(b, "smsys_number", lines[i].num);
        seed_bind(b, "smsys_settingid", "smsys_smssettings", lines[i].kn ? s_kn : s_smpp);
        if (lines[i].user >= 0)
            seed_bind(b, "smsys_userid", "systemusers", users[lines[i].user]);
        if (lines[i].queue)
            seed_bind(b, "smsys_queueid", "queues", queue);
        cJSON_AddBoolToObject(b, "smsys_isdefault", lines[i].def);
        rc = create(e, "smsys_smsnumber", b, NULL);
    }
    char t_contact[37], t_reply[37];
    struct {
        const char *name, *body, *entity;
        int def;
        char *id;
    } tpl[] = {
        {"خوشامد مخاطب", "{{firstname}} عزیز، از همراهی شما سپاسگزاریم.", "contact", 1, t_contact},
        {"پاسخ قیمت",
         "لیست قیمت به‌روز: https://demo.smsys.ir/p لغو: ارسال لغو",
         "contact", 0, t_reply},
        {"خوشامد حساب", "مدیر محترم {{name}}، قرارداد شما تمدید شد.", "account", 1, NULL},
        {"پیگیری سرنخ",
         "{{fullname}} گرامی، کارشناس ما به زودی تماس می‌گیرد.",
         "lead", 1, NULL},
        {"Yalda offer", "Dear {{firstname}}, 20% off tonight only. Reply STOP to opt out.",
         "contact", 0, NULL},
    };
    for (size_t i = 0; i < ARRAY_LEN(tpl) && rc == 0; i++) {
        cJSON *b = cJSON_CreateObject();
        cJSON_AddStringToObject(b, "smsys_name", tpl[i].name);
        cJSON_AddStringToObject(b, "smsys_body", tpl[i].body);
        cJSON_AddStringToObject(b, "smsys_entity", tpl[i].entity);
        cJSON_AddBoolToObject(b, "smsys_isdefault", tpl[i].def);
        rc = create(e, "smsys_smstemplate", b, tpl[i].id);
    }
    struct {
        const char *name, *words;
        int match, action, prio, stop;
        const char *actionname;
    } rules[] = {
        {"لغو عضویت", "STOP\nUNSUBSCRIBE\nلغو\nانصراف", 3, 1, 10, 1, NULL},
        {"عضویت مجدد", "START\nعضویت", 3, 2, 20, 1, NULL},
        {"استعلام قیمت", "قیمت\nPRICE", 1, 3, 30, 1, NULL},
        {"درخواست پشتیبانی", "پشتیبانی\nخرابی\nHELP", 1, 4, 40, 1, NULL},
        {"همه پیام‌ها به صف", "*", 1, 5, 100, 0, NULL},
        {"ثبت رضایت", "راضی\nعالی", 1, 6, 50, 0, "smsys_RecordFeedback"},
    };
    for (size_t i = 0; i < ARRAY_LEN(rules) && rc == 0; i++) {
        cJSON *b = cJSON_CreateObject();
        cJSON_AddStringToObject(b, "smsys_name", rules[i].name);
        cJSON_AddStringToObject(b, "smsys_keywords", rules[i].words);
        cJSON_AddNumberToObject(b, "smsys_match", rules[i].match);
        cJSON_AddNumberToObject(b, "smsys_action", rules[i].action);
        cJSON_AddNumberToObject(b, "smsys_priority", rules[i].prio);
        cJSON_AddBoolToObject(b, "smsys_stop", rules[i].stop);
        if (rules[i].action == 3)
            seed_bind(b, "smsys_templateid", "smsys_smstemplates", t_reply);
        if (rules[i].action == 4 || rules[i].action == 5)
            seed_bind(b, "smsys_queueid", "queues", queue);
        if (rules[i].actionname) {
            cJSON_AddStringToObject(b, "smsys_actionname", rules[i].actionname);
            if (!cJSON_GetObjectItemCaseSensitive(e->actions, rules[i].actionname))
                cJSON_AddArrayToObject(e->actions, rules[i].actionname);
        }
        rc = create(e, "smsys_keywordrule", b, NULL);
    }
    if (rc == 0) {
        cJSON *b = cJSON_CreateObject();
        cJSON_AddStringToObject(b, "smsys_name", "ارسال یلدا");
        seed_bind(b, "smsys_templateid", "smsys_smstemplates", t_contact);
        seed_bind(b, "smsys_campaignid", "campaigns", camp);
        cJSON_AddNumberToObject(b, "smsys_status", 1);
        rc = create(e, "smsys_bulksms", b, NULL);
    }
    return rc;
}

int seed_file(struct emu *e, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -errno;
    struct buf b = BUF_INIT;
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        buf_append(&b, chunk, n);
    fclose(f);
    cJSON *root = cJSON_ParseWithLength(b.data ? b.data : "", b.len);
    buf_free(&b);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        fprintf(stderr, "dvemu: %s is not a JSON object\n", path);
        return -EINVAL;
    }
    struct table *ct = store_by_logical(&e->store, "contact");
    int already = ct && ct->live > 0;
    int rc = 0;
    const cJSON *set;
    cJSON_ArrayForEach(set, root)
    {
        if (already)
            break;
        if (strcmp(set->string, "_links") == 0) {
            const cJSON *l;
            cJSON_ArrayForEach(l, set)
            {
                const char *nav = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(l, "nav"));
                const char *le = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(l, "left"));
                const char *ri = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(l, "right"));
                if (nav && le && ri && schema_assoc(nav))
                    store_link(&e->store, nav, le, ri);
            }
            continue;
        }
        struct table *t = store_by_set(&e->store, set->string);
        if (t == NULL || !cJSON_IsArray(set)) {
            fprintf(stderr, "dvemu: %s: unknown entity set '%s'\n", path, set->string);
            rc = -EINVAL;
            break;
        }
        const cJSON *body;
        cJSON_ArrayForEach(body, set)
        {
            struct api_res r;
            api_res_init(&r);
            struct row *row;
            rc = write_create(e, t, body, NULL, &r, &row);
            if (rc != 0)
                fprintf(stderr, "dvemu: %s: %s row failed: %s\n", path, set->string,
                        r.body.data ? r.body.data : "");
            api_res_free(&r);
            if (rc != 0)
                break;
        }
        if (rc != 0)
            break;
    }
    cJSON_Delete(root);
    return rc;
}
