"""What every benchmark script shares: the machine line and writing one
section of BENCHMARKS.md (between <!-- TITLE:start --> and <!-- TITLE:end -->,
added at the end under "## TITLE" when it is not there yet)."""
import datetime, os, pathlib, platform, re, subprocess

HEADER = "# Benchmarks\n\nEvery table below is written by `make bench`; nothing here is typed by hand.\n"


def cpu():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def rustc():
    return subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()


def nats_server():
    binary = os.environ.get("NATS_SERVER_BIN", os.path.expanduser("~/.cache/jetstation/bin/nats-server"))
    return subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()


def measured(*parts):
    """`Measured <date> on <cpu> (<n> cores), <parts...>.`"""
    what = ", ".join([f"{cpu()} ({os.cpu_count()} cores)", *parts])
    return f"Measured {datetime.date.today().isoformat()} on {what}."


def write_section(title, body):
    path = pathlib.Path("BENCHMARKS.md")
    text = path.read_text() if path.exists() else HEADER
    start, end = f"<!-- {title}:start -->", f"<!-- {title}:end -->"
    block = f"{start}\n{body}\n{end}"
    if start in text:
        text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text += f"\n## {title}\n\n{block}\n"
    path.write_text(text)
    print(f"## {title}\n{body}\n")
