"""Cluster scaling: poll throughput of one, two and three nodes on one PostgreSQL database.

Each step starts the nodes on a fresh schema in a database created for the run and creates the
same number of endless poll tasks through them in turn. Over one window it then measures the
status polls at the mock, the database's commits and updated rows, and the CPU time of
PostgreSQL, the nodes and the mock. Ctrl-C or an error stops every process started here and
drops the database.
"""

import os
import re
import secrets
import subprocess
import sys
import tempfile
import time

from aqbench import (ROOT, Mock, Service, create_tasks, header, log, poll_task, rss_mib,
                     task_total, wait_until)

# Status polls that report a benchmark job in flight, so tasks stay in flight for the whole run.
ENDLESS = 1_000_000
CORES = os.cpu_count() or 1
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid, children=False):
    """User and system CPU seconds of a process from /proc/<pid>/stat; with `children`, also
    those of its exited children that it waited for."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # The command name is in brackets and may contain spaces, so split after it.
            fields = stat.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    # fields[0] is the state (field 3); utime, stime, cutime, cstime are fields 14-17.
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICKS


def parent_pid(pid):
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])


def machine_ticks():
    """(busy, total) jiffies per core from /proc/stat, keyed by cpu0, cpu1, ..."""
    result = {}
    with open("/proc/stat") as stat:
        for line in stat:
            name, *values = line.split()
            if re.fullmatch(r"cpu\d+", name):
                numbers = [int(value) for value in values]
                idle = numbers[3] + numbers[4]
                result[name] = (sum(numbers[:8]) - idle, sum(numbers[:8]))
    return result


class Postgres:
    """The server scripts/postgres.sh starts, with a database of its own for this run.

    The run gets its own database, not only a schema, because pg_stat_database counts per
    database and the test suite may be using the database postgres.sh creates at the same time.
    """

    def __init__(self):
        server_url = subprocess.run([os.path.join(ROOT, "scripts", "postgres.sh")], check=True,
                                    stdout=subprocess.PIPE, text=True).stdout.strip()
        self.server_url = server_url
        self.version = self.sql("SHOW server_version", server_url)
        # The parent of this session's backend is the postmaster.
        self.postmaster = parent_pid(int(self.sql("SELECT pg_backend_pid()", server_url)))
        self.database = f"aq_cluster_{os.getpid()}"
        self.sql(f"CREATE DATABASE {self.database}", server_url)
        self.url = server_url.rsplit("/", 1)[0] + "/" + self.database

    def drop(self):
        self.sql(f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)", self.server_url)

    def sql(self, statement, url=None):
        # client_min_messages hides the notices of DROP SCHEMA ... CASCADE.
        environment = dict(os.environ, PGOPTIONS="-c client_min_messages=warning")
        return subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-Atc", statement,
                               url or self.url], check=True, stdout=subprocess.PIPE, text=True,
                              env=environment).stdout.strip()

    def schema_url(self, schema):
        separator = "&" if "?" in self.url else "?"
        return f"{self.url}{separator}options=-csearch_path%3D{schema}"

    def server_cpu(self):
        """CPU seconds of the postmaster and every process it started, also those that exited
        and were reaped (their time is in the postmaster's children counters)."""
        total = cpu_seconds(self.postmaster, children=True)
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != self.postmaster:
                try:
                    if parent_pid(int(entry)) == self.postmaster:
                        total += cpu_seconds(int(entry))
                except (FileNotFoundError, ProcessLookupError):
                    pass
        return total

    def backend_cpu(self):
        """CPU seconds of each backend connected to this run's database, by pid."""
        pids = self.sql("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                        "AND pid <> pg_backend_pid()").split()
        return {pid: cpu_seconds(int(pid)) for pid in pids}

    def counters(self, schema):
        """Returns the commits and updated rows of the whole database, and the updated plus
        inserted rows of the tables in `schema` as a cross-check."""
        row = self.sql(
            "SELECT xact_commit, tup_updated FROM pg_stat_database "
            "WHERE datname = current_database()")
        commits, updated = (int(value) for value in row.split("|"))
        schema_rows = self.sql(
            "SELECT coalesce(sum(n_tup_upd + n_tup_ins), 0) FROM pg_stat_user_tables "
            f"WHERE schemaname = '{schema}'")
        return commits, updated, int(schema_rows)

    def active_statements(self):
        """Returns the statements running in the database now, with what each waits for."""
        rows = self.sql(
            "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 70), "
            "coalesce(wait_event_type || ':' || wait_event, 'CPU') FROM pg_stat_activity "
            "WHERE datname = current_database() AND state = 'active' "
            "AND pid <> pg_backend_pid()")
        return [tuple(row.split("|")) for row in rows.splitlines() if row]


class Step:
    """One measurement: `count` nodes on a fresh schema (or one SQLite node)."""

    def __init__(self, count, postgres, vault_key, log_directory, backend="postgresql"):
        self.count = count
        self.postgres = postgres
        self.backend = backend
        self.schema = None
        self.nodes = []
        if backend == "postgresql":
            self.schema = f"aq_cluster_{os.getpid()}_{count}"
            postgres.sql(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE; "
                         f"CREATE SCHEMA {self.schema}")
        for k in range(1, count + 1):
            arguments = ["--vault-key", vault_key, "--node-id", f"node{k}"]
            if self.schema:
                arguments += ["--database", postgres.schema_url(self.schema)]
            log_path = os.path.join(log_directory, f"{backend}-{count}-node{k}.log")
            self.nodes.append(Service(arguments=arguments, log_path=log_path,
                                      prefix=["taskset", "-c", str(k % CORES)]))

    def start(self):
        for node in self.nodes:
            node.start()

    def stop(self):
        for node in self.nodes:
            node.stop()
            node.remove_data()
        if self.schema:
            self.postgres.sql(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")

    def create(self, mock, total):
        """Creates `total` tasks, an equal share through each node in turn."""
        task = poll_task(mock, 1, ENDLESS, webhook=False)
        for index, node in enumerate(self.nodes):
            share = total // self.count + (1 if index < total % self.count else 0)
            create_tasks(node, task, share, seconds_limit=120)
        return task_total(self.nodes[0])


def measure(step, mock, seconds, top_path=None):
    """Measures polls, database load and CPU over one window; returns a dict of figures."""
    postgres = step.postgres if step.schema else None
    pids = [node.process.pid for node in step.nodes]
    before = {
        "polls": mock.stats()["statusPolls"],
        "database": postgres.counters(step.schema) if postgres else None,
        "server": postgres.server_cpu() if postgres else 0.0,
        "backends": postgres.backend_cpu() if postgres else {},
        "nodes": [cpu_seconds(pid) for pid in pids],
        "mock": cpu_seconds(mock.process.pid),
        "machine": machine_ticks(),
    }

    began = time.monotonic()
    peaks = [0.0] * len(pids)
    statements = {}
    while time.monotonic() - began < seconds:
        time.sleep(1)
        peaks = [max(peak, rss_mib(pid)) for peak, pid in zip(peaks, pids)]
        # One psql call a second, which costs a little CPU of its own.
        for statement in postgres.active_statements() if postgres else []:
            statements[statement] = statements.get(statement, 0) + 1
        if top_path and time.monotonic() - began >= seconds / 2:
            # top's first frame shows CPU use since each process started, so keep the second.
            frames = subprocess.run(["top", "-b", "-n", "2", "-d", "1", "-w", "120"],
                                    stdout=subprocess.PIPE, text=True).stdout
            with open(top_path, "w") as output:
                output.write("top - " + frames.split("\ntop - ")[-1])
            top_path = None

    polls = mock.stats()["statusPolls"]
    elapsed = time.monotonic() - began
    figures = {
        "polls": (polls - before["polls"]) / elapsed,
        "rss": peaks,
        "nodes_cpu": [(cpu_seconds(pid) - start) / elapsed * 100
                      for pid, start in zip(pids, before["nodes"])],
        "mock_cpu": (cpu_seconds(mock.process.pid) - before["mock"]) / elapsed * 100,
        "statements": sorted(statements.items(), key=lambda item: -item[1]),
    }
    with open("/proc/loadavg") as load:
        figures["load"] = " ".join(load.read().split()[:3])
    machine = machine_ticks()
    figures["cores"] = {
        name: (machine[name][0] - busy) / max(machine[name][1] - total, 1) * 100
        for name, (busy, total) in before["machine"].items()}

    if postgres:
        after = postgres.counters(step.schema)
        commits, updated, schema_rows = (
            (end - start) / elapsed for end, start in zip(after, before["database"]))
        # A backend that started within the window counts from zero; one that ended in it is
        # missing, but the nodes keep their connections open.
        backends = sum(cpu - before["backends"].get(pid, 0.0)
                       for pid, cpu in postgres.backend_cpu().items())
        figures.update(commits=commits, updated=updated, schema_rows=schema_rows,
                       backend_cpu=backends / elapsed * 100,
                       server_cpu=(postgres.server_cpu() - before["server"]) / elapsed * 100)
    return figures


def wait_for_polling(step, count, timeout=120):
    """Waits until every task was submitted and is polling; returns the seconds it took."""
    began = time.monotonic()
    if not wait_until(lambda: task_total(step.nodes[0], "polling") >= count, timeout, step=1):
        log(f"  only {task_total(step.nodes[0], 'polling'):,} of {count:,} tasks were polling "
            f"after {timeout} s; measuring anyway")
    return time.monotonic() - began


def node_problems(step):
    """Warning and error lines of each node's log, split at its "stopping" line:
    (log path, lines while running, lines while stopping) per node."""
    pattern = re.compile(r"^\S+ (warn|error) |level=error|ERROR")
    problems = []
    for node in step.nodes:
        running, stopping = [], []
        current = running
        with open(node.log_path, errors="replace") as file:
            for line in file:
                if line.split(" ", 1)[-1].strip() == "info stopping":
                    current = stopping
                elif pattern.search(line):
                    current.append(line.rstrip())
        problems.append((node.log_path, running, stopping))
    return problems


def run_step(count, postgres, mock, tasks, seconds, vault_key, log_directory,
             backend="postgresql"):
    step = Step(count, postgres, vault_key, log_directory, backend)
    try:
        step.start()
        began = time.monotonic()
        created = step.create(mock, tasks)
        created_in = time.monotonic() - began
        settled_in = wait_for_polling(step, created)
        # A few intervals more, so the window does not start inside the submit backlog.
        time.sleep(3)
        top_path = os.path.join(log_directory, f"{backend}-{count}-top.txt")
        figures = measure(step, mock, seconds, top_path)
        figures.update(created=created, created_in=created_in, settled_in=settled_in,
                       top=top_path)
    finally:
        step.stop()
    figures["problems"] = node_problems(step)
    return figures


def report_step(name, figures):
    cores = ", ".join(f"{core} {busy:.0f} %" for core, busy in sorted(figures["cores"].items()))
    nodes = ", ".join(f"{cpu:.0f} %" for cpu in figures["nodes_cpu"])
    log(f"{name}: {figures['created']:,} tasks created in {figures['created_in']:.0f} s, all "
        f"polling after {figures['settled_in']:.0f} s more; {figures['polls']:,.0f} polls/s")
    log(f"  CPU over the window, in % of one core: nodes {nodes}; mock "
        f"{figures['mock_cpu']:.0f} %; PostgreSQL backends of this database "
        f"{figures.get('backend_cpu', 0):.0f} %, whole server {figures.get('server_cpu', 0):.0f} "
        f"%; busy per core: {cores}; load average {figures['load']}")
    if "schema_rows" in figures:
        log(f"  rows updated or inserted in the schema: {figures['schema_rows']:,.0f}/s "
            f"(pg_stat_database: {figures['updated']:,.0f} updated/s)")
    if figures["statements"]:
        log("  statements seen running in PostgreSQL, sampled once a second (samples, wait):")
        for (statement, wait), samples in figures["statements"][:6]:
            log(f"    {samples:4} {wait:24} {statement}")
    log(f"  top, second frame, in the middle of the window: {figures['top']}")
    for path, running, stopping in figures["problems"]:
        for when, lines in (("while running", running), ("while stopping", stopping)):
            if lines:
                log(f"  {len(lines)} warning or error lines {when} in {path}, the first:")
                for line in lines[:3]:
                    log(f"    {line}")


def main():
    header("Cluster scaling", "bench/run.sh cluster")
    tasks = int(os.environ.get("AQ_CLUSTER_TASKS", "3000"))
    # PostgreSQL 15 backends flush their counters to pg_stat_database at most once a second and
    # may defer it up to 60 s under lock contention (PGSTAT_MIN_INTERVAL and PGSTAT_MAX_INTERVAL
    # in pgstat.c), so a short window misreads commits.
    seconds = int(os.environ.get("AQ_CLUSTER_SECONDS", "30"))
    sizes = [int(size) for size in os.environ.get("AQ_CLUSTER_NODES", "1,2,3").split(",")]
    with_sqlite = os.environ.get("AQ_CLUSTER_SQLITE", "1") != "0"

    log_directory = tempfile.mkdtemp(prefix="aq-cluster-logs-")
    # Nodes that share a database must share the key that encrypts vault tokens.
    vault_key = secrets.token_hex(32)
    postgres = Postgres()
    try:
        mock = Mock()
    except BaseException:
        postgres.drop()
        raise
    results = {}
    try:
        log(f"PostgreSQL {postgres.version} on {postgres.url.split('@')[-1]} "
            f"(postmaster pid {postgres.postmaster}) and the mock on {mock.url} run unpinned "
            f"on all {CORES} cores; node k is pinned to core k % {CORES}")
        log(f"offered load: {tasks:,} tasks polling every 1 s ({tasks:,} polls/s), created "
            f"through the nodes in turn; window {seconds} s; node logs in {log_directory}")
        for count in sizes:
            mock.reset()
            results[count] = run_step(count, postgres, mock, tasks, seconds, vault_key,
                                      log_directory)
            report_step(f"{count} node(s) on PostgreSQL", results[count])
        if with_sqlite:
            mock.reset()
            results["sqlite"] = run_step(1, postgres, mock, tasks, seconds, vault_key,
                                         log_directory, backend="sqlite")
            report_step("1 node on SQLite", results["sqlite"])
    finally:
        mock.stop()
        postgres.drop()
    print_table(results)


def print_table(results):
    base = results.get(1, {}).get("polls")
    log("")
    log("| nodes | polls/s | ratio to one node | commits/s | rows updated/s | commits per poll "
        "| PostgreSQL CPU, % of a core | node RSS, MiB |")
    log("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for key, figures in results.items():
        rss = " / ".join(f"{peak:.0f}" for peak in figures["rss"])
        if key == "sqlite":
            log(f"| 1 (SQLite) | {figures['polls']:,.0f} | - | - | - | - | - | {rss} |")
            continue
        ratio = f"{figures['polls'] / base:.2f}" if base else "-"
        per_poll = figures["commits"] / figures["polls"] if figures["polls"] else 0
        log(f"| {key} | {figures['polls']:,.0f} | {ratio} | {figures['commits']:,.0f} | "
            f"{figures['updated']:,.0f} | {per_poll:.2f} | {figures['backend_cpu']:.0f} | {rss} |")


if __name__ == "__main__":
    main()
