"""scripts/programs.txt (the programs the suites call) agrees with the apt
lists that install them, and names the packages that really provide them."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
loader = importlib.machinery.SourceFileLoader("check_programs", str(ROOT / "scripts" / "check-programs"))
spec = importlib.util.spec_from_loader("check_programs", loader)
check_programs = importlib.util.module_from_spec(spec)
loader.exec_module(check_programs)


def test_every_listed_package_is_in_its_apt_list():
    for program, package, lst in check_programs.entries():
        assert package in check_programs.apt_list(lst) or package == "coreutils", (program, package, lst)


def test_installed_programs_come_from_the_packages_named():
    """dpkg says which package owns each program that is installed: the list must name that one."""
    candidates = {}
    for program, package, _ in check_programs.entries():
        path = program if program.startswith("/") else shutil.which(program, path=check_programs.SEARCH)
        if not path:
            continue  # a build/vm program not installed yet: check-programs reports it where it is needed
        candidates[program] = (package, path_forms(path))
    owners_of = owners([form for _, forms in candidates.values() for form in forms])
    depends_of = depends({package for package, _ in candidates.values()})
    for program, (package, forms) in candidates.items():
        owners_found = set().union(*(owners_of.get(form, set()) for form in forms))
        # the package itself, or one it depends on (apache2 -> apache2-bin)
        assert owners_found & ({package} | depends_of.get(package, set())), \
            f"{program} belongs to {owners_found or 'no package'}, the list says {package}"


def path_forms(path: str) -> set[str]:
    """The names dpkg may know a program by (merged /usr: /bin/x is /usr/bin/x; symlinks)."""
    real = str(Path(path).resolve())
    return {path, real, real.replace("/usr/", "/", 1), path.replace("/usr/", "/", 1)}


def owners(paths: list[str]) -> dict[str, set[str]]:
    """path -> the packages dpkg says own it, from one `dpkg -S` for all (one per path took 20 s)."""
    out = subprocess.run(["dpkg", "-S", *sorted(set(paths))], capture_output=True, text=True).stdout
    found: dict[str, set[str]] = {}
    for line in out.splitlines():
        packages, _, path = line.partition(": ")
        if path.strip() in paths:
            found.setdefault(path.strip(), set()).update(p.strip().split(":")[0] for p in packages.split(","))
    return found


def depends(packages: set[str]) -> dict[str, set[str]]:
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Package}\t${Depends}\n", *sorted(packages)],
                         capture_output=True, text=True).stdout
    found: dict[str, set[str]] = {}
    for line in out.splitlines():
        package, _, deps = line.partition("\t")
        found[package] = {alt.strip().split()[0] for dep in deps.split(",") for alt in dep.split("|") if alt.strip()}
    return found


def test_a_missing_program_is_named_with_its_package(tmp_path, monkeypatch):
    monkeypatch.setattr(check_programs, "entries", lambda: [("hasupd-no-such-tool", "hasupd-tools", "main")])
    monkeypatch.setattr(check_programs, "apt_list", lambda name: {"hasupd-tools"})
    assert check_programs.problems(["main"]) == [
        "missing program hasupd-no-such-tool: install the Debian package hasupd-tools "
        "(`make deps` / scripts/deps.sh installs the main list)"]


def test_the_vm_image_has_every_dependency_of_the_deb():
    """`make test-vm` installs the .deb offline on the image's packages: each Depends of
    debian/control must be in tests/vm/image-packages.txt (a new Depends once failed there)."""
    control = (ROOT / "debian" / "control").read_text()
    depends = control.split("\nDepends:", 1)[1].split("\nRecommends:", 1)[0]
    names = {alt.strip().split()[0] for dep in depends.split(",") for alt in dep.split("|")
             if alt.strip() and not alt.strip().startswith("${")}
    image = {ln.split("#")[0].strip() for ln in (ROOT / "tests" / "vm" / "image-packages.txt").read_text().splitlines()}
    assert names, "no Depends found in debian/control"
    assert not names - image - {"adduser"}, f"not in the VM image: {sorted(names - image - {'adduser'})}"


# A list literal (not a subscript) that starts with a string: how the suites spell a command line.
ARGV_HEAD = re.compile(r"""(?<![\w)\]])\[\s*["']([A-Za-z0-9_.+/-]+)["']\s*[,\]]""")
INTERPRETERS = {"python3", "python"}  # the one running the tests (sys.executable in most calls)
# words that start a list but are never run: a command line that is only redacted
# (test_redact), values (test_planner_properties "idle", test_alerts "node"), pip packages
# of the matrix venvs (test-matrix "pytest")
NOT_CALLED = {"ssh", "idle", "node", "pytest"}
# the project's own programs: not external ones, and on the search path only while
# the packaging test has the .deb installed (test_install_run_remove_purge, on
# another worker: this test failed when it read the path at that moment)
OURS = re.compile(r"(^|/)(hasupd|hasupctl)[\w-]*$")


def called_programs() -> dict[str, set[str]]:
    """Every word that starts a list literal in tests/, lab/, bench/ and scripts/ and names
    a program installed here (a path to an executable, or a name on the search path), with the
    files that use it.  Words that are no program (dict keys, node names) resolve to nothing."""
    found: dict[str, set[str]] = {}
    files = [p for d in ("tests", "lab", "bench", "scripts") for p in (ROOT / d).rglob("*.py")]
    for path in files:
        for word in ARGV_HEAD.findall(path.read_text(errors="replace")):
            if word in INTERPRETERS or word in NOT_CALLED or word.startswith("-") or OURS.search(word):
                continue
            if word.startswith("/") and not (os.path.isfile(word) and os.access(word, os.X_OK)):
                continue
            if not word.startswith("/") and (
                    "/" in word or not shutil.which(word, path=check_programs.SEARCH)):
                continue
            found.setdefault(word, set()).add(str(path.relative_to(ROOT)))
    for path, word in shell_command_words():
        if word in SHELL_BUILTINS or word in INTERPRETERS or word in NOT_CALLED or OURS.search(word) \
                or not shutil.which(word, path=check_programs.SEARCH):
            continue
        found.setdefault(word, set()).add(str(path.relative_to(ROOT)))
    return found


# the shell's own: /bin/kill (procps) exists, but `kill` in a script is bash's
SHELL_BUILTINS = {"kill", "echo", "printf", "test", "[", "cd", "exec", "read", "set", "trap", "wait", "exit",
                  "return", "local", "export", "source", "true", "false", "pwd", "type", "command", "shift"}
SHELL_SPLIT = re.compile(r"&&|\|\||;|\||\$\(|`|\bthen\b|\bdo\b|\belse\b")
SHELL_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_.+-]*$")


def command_heads(line: str) -> list[str]:
    """The first word of each command of one shell line: `git ls-files | tar ...` gives
    git and tar (through exec, env, nice, ...; assignments like PATH=... left out)."""
    if line.lstrip().startswith("#"):
        return []
    heads = []
    for part in SHELL_SPLIT.split(line):
        words = [w for w in part.split() if "=" not in w or w.startswith(("-", "'", '"'))]
        if words and words[0] in ("exec", "sudo", "nice", "timeout", "env", "!") and len(words) > 1:
            words = words[1:]
        if words and SHELL_WORD.match(words[0]):
            heads.append(words[0])
    return heads


def shell_command_words() -> list[tuple[Path, str]]:
    """The first word of every command in the Makefile's recipes and in the shell
    scripts (scripts/, tests/).  What runs inside a chroot or a VM (after `chroot DIR`)
    is the guest's, not this machine's."""
    lines = [(ROOT / "Makefile", line) for _, recipe in make_targets().values() for line in recipe]
    lines += [(p, line) for d in ("scripts", "tests") for p in (ROOT / d).rglob("*")
              if p.is_file() and (p.suffix == ".sh" or (p.suffix == "" and p.read_bytes()[:11] == b"#!/bin/bash"))
              for line in p.read_text(errors="replace").splitlines()]
    return [(path, word) for path, line in lines for word in command_heads(line)]


def owner_package(program: str) -> str:
    path = program if program.startswith("/") else shutil.which(program, path=check_programs.SEARCH)
    forms = path_forms(path)
    found = set().union(*owners(list(forms)).values()) if forms else set()
    return sorted(found)[0] if found else ""


# awk is mawk on every Debian (Priority required, in debootstrap's minbase); gawk
# may take the name over on a machine that has it, as here.
ALWAYS_THERE = {"awk"}


def essential(package: str) -> bool:
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Essential}", package], capture_output=True, text=True)
    return out.stdout.strip() == "yes"


def test_every_program_the_suites_call_is_listed():
    """A program called by a test, the lab, a benchmark or a script is in scripts/programs.txt
    (so check-programs names it, and its package, before the tests start), unless an Essential
    package (there on every Debian) provides it.  Found by reading the sources: a new
    ["prometheus", ...] without a line in programs.txt fails here."""
    listed = {program for program, _, _ in check_programs.entries()}
    calls = called_programs()
    assert {"ip", "apache2", "curl"} <= set(calls), sorted(calls)  # the scan finds the usual ones
    missing = []
    for program, users in sorted(calls.items()):
        if program in listed or os.path.basename(program) in listed:
            continue
        package = owner_package(program)
        if (package and essential(package)) or program in ALWAYS_THERE:
            continue
        missing.append(f"{program} (package {package or '?'}; called in {', '.join(sorted(users))})")
    assert not missing, "not in scripts/programs.txt:\n" + "\n".join(missing)


MAKE_RULE = re.compile(r"^([^\s:=#][^:=]*?)\s*:(?!=)\s*(.*)$")
DEPS_LIST = re.compile(r"scripts/(?:deps\.sh|check-programs)\s+(?:scripts/apt-packages(?:-(\w+))?\.txt|(\w+))")


def make_targets() -> dict[str, tuple[list[str], list[str]]]:
    """{target: (prerequisites, recipe lines)} of the Makefile, names as written."""
    targets: dict[str, tuple[list[str], list[str]]] = {}
    current = None
    for line in (ROOT / "Makefile").read_text().splitlines():
        if line.startswith("\t") and current:
            targets[current][1].append(line.lstrip("\t@-"))
            continue
        m = MAKE_RULE.match(line)
        current = None
        if m and not line.startswith("."):
            current = m.group(1).strip()
            targets[current] = (m.group(2).split(), [])
    return targets


def lists_installed_by(target: str, targets: dict, seen: frozenset = frozenset()) -> set[str]:
    """The apt lists a target installs before its recipe goes on, its prerequisites' included."""
    prereqs, recipe = targets.get(target, ([], []))
    out = set()
    for line in recipe:
        for m in DEPS_LIST.finditer(line):
            out.add(m.group(1) or m.group(2) or "main")
    for p in prereqs:
        if p in targets and p not in seen:
            out |= lists_installed_by(p, targets, seen | {target})
    return out


def test_every_program_a_make_target_calls_is_installed_by_that_target():
    """A fresh Debian 12 has none of the lists installed: a make target's recipe may only
    call a program whose list (programs.txt) the target or its prerequisites install first.
    (`make packages` called git from the bench list: `git: command not found` on a fresh
    machine, and every packaging test failed.)"""
    listed = {program: lst for program, _, lst in check_programs.entries()}
    targets = make_targets()
    assert {"test", "packages", "test-vm", "bench"} <= set(targets)
    wrong = []
    for target, (_, recipe) in targets.items():
        installed = lists_installed_by(target, targets)
        for line in recipe:
            for word in command_heads(line):
                if word in listed and listed[word] not in installed:
                    wrong.append(f"make {target} calls {word}, listed for '{listed[word]}', "
                                 f"but installs only {sorted(installed)}")
    assert not wrong, "\n".join(wrong)


def test_the_build_list_installs_what_dpkg_buildpackage_checks():
    """`make packages` runs dpkg-buildpackage, which refuses to build unless every
    Build-Depends of debian/control and build-essential (implied, Debian policy 4.2)
    are installed.  A fresh Debian 12 failed with 'Unmet build dependencies:
    build-essential:native' while the list lacked it."""
    control = (ROOT / "debian" / "control").read_text()
    field = re.search(r"^Build-Depends:(.*?)^\S", control, re.S | re.M).group(1)
    needed = {"build-essential"}
    for item in field.split(","):
        name = re.split(r"[\s(\[:|]", item.strip(), maxsplit=1)[0]
        if name:
            # debhelper-compat (= 13) is a virtual package that debhelper provides
            needed.add("debhelper" if name == "debhelper-compat" else name)
    assert needed - check_programs.apt_list("build") == set()
