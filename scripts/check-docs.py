#!/usr/bin/env python3
"""The user docs cover the whole command line, and the project stands alone.

    scripts/check-docs.py [--bin PATH/TO/pgoci]

Checks, failing with one line per problem:

- every subcommand in the man pages (`man/pgoci.1`, `man/pgoci-bundle.1`;
  kept equal to the binary by tests/it/docs.rs) has a `### \\`pgoci CMD\\``
  section in docs/cli.md, and every flag of its man page appears in that
  section; every global flag appears under "## Global flags";
- with --bin, the same against the binary's own `--help` output (the
  commands it lists, the flags of each `CMD --help`);
- every exit code of src/error.rs has a row and a section in
  docs/exit-codes.md;
- nothing in the README, docs/, scripts/, tests/, bench/, fuzz/, .ci/ or
  packaging/ points outside the clone at `../shared`.
"""

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
problems = []


def man_text(path):
    """The roff source with its escapes undone enough to read names."""
    return path.read_text().replace("\\-", "-").replace("\\fB", "").replace("\\fR", "").replace("\\fI", "")


def man_flags(path):
    """Long flags of a man page's OPTIONS section (not --help/--version)."""
    text = man_text(path)
    opts = text.split(".SH OPTIONS", 1)[1].split(".SH ", 1)[0] if ".SH OPTIONS" in text else ""
    flags = set()
    lines = opts.splitlines()
    for i, line in enumerate(lines):
        if i > 0 and lines[i - 1].strip() == ".TP":
            flags.update(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", line))
    return flags - {"--help", "--version"}


def man_subcommands(path):
    """Subcommands a man page lists (`pgoci-NAME(1)` entries), no help."""
    text = man_text(path)
    sub = text.split(".SH SUBCOMMANDS", 1)[1].split(".SH ", 1)[0] if ".SH SUBCOMMANDS" in text else ""
    return [m for m in re.findall(r"^pgoci-([a-z-]+)\(1\)", sub, re.M) if not m.endswith("help")]


def help_commands(args):
    out = subprocess.run(args + ["--help"], capture_output=True, text=True, check=True).stdout
    block = out.split("Commands:", 1)[1].split("\n\n", 1)[0] if "Commands:" in out else ""
    return [m for m in re.findall(r"^  ([a-z][a-z-]*)", block, re.M) if m != "help"]


def help_flags(args):
    out = subprocess.run(args + ["--help"], capture_output=True, text=True, check=True).stdout
    block = out.split("Options:", 1)[1] if "Options:" in out else ""
    return set(re.findall(r"^\s+(?:-\w, )?(--[a-z][a-z0-9-]*)", block, re.M)) - {"--help", "--version"}


cli = (ROOT / "docs/cli.md").read_text()


def section(heading_re):
    """The text of the first section whose heading matches, up to the next one
    of the same or a higher level."""
    m = re.search(heading_re, cli, re.M)
    if not m:
        return None
    level = len(m.group(0)) - len(m.group(0).lstrip("#"))
    rest = cli[m.end():]
    end = re.search(r"^#{1,%d} " % level, rest, re.M)
    return rest[: end.start()] if end else rest


def command_section(cmd):
    return section(r"^### `pgoci %s`" % re.escape(cmd))


def check_command(cmd, flags, source):
    text = command_section(cmd)
    if text is None:
        problems.append(f"docs/cli.md: no section `### \\`pgoci {cmd}\\`` ({source} lists the command)")
        return
    for flag in sorted(flags):
        if not re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(flag), text):
            problems.append(f"docs/cli.md: `pgoci {cmd}` does not mention {flag} ({source})")


def check_global(flags, source):
    text = section(r"^## Global flags") or ""
    for flag in sorted(flags):
        if not re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(flag), text):
            problems.append(f"docs/cli.md: Global flags do not mention {flag} ({source})")


# The man pages.
man = ROOT / "man"
top = man_subcommands(man / "pgoci.1")
if not top:
    problems.append("man/pgoci.1: no subcommands found (did the format change?)")
check_global(man_flags(man / "pgoci.1"), "man/pgoci.1")
for sub in top:
    page = man / f"pgoci-{sub}.1"
    if not page.exists():
        problems.append(f"man/pgoci-{sub}.1 missing (run `cargo run -- generate-man man`)")
        continue
    nested = man_subcommands(page)
    if nested:
        for inner in nested:
            # pgoci-bundle.1 lists pgoci-bundle-export(1) and so on.
            name = inner[len(sub) + 1:] if inner.startswith(sub + "-") else inner
            inner_page = man / f"pgoci-{sub}-{name}.1"
            if not inner_page.exists():
                problems.append(f"{inner_page.relative_to(ROOT)} missing")
                continue
            check_command(f"{sub} {name}", man_flags(inner_page), inner_page.name)
    else:
        check_command(sub, man_flags(page), page.name)

# The binary, when given.
args = sys.argv[1:]
if args:
    if args[0] != "--bin" or len(args) != 2:
        sys.exit("usage: scripts/check-docs.py [--bin PATH/TO/pgoci]")
    pgoci = [args[1]]
    commands = help_commands(pgoci)
    if not commands:
        problems.append(f"{args[1]} --help lists no commands")
    # Global flags are listed by every command's --help too: checked once.
    global_flags = help_flags(pgoci)
    check_global(global_flags, "pgoci --help")
    for cmd in commands:
        inner = help_commands(pgoci + [cmd])
        if inner:
            for sub in inner:
                flags = help_flags(pgoci + [cmd, sub]) - global_flags
                check_command(f"{cmd} {sub}", flags, f"pgoci {cmd} {sub} --help")
        else:
            check_command(cmd, help_flags(pgoci + [cmd]) - global_flags, f"pgoci {cmd} --help")

# Exit codes.
codes = sorted(set(int(c) for c in re.findall(r"Kind::\w+ => (\d+),", (ROOT / "src/error.rs").read_text())))
if not codes:
    problems.append("src/error.rs: no exit codes found (did the format change?)")
exits = (ROOT / "docs/exit-codes.md").read_text()
for code in [0] + codes:
    if not re.search(r"^\| %d \|" % code, exits, re.M):
        problems.append(f"docs/exit-codes.md: no table row for exit code {code}")
    if not re.search(r"^## %d " % code, exits, re.M):
        problems.append(f"docs/exit-codes.md: no section for exit code {code}")

# Nothing outside the clone.
where = [ROOT / "README.md", ROOT / "SECURITY.md", ROOT / "BENCHMARKS.md"]
for d in ["docs", "scripts", "tests", "bench", "fuzz", ".ci", "packaging", "man", "profiles"]:
    where += [p for p in (ROOT / d).rglob("*") if p.is_file()]
for path in where:
    if not path.exists() or path == pathlib.Path(__file__).resolve():
        continue
    try:
        text = path.read_text()
    except (UnicodeDecodeError, OSError):
        continue
    for n, line in enumerate(text.splitlines(), 1):
        if re.search(r"\.\./shared\b|/shared/(spec|tools)\b", line):
            problems.append(f"{path.relative_to(ROOT)}:{n}: points outside the clone: {line.strip()}")

for p in problems:
    print(p, file=sys.stderr)
if problems:
    sys.exit(f"check-docs: {len(problems)} problem(s)")
print("check-docs: docs/cli.md covers every command and flag; exit codes documented; nothing outside the clone", file=sys.stderr)
