/* Unit tests of the pure parts of `smsysctl bulk`: id arguments, the rate
 * window, ETA and the progress line at every terminal width. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "../../tools/smsysctl/bulk_view.c"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void test_states(void **state)
{
    (void)state;
    assert_string_equal(bulk_state_name(BULK_SENDING), "Sending");
    assert_string_equal(bulk_state_name(BULK_FAILED), "Failed");
    assert_string_equal(bulk_state_name(0), "?");
    assert_true(bulkview_final(BULK_COMPLETED));
    assert_true(bulkview_final(BULK_CANCELED));
    assert_true(bulkview_final(BULK_FAILED));
    assert_false(bulkview_final(BULK_PAUSED));
    assert_false(bulkview_final(BULK_SENDING));
}

static void test_id_parse(void **state)
{
    (void)state;
    char hex[33];
    int full = -1;
    assert_int_equal(bulkview_id_parse("1B4E28BA-2FA1-41D2-883F-0016D3CCA427", hex, &full), 0);
    assert_string_equal(hex, "1b4e28ba2fa141d2883f0016d3cca427");
    assert_int_equal(full, 1);
    char canon[37];
    bulkview_id_format(hex, canon);
    assert_string_equal(canon, "1b4e28ba-2fa1-41d2-883f-0016d3cca427");

    assert_int_equal(bulkview_id_parse("1b4e28ba2fa141d2883f0016d3cca427", hex, &full), 0);
    assert_int_equal(full, 1);
    /* prefixes: 8+ digits, hyphens where the GUID has them */
    assert_int_equal(bulkview_id_parse("1b4e28ba", hex, &full), 0);
    assert_int_equal(full, 0);
    assert_string_equal(hex, "1b4e28ba");
    assert_int_equal(bulkview_id_parse("1b4e28ba-2f", hex, &full), 0);
    assert_string_equal(hex, "1b4e28ba2f");
    assert_int_equal(full, 0);

    const char *bad[] = {
        "",
        "1b4e28b",                                /* 7 digits */
        "1b4e28bx",                               /* not hex */
        "-1b4e28ba",                              /* leading hyphen */
        "1b4e-28ba",                              /* hyphen where the GUID has none */
        "1b4e28ba-",                              /* trailing hyphen */
        "1b4e28ba--2fa1",                         /* two hyphens */
        "1b4e28ba-2fa141d2883f0016d3cca427",      /* a full id with one hyphen */
        "1b4e28ba-2fa1-41d2-883f-0016d3cca4270",  /* 33 digits */
        "{1b4e28ba-2fa1-41d2-883f-0016d3cca427}", /* braces */
        "1b4e28ba 2fa1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (bulkview_id_parse(bad[i], hex, &full) != -EINVAL)
            fail_msg("'%s' was accepted", bad[i]);
    assert_int_equal(bulkview_id_parse(NULL, hex, &full), -EINVAL);
}

static void test_rate_window(void **state)
{
    (void)state;
    struct bulkview_rate r = {0};
    assert_true(bulkview_rate_get(&r) < 0);
    bulkview_rate_add(&r, 1000, 0);
    assert_true(bulkview_rate_get(&r) < 0); /* one sample: no rate */
    bulkview_rate_add(&r, 1500, 10);
    assert_true(bulkview_rate_get(&r) < 0); /* under a second: no rate */
    bulkview_rate_add(&r, 2000, 50);
    assert_true(bulkview_rate_get(&r) > 49.9 && bulkview_rate_get(&r) < 50.1);

    /* 100/s for 20 s, then 10/s: after 10 s of the slow rate only it counts */
    struct bulkview_rate w = {0};
    long long done = 0;
    uint64_t t = 0;
    for (; t <= 20000; t += 1000, done += 100)
        bulkview_rate_add(&w, t, done);
    assert_true(bulkview_rate_get(&w) > 99.9 && bulkview_rate_get(&w) < 100.1);
    done -= 100; /* the last sample taken: 2000 at 20 s */
    t -= 1000;
    for (int i = 0; i < 10; i++) {
        t += 1000;
        done += 10;
        bulkview_rate_add(&w, t, done);
    }
    double slow = bulkview_rate_get(&w);
    if (slow < 9.9 || slow > 10.1)
        fail_msg("rate after 10 s at 10/s: %f", slow);
    assert_true(w.n <= 12);

    /* a sample from the past is ignored; a counter going back gives 0, not < 0 */
    unsigned n = w.n;
    bulkview_rate_add(&w, 5, 0);
    assert_int_equal(w.n, n);
    bulkview_rate_add(&w, t + 1000, done - 1000);
    assert_true(bulkview_rate_get(&w) == 0);

    /* more samples than slots, all inside the window: the ring keeps the newest */
    struct bulkview_rate f = {0};
    for (int i = 0; i < 3 * BULKVIEW_RATE_SLOTS; i++)
        bulkview_rate_add(&f, (uint64_t)i * 100, i);
    assert_int_equal(f.n, BULKVIEW_RATE_SLOTS);
    assert_true(bulkview_rate_get(&f) > 9.9 && bulkview_rate_get(&f) < 10.1);
}

static void test_eta_and_duration(void **state)
{
    (void)state;
    assert_int_equal(bulkview_eta_s(0, -1), 0);
    assert_int_equal(bulkview_eta_s(100, -1), -1);
    assert_int_equal(bulkview_eta_s(100, 0), -1);
    assert_int_equal(bulkview_eta_s(100, 10), 10);
    assert_int_equal(bulkview_eta_s(101, 10), 11); /* rounds up: never promises too early */
    assert_int_equal(bulkview_eta_s(1000000000000LL, 0.0001), -1);
    char d[32];
    bulkview_duration(-1, d, sizeof(d));
    assert_string_equal(d, "?");
    bulkview_duration(42, d, sizeof(d));
    assert_string_equal(d, "42s");
    bulkview_duration(308, d, sizeof(d));
    assert_string_equal(d, "5m08s");
    bulkview_duration(7500, d, sizeof(d));
    assert_string_equal(d, "2h05m");
    bulkview_duration(3 * 86400 + 4 * 3600 + 5, d, sizeof(d));
    assert_string_equal(d, "3d04h");
}

static const struct bulkview sending = {
    .state = BULK_SENDING,
    .expanded = 1,
    .c = {.total = 10000, .sent = 4100, .delivered = 3900, .failed = 100, .skipped = 12},
    .done = 4200,
};

static void test_line_wide(void **state)
{
    (void)state;
    char out[512];
    size_t n = bulkview_line(out, sizeof(out), &sending, 100, 200, 1, 0);
    assert_int_equal(n, strlen(out));
    assert_true(n <= 200);
    assert_non_null(strstr(out, "Sending ["));
    assert_non_null(strstr(out, " 42.0% 4200/10000 "));
    assert_non_null(strstr(out, "sent 4100"));
    assert_non_null(strstr(out, "delivered 3900"));
    assert_non_null(strstr(out, "failed 100"));
    assert_non_null(strstr(out, "skipped 12"));
    assert_non_null(strstr(out, "100/s"));
    assert_non_null(strstr(out, "ETA 58s")); /* 5800 left at 100/s */
    /* the bar is at most 40 cells, 42% filled */
    const char *b = strchr(out, '[');
    const char *e = strchr(out, ']');
    assert_int_equal(e - b - 1, 40);
    int hashes = 0;
    for (const char *p = b + 1; p < e; p++)
        hashes += *p == '#';
    assert_int_equal(hashes, 16);
}

static void test_line_every_width(void **state)
{
    (void)state;
    char out[512];
    /* the line never exceeds the terminal, at any width */
    for (int w = 1; w <= 220; w++) {
        size_t n = bulkview_line(out, sizeof(out), &sending, 12.34, w, 1, 0);
        if (n > (size_t)w || n != strlen(out))
            fail_msg("width %d: %zu columns: '%s'", w, n, out);
    }
    /* 80 columns: no room for a bar next to the labels, the labels stay */
    bulkview_line(out, sizeof(out), &sending, 12.34, 80, 1, 0);
    assert_null(strchr(out, '['));
    assert_non_null(strstr(out, "12.3/s"));
    /* 40 columns: the compact form keeps percentage, counts, rate and ETA */
    bulkview_line(out, sizeof(out), &sending, 12.34, 40, 1, 0);
    assert_string_equal(out, "Sending 42% 4200/10000 12.3/s ETA 7m51s");
    /* tiny: cut, not wrapped */
    bulkview_line(out, sizeof(out), &sending, 12.34, 10, 1, 0);
    assert_string_equal(out, "Sending 42");
    /* a small buffer is never overrun and stays terminated */
    char small[8];
    size_t n = bulkview_line(small, sizeof(small), &sending, 1, 200, 1, 0);
    assert_int_equal(n, 7);
    assert_int_equal(strlen(small), 7);
    n = bulkview_line(small, sizeof(small), &sending, 1, 200, 0, 0);
    assert_int_equal(strlen(small), 7);
    assert_int_equal(n, 7);
}

static void test_line_states(void **state)
{
    (void)state;
    char out[512];
    /* expanding: the total is still growing and there is no ETA */
    struct bulkview p = {.state = BULK_EXPANDING, .c = {.total = 3200, .skipped = 4}};
    bulkview_line(out, sizeof(out), &p, -1, 200, 1, 0);
    assert_non_null(strstr(out, "Expanding ["));
    assert_non_null(strstr(out, "0/3200+"));
    assert_non_null(strstr(out, "?/s"));
    assert_non_null(strstr(out, "ETA ?"));
    /* paused: no ETA even with a rate left in the window */
    p = sending;
    p.state = BULK_PAUSED;
    bulkview_line(out, sizeof(out), &p, 50, 200, 1, 0);
    assert_non_null(strstr(out, "ETA ?"));
    /* completed: full bar, nothing left */
    p = (struct bulkview){.state = BULK_COMPLETED,
                          .expanded = 1,
                          .c = {.total = 5, .sent = 5, .delivered = 5},
                          .done = 5};
    bulkview_line(out, sizeof(out), &p, 0, 120, 1, 0);
    assert_non_null(strstr(out, "[########################################]"));
    assert_non_null(strstr(out, "100.0%"));
    assert_non_null(strstr(out, "ETA 0s"));
    /* an empty audience that completed is done, not 0% */
    p = (struct bulkview){.state = BULK_COMPLETED, .expanded = 1, .c = {.skipped = 3}};
    bulkview_line(out, sizeof(out), &p, -1, 120, 1, 0);
    assert_non_null(strstr(out, "100.0%"));
    /* more done than total (a late count) never overfills */
    p = sending;
    p.done = 20000;
    bulkview_line(out, sizeof(out), &p, 1, 200, 1, 0);
    assert_non_null(strstr(out, "100.0%"));
}

static void test_line_not_tty(void **state)
{
    (void)state;
    char out[512];
    bulkview_line(out, sizeof(out), &sending, 100, 20, 0, 1795824000);
    /* one log line, whatever the width: no bar, no carriage return */
    assert_string_equal(out, "2026-11-28T00:00:00Z state=Sending total=10000 done=4200 sent=4100 "
                             "delivered=3900 failed=100 skipped=12 progress=42.0% rate=100/s "
                             "eta=58s");
    assert_null(strchr(out, '\r'));
    struct bulkview p = {.state = BULK_EXPANDING, .c = {.total = 7}};
    bulkview_line(out, sizeof(out), &p, -1, 80, 0, 1795824000);
    assert_non_null(strstr(out, "state=Expanding total=7+ "));
    assert_non_null(strstr(out, "rate=?/s eta=?"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_states),      cmocka_unit_test(test_id_parse),
        cmocka_unit_test(test_rate_window), cmocka_unit_test(test_eta_and_duration),
        cmocka_unit_test(test_line_wide),   cmocka_unit_test(test_line_every_width),
        cmocka_unit_test(test_line_states), cmocka_unit_test(test_line_not_tty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
