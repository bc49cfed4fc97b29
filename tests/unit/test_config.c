/* Unit tests for proxy/config: the settings JSON stored with each run (escaped, no passwords)
 * and config files with lines at and over libinih's line limit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy/config.h"
#include "report/tally.h"
#include "testlib.h"

static char tmpdir[] = "/tmp/test_config.XXXXXX";

TEST(settings_json_escapes_every_string)
{
    ProxyConfig c;
    config_defaults(&c);
    free(c.listen);
    c.listen = strdup("127.0.0.1:6432");
    free(c.db_path);
    c.db_path = strdup("postgres://u:secret@db/\"x\\y\x01\n");
    char *json = config_settings_json(&c, "/tmp/a\"b\\c\td/.s.PGSQL.5432");
    CHECK(json != NULL);
    if (json)
        CHECK_EQ_STR(json, "{\"listen\":\"127.0.0.1:6432\","
                           "\"upstream\":\"/tmp/a\\\"b\\\\c\\td/.s.PGSQL.5432\","
                           "\"db\":\"postgres://u:REDACTED@db/\\\"x\\\\y\\u0001\\n\","
                           "\"request_gap_s\":1.000,\"samples\":false,\"max_sql_bytes\":65536,"
                           "\"n_plus_one_calls\":5,\"n_plus_one_distinct\":2,"
                           "\"duplicate_min\":1,\"overfetch_rows\":1000,"
                           "\"overfetch_bytes\":1048576,\"request_overfetch_rows\":10000,"
                           "\"request_overfetch_bytes\":10485760}");
    free(json);
    c.no_db = true;
    free(c.upstream);
    c.upstream = strdup("postgres://u:secret@h/db");
    json = config_settings_json(&c, NULL);
    CHECK(json != NULL);
    if (json) {
        CHECK(strstr(json, "secret") == NULL);
        CHECK(strstr(json, "\"db\":null") != NULL);
    }
    free(json);
    config_free(&c);
}

/* The proxy starts from the tally's thresholds, and its stored settings show the ones it
 * sets as set and the others as the tally's defaults. */
TEST(thresholds_come_from_the_tally)
{
    ProxyConfig c;
    config_defaults(&c);
    TallyOptions o;
    tally_options_default(&o);
    CHECK_EQ_INT(c.n_plus_one_calls, o.n_plus_one_min_calls);
    CHECK_EQ_INT(c.n_plus_one_distinct, o.n_plus_one_min_distinct);
    CHECK_EQ_INT(c.duplicate_min, o.duplicate_min);
    CHECK_EQ_INT(c.overfetch_rows, o.overfetch_rows);
    CHECK_EQ_INT(c.overfetch_bytes, o.overfetch_bytes);
    c.n_plus_one_distinct = 7;
    c.overfetch_bytes = 5000000000;
    char *json = config_settings_json(&c, NULL);
    CHECK(json != NULL);
    if (json) {
        CHECK(strstr(json, "\"n_plus_one_calls\":5,\"n_plus_one_distinct\":7,") != NULL);
        CHECK(strstr(json, "\"overfetch_bytes\":5000000000,\"request_overfetch_rows\":10000,") !=
              NULL);
    }
    free(json);
    config_free(&c);
}

/* A SIGHUP's changes: only the reloadable options that changed, from and to, with the time;
 * NULL when nothing changed; the settings carry the list. */
TEST(change_json_names_each_changed_threshold)
{
    ProxyConfig a, b;
    config_defaults(&a);
    config_defaults(&b);
    CHECK(config_change_json(&a, &b, 42) == NULL);
    b.n_plus_one_calls = 3;
    b.overfetch_bytes = 4096;
    char *change = config_change_json(&a, &b, 1700000000000000);
    CHECK(change != NULL);
    if (change)
        CHECK_EQ_STR(change, "{\"at_us\":1700000000000000,\"changed\":{"
                             "\"n-plus-one-calls\":{\"from\":5,\"to\":3},"
                             "\"overfetch-bytes\":{\"from\":1048576,\"to\":4096}}}");
    char list[512];
    snprintf(list, sizeof list, "[%s]", change ? change : "");
    char *json = config_settings_json_with_changes(&b, "h:5432", list);
    CHECK(json != NULL);
    if (json) {
        CHECK(strstr(json, "\"n_plus_one_calls\":3,") != NULL);
        CHECK(strstr(json, ",\"settings_changes\":[{\"at_us\":1700000000000000,") != NULL);
    }
    free(json);
    free(change);
    config_free(&a);
    config_free(&b);
}

/* Loads a config file holding `text`; returns the result and the error in err. */
static ConfigParse load_text(const char *text, ProxyConfig *c, char *path, size_t path_len,
                             char *err, size_t err_len)
{
    snprintf(path, path_len, "%s/proxy.ini", tmpdir);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(2);
    }
    fputs(text, f);
    fclose(f);
    char *argv[] = {"proxy", "--config", path, "--upstream", "127.0.0.1:5432", NULL};
    err[0] = 0;
    return config_load(c, 5, argv, stdout, err, err_len);
}

/* Every finding threshold the config file sets reaches the tally's options, at start and
 * after a SIGHUP (config_load of the file anew, config_apply_reloadable into the live
 * config, config_tally_options): each threshold of report/tally's table in turn, by its
 * settings name, which is also its config-file key. The others stay at their defaults. */
TEST(every_threshold_is_carried_into_the_tally)
{
    size_t settable = 0;
    for (int i = 0; i < TALLY_N_THRESHOLDS; i++) {
        TallyThresholdId id = (TallyThresholdId)i;
        uint64_t value = tally_threshold_default(id) + 3;
        char text[200], path[300], err[1024];
        snprintf(text, sizeof text, "[proxy]\n%s = %llu\n", tally_threshold_key(id),
                 (unsigned long long)value);
        ProxyConfig live, fresh;
        CHECK(load_text("[proxy]\n", &live, path, sizeof path, err, sizeof err) == CONFIG_OK);
        if (load_text(text, &fresh, path, sizeof path, err, sizeof err) != CONFIG_OK) {
            config_free(&fresh); /* not a setting of the proxy: stays at the tally's default */
            config_free(&live);
            continue;
        }
        settable++;
        TallyOptions at_start, after_reload;
        config_tally_options(&fresh, &at_start);
        config_apply_reloadable(&live, &fresh);
        config_tally_options(&live, &after_reload);
        for (int j = 0; j < TALLY_N_THRESHOLDS; j++) {
            TallyThresholdId other = (TallyThresholdId)j;
            uint64_t want = j == i ? value : tally_threshold_default(other);
            if (tally_threshold_get(&at_start, other) != want ||
                tally_threshold_get(&after_reload, other) != want)
                fprintf(stderr,
                        "  %s = %llu in the file: %s is %llu at start, %llu after "
                        "SIGHUP, want %llu\n",
                        tally_threshold_key(id), (unsigned long long)value,
                        tally_threshold_key(other),
                        (unsigned long long)tally_threshold_get(&at_start, other),
                        (unsigned long long)tally_threshold_get(&after_reload, other),
                        (unsigned long long)want);
            CHECK_EQ_INT(tally_threshold_get(&at_start, other), want);
            CHECK_EQ_INT(tally_threshold_get(&after_reload, other), want);
        }
        config_free(&fresh);
        config_free(&live);
    }
    /* n_plus_one_calls, n_plus_one_distinct, duplicate_min, overfetch_rows, overfetch_bytes
     * at least: a renamed key must not make this pass by skipping them. */
    CHECK(settable >= 5);
}

/* "[proxy]\n" + `run_label = aaa...` of exactly `len` bytes + "\ngrace = 3\n". */
static void label_file(char *out, size_t len)
{
    strcpy(out, "[proxy]\nrun_label = ");
    size_t n = strlen(out);
    size_t value = len - strlen("run_label = ");
    memset(out + n, 'a', value);
    strcpy(out + n + value, "\ngrace = 3\n");
}

TEST(config_line_at_the_limit_is_read_whole)
{
    char text[600], path[300], err[600];
    label_file(text, 199);
    ProxyConfig c;
    CHECK_EQ_INT(load_text(text, &c, path, sizeof path, err, sizeof err), CONFIG_OK);
    CHECK(c.run_label && strlen(c.run_label) == 199 - strlen("run_label = "));
    CHECK(c.grace_seconds == 3);
    config_free(&c);
}

TEST(config_line_over_the_limit_names_file_and_line)
{
    char text[600], path[300], err[600], expected[400];
    /* Before, the rest of such a line was parsed as a line of its own: "grace = 2" would have
     * been taken for a setting. */
    strcpy(text, "[proxy]\n; comment\nrun_label = ");
    size_t n = strlen(text);
    memset(text + n, 'a', 300);
    strcpy(text + n + 300 - strlen("grace = 2"), "grace = 2\n");
    ProxyConfig c;
    CHECK_EQ_INT(load_text(text, &c, path, sizeof path, err, sizeof err), CONFIG_ERROR);
    snprintf(expected, sizeof expected, "%s:3: line longer than 199 bytes", path);
    CHECK_EQ_STR(err, expected);
    config_free(&c);

    label_file(text, 200);
    CHECK_EQ_INT(load_text(text, &c, path, sizeof path, err, sizeof err), CONFIG_ERROR);
    snprintf(expected, sizeof expected, "%s:2: line longer than 199 bytes", path);
    CHECK_EQ_STR(err, expected);
    config_free(&c);
}

int main(void)
{
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    RUN(settings_json_escapes_every_string);
    RUN(change_json_names_each_changed_threshold);
    RUN(thresholds_come_from_the_tally);
    RUN(every_threshold_is_carried_into_the_tally);
    RUN(config_line_at_the_limit_is_read_whole);
    RUN(config_line_over_the_limit_names_file_and_line);
    char path[300];
    snprintf(path, sizeof path, "%s/proxy.ini", tmpdir);
    unlink(path);
    rmdir(tmpdir);
    return TESTLIB_FINISH();
}
