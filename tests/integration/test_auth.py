"""Authentication passes through the proxy untouched: trust, md5, SCRAM-SHA-256, wrong password.

The cluster's pg_hba.conf (pgharness) gives each role its method; psql and psycopg 3 log in
through the proxy and the server does the checking.
"""

import subprocess

import psycopg

import pgharness as h


def setUpModule():
    h.module_cluster()


def tearDownModule():
    h.stop_module_cluster()


class AuthTest(h.ProxyTestCase):

    def login_and_query(self, user, password, marker):
        env = h.client_env(PGPASSWORD=password) if password else h.client_env()
        r = self.psql("-c", "select current_user, '%s'" % marker,
                      dsn=self.proxy.dsn(user=user), env=env)
        self.assertEqual(r.stdout.strip(), "%s|%s" % (user, marker))
        events = self.stop_proxy()
        mine = self.events_with_sql(events, marker)
        self.assertEqual(len(mine), 1, events)
        self.assertEqual(mine[0]["rows"], 1)
        self.assertEqual(mine[0]["command"], "SELECT")

    def test_trust_login(self):
        self.login_and_query(h.TRUST_USER, None, "auth_trust")

    def test_md5_login(self):
        # The role's stored secret really is an md5 hash, so md5 auth is what runs.
        stored = self.cluster.admin_sql(
            "select left(rolpassword, 3) from pg_authid where rolname = '%s'" % h.MD5_USER)
        self.assertEqual(stored.strip(), "md5")
        self.login_and_query(h.MD5_USER, h.MD5_PASSWORD, "auth_md5")

    def test_scram_sha_256_login(self):
        self.login_and_query(h.SCRAM_USER, h.SCRAM_PASSWORD, "auth_scram")

    def test_scram_sha_256_login_with_psycopg(self):
        with psycopg.connect(self.proxy.dsn(user=h.SCRAM_USER, password=h.SCRAM_PASSWORD),
                             autocommit=True) as conn:
            row = conn.execute("select current_user, 'auth_scram_psycopg'").fetchone()
        self.assertEqual(row, (h.SCRAM_USER, "auth_scram_psycopg"))
        events = self.stop_proxy()
        self.assertEqual(len(self.events_with_sql(events, "auth_scram_psycopg")), 1, events)

    def test_md5_wrong_password_gets_server_auth_error(self):
        r = self.psql("-c", "select 1", dsn=self.proxy.dsn(user=h.MD5_USER), check=False,
                      env=h.client_env(PGPASSWORD="wrong"))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('password authentication failed for user "%s"' % h.MD5_USER, r.stderr)
        self.assertTrue(self.proxy.alive())
        self.assertEqual(self.stop_proxy(), [])

    def test_scram_wrong_password_gets_server_auth_error(self):
        with self.assertRaises(psycopg.OperationalError) as cm:
            psycopg.connect(self.proxy.dsn(user=h.SCRAM_USER, password="wrong"))
        self.assertIn('password authentication failed for user "%s"' % h.SCRAM_USER,
                      str(cm.exception))
        self.assertTrue(self.proxy.alive())
        self.assertEqual(self.stop_proxy(), [])

    def test_missing_password_reported_by_client(self):
        # The server asks for a password and libpq has none: the proxy must relay the
        # AuthenticationMD5Password request, not answer it or hang.
        r = self.psql("-w", "-c", "select 1", dsn=self.proxy.dsn(user=h.MD5_USER),
                      check=False, timeout=20)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("no password supplied", r.stderr)
        self.assertTrue(self.proxy.alive())


if __name__ == "__main__":
    h.main()
