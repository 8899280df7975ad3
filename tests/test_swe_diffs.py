"""Diffs read as untrusted text: per-file sections, quoted names, refused paths, dropped sections."""

import pytest
from seasoned.envs.swe import diffs

MIXED = '''From 1234 Mon Sep 17 00:00:00 2001
Subject: [PATCH] a fix

diff --git a/my file.py b/my file.py
index 1111111..2222222 100644
--- a/my file.py
+++ b/my file.py
@@ -1,3 +1,3 @@
 keep
--- a removed line that looks like a header
+++ an added line that looks like a header
diff --git "a/t\\303\\251st.py" "b/t\\303\\251st.py"
new file mode 100644
--- /dev/null
+++ "b/t\\303\\251st.py"
@@ -0,0 +1 @@
+x
--- a/plain.txt
+++ b/plain.txt
@@ -1 +1 @@
-a
+b
'''


def test_sections_read_names_and_skip_hunk_bodies():
    assert diffs.touched(MIXED) == ["my file.py", "t\u00e9st.py", "plain.txt"]
    kept = diffs.without(MIXED, {"t\u00e9st.py"})
    assert "+x" not in kept and "+b" in kept and "looks like a header" in kept and kept.startswith("From 1234")
    assert diffs.without(MIXED, {"my file.py", "t\u00e9st.py", "plain.txt"}) == ""
    diffs.check(MIXED)  # nothing forbidden


@pytest.mark.parametrize("diff", [
    "diff --git a/.git/config b/.git/config\n--- a/.git/config\n+++ b/.git/config\n@@ -1 +1 @@\n-a\n+b\n",
    "--- a/.gitattributes\n+++ b/.gitattributes\n@@ -0,0 +1 @@\n+* filter=x\n",
    "--- a/src/.gitattributes\n+++ b/src/.gitattributes\n@@ -0,0 +1 @@\n+* filter=x\n",
    "--- a/.GIT/hooks/pre-commit\n+++ b/.GIT/hooks/pre-commit\n@@ -0,0 +1 @@\n+x\n",
    'diff --git "a/\\056git/config" "b/\\056git/config"\n',
    "--- a/../../etc/passwd\n+++ b/../../etc/passwd\n@@ -1 +1 @@\n-a\n+b\n",
    "--- /etc/passwd\n+++ /etc/passwd\n@@ -1 +1 @@\n-a\n+b\n",
    "Index: .git/config\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n",
    "diff --git a/x b/x\nrename from x\nrename to .git/hooks/post-checkout\n",
    "--- a/x\n+++ b/sub/.git/config\n@@ -1 +1 @@\n-a\n+b\n",
], ids=["git-config", "gitattributes", "nested-gitattributes", "upper-case", "quoted-octal", "dotdot", "absolute",
        "index-line", "rename", "nested-git"])
def test_forbidden_paths_are_refused(diff):
    with pytest.raises(diffs.UnsafeDiff):
        diffs.check(diff)


def test_oversized_diff_is_an_error():
    with pytest.raises(diffs.EnvError, match="too large"):
        diffs.sections("x" * (diffs.MAX_DIFF_CHARS + 1))


def test_gitignore_and_ordinary_dotfiles_are_allowed():
    diffs.check("--- a/.gitignore\n+++ b/.gitignore\n@@ -1 +1 @@\n-a\n+b\n")
    diffs.check("--- a/.github/workflows/ci.yml\n+++ b/.github/workflows/ci.yml\n@@ -1 +1 @@\n-a\n+b\n")
