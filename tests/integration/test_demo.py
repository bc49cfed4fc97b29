"""`pgtally demo` (proxy/demo/cmd_demo.c): the quick start runs end to end, names the N+1 finding,
shows the check failing the N+1 endpoint and passing the fixed one, and leaves nothing behind
(no server, no temporary directory, no demo schema on an --upstream server).
"""

import glob
import os
import re
import tempfile
import subprocess
import unittest

import pgharness as h


# The demos of this module make their directories here ($TMPDIR), so a demo run elsewhere on
# the machine at the same time cannot look like one left behind. The server (user postgres)
# must be able to pass through it.
DEMO_TMP = tempfile.mkdtemp(prefix="pgtd-", dir="/tmp")
os.chmod(DEMO_TMP, 0o711)


def demo_dirs():
    return set(glob.glob(os.path.join(DEMO_TMP, "pgtally-demo-*")))


def postmasters_in(dirs):
    """Processes whose command line names one of `dirs`."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(d in cmd for d in dirs):
            found.append((pid, cmd))
    return found


class DemoTest(unittest.TestCase):

    def run_demo(self, *args):
        before = demo_dirs()
        p = subprocess.run([os.environ.get("PGTALLY_BIN", "build/proxy/pgtally"), "demo"]
                           + list(args), capture_output=True, text=True, timeout=110,
                           env=dict(h.client_env(), TMPDIR=DEMO_TMP))
        made = demo_dirs() - before
        return p, made

    def assert_demo_output(self, out):
        # The report names the N+1 finding with its statement.
        self.assertRegex(out, r"N\+1\s+50 calls in 5 requests")
        self.assertIn("select id, name, email from customers where id = $1", out)
        # The check: the N+1 endpoint fails (with the offending SQL), the fixed one passes.
        # ... once per limit, not once per request, with the worst request
        self.assertRegex(out, r"FAIL 5 of 5 requests of /api/orders: N\+1 on customers "
                              r"\(10 calls\): n_plus_one findings 1 > max_n_plus_one 0")
        self.assertEqual(len(re.findall(r"(?m)^FAIL ", out)), 2, out)
        self.assertIn("worst: request orders-", out)
        self.assertRegex(out, r"\n  FAIL  /api/orders\s+5 requests")
        self.assertRegex(out, r"\n  ok    /api/orders/fixed\s+5 requests")
        self.assertNotIn("FAIL /api/orders/fixed", out)
        self.assertIn("result: FAIL", out)
        self.assertIn("(pgtally check exited 1", out)

    def test_throwaway_cluster(self):
        p, made = self.run_demo()
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assert_demo_output(p.stdout)
        m = re.search(r"throwaway PostgreSQL in (%s/pgtally-demo-\w+)/pg" % re.escape(DEMO_TMP),
                      p.stdout)
        self.assertIsNotNone(m, p.stdout)
        self.assertFalse(os.path.exists(m.group(1)), "temporary directory left behind")
        self.assertEqual(made, set())
        self.assertEqual(postmasters_in([m.group(1)]), [])

    def test_upstream_url(self):
        cluster = h.module_cluster()
        url = "postgres://postgres@127.0.0.1:%d/%s?sslmode=disable" % (cluster.port, h.DBNAME)
        p, made = self.run_demo("--upstream", url, "--rounds", "5")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assert_demo_output(p.stdout)
        self.assertNotIn("throwaway", p.stdout)
        self.assertEqual(made, set())
        left = cluster.admin_sql("select count(*) from pg_namespace where nspname like "
                                 "'pgtally_demo_%'", dbname=h.DBNAME)
        self.assertEqual(left.strip(), "0", "demo schema not dropped")

    def test_usage(self):
        p, _ = self.run_demo("--rounds", "0")
        self.assertEqual(p.returncode, 2)
        p, _ = self.run_demo("--upstream", "localhost:5432")
        self.assertEqual(p.returncode, 2)
        p, _ = self.run_demo("--help")
        self.assertEqual(p.returncode, 0)
        self.assertIn("--upstream URL", p.stdout)


def tearDownModule():
    h.stop_module_cluster()


if __name__ == "__main__":
    unittest.main(verbosity=2)
