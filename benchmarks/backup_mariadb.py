#!/usr/bin/env python
# -*- coding: utf-8 -*-
"""MariaDB half of the backup benchmark.

On a throw-away MariaDB server filled by ``sysbench oltp_read_write prepare`` (8 tables,
``--table-size`` rows each; 500000 rows per table is about 1 GB), this measures:

- logical: db_backup method=logical (jobs 2, zstd) against community.mysql.mysql_db
  state=dump (plain .sql and .sql.gz). Both sides run the same way, as bare module processes
  (arguments in a JSON file, ``python <module> args.json`` as Ansible's local execution does):
  no ansible CLI start-up on either side, so the times compare the modules' own work;
- physical: db_backup method=physical (none and zstd) against a bare ``mariadb-backup --backup
  --parallel=2`` run with the same credentials file layout (the same tool settings as db_backup
  jobs=2), and against the same bare run followed by ``sync -f`` of its copy: the bare tool returns
  with its copy in the page cache, db_backup only once every file is on disk (fsync), so the second
  baseline shows what the checksums and the read-back check themselves cost. Every timed run starts
  after a ``sync`` (no run pays for the previous one's write-back) and the order of the runs is
  shuffled in each round (on this VM every second run of a strict alternation was slow);
- the restore drill: restore_physical of the physical backup into a new data directory (RTO).

It prints time, size, MB/s (database size / time) and the ratios. When
plugins/modules/db_backup.py is missing, db_backup is replaced by the engine called directly
(said so in the output).

    .venv/bin/python benchmarks/backup_mariadb.py [--table-size 500000] [--tables 8] [--only logical|physical]
        [--repeat N]

The community side needs ``ansible`` (community.mysql) and PyMySQL in benchmarks/.work/venv
(created on first use: ``python3 -m venv benchmarks/.work/venv && benchmarks/.work/venv/bin/pip
install ansible PyMySQL``); it runs as
``benchmarks/.work/venv/bin/python -m ansible_collections.community.mysql.plugins.modules.mysql_db args.json``.
The load average is printed before and after: on a busy machine the ratios mean little.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, 'tests', 'integration'))
sys.path.insert(0, REPO)

import tests.conftest  # noqa: E402,F401  (makes ansible_collections.dbops.admin importable)
import modrun  # noqa: E402
from servers import MariadbServer, free_port, make_workdir  # noqa: E402
from backup import du, ensure_venv, run_bare_module, timed  # noqa: E402  (benchmarks/backup.py, the PostgreSQL half)

from ansible_collections.dbops.admin.plugins.module_utils._connection import connect_params  # noqa: E402
from ansible_collections.dbops.admin.plugins.module_utils._engines import mysql_backup as mb  # noqa: E402

WORK = os.path.join(HERE, '.work')
VENV = os.path.join(WORK, 'venv')


def have_module(name):
    return os.path.isfile(os.path.join(REPO, 'plugins', 'modules', name + '.py'))


def sysbench_prepare(server, tables, size):
    server.sql('CREATE DATABASE IF NOT EXISTS sbtest')
    argv = ['sysbench', 'oltp_read_write', '--db-driver=mysql', '--mysql-host=127.0.0.1',
            '--mysql-port=%d' % server.port, '--mysql-user=root', '--mysql-password=' + server.password,
            '--mysql-db=sbtest', '--tables=%d' % tables, '--table-size=%d' % size, '--threads=2', 'prepare']
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    server.sql('ANALYZE TABLE ' + ','.join('sbtest.sbtest%d' % i for i in range(1, tables + 1)))
    row = server.sql("SELECT SUM(DATA_LENGTH + INDEX_LENGTH), SUM(TABLE_ROWS) FROM information_schema.TABLES "
                     "WHERE TABLE_SCHEMA = 'sbtest'")[0]
    return int(row[0]), int(row[1])


def db_backup(server, repo, **kw):
    """db_backup as a module when it exists, else the engine directly (same work minus the catalog)."""
    if have_module('db_backup'):
        args = dict(server.conn, repo=repo, **kw)
        result = modrun.run_module('db_backup', args, timeout=3600)
        if result.get('failed'):
            raise RuntimeError('db_backup failed: %s %s' % (result.get('msg'), result.get('_stderr', '')[-2000:]))
        return result
    engine = connect_params(server.conn)
    try:
        dest = os.path.join(repo, 'direct-%s-%d' % (kw.get('method'), int(time.time() * 1000)))
        os.makedirs(dest)
        result = engine.backup_create({'method': kw.get('method'), 'type': kw.get('type', 'full'),
                                       'databases': kw.get('databases'), 'compression': kw.get('compression'),
                                       'compression_level': None, 'jobs': kw.get('jobs', 1), 'dest': dest,
                                       'base': None, 'repo': repo, 'log_dir': os.path.join(repo, 'logs'),
                                       'bin_dir': None, 'os_user': None})
        result['path'] = dest
        return result
    finally:
        engine.close()


def community_venv():
    """benchmarks/.work/venv with ansible (community.mysql) and PyMySQL; created when missing."""
    return ensure_venv('PyMySQL')


def community_dump(server, target):
    """community.mysql.mysql_db state=dump, as a bare module process like db_backup (run_bare_module)."""
    run_bare_module(community_venv(), 'ansible_collections.community.mysql.plugins.modules.mysql_db',
                    {'state': 'dump', 'name': 'sbtest', 'target': target, 'login_host': '127.0.0.1',
                     'login_port': server.port, 'login_user': 'root', 'login_password': server.password})
    return target


def bare_mariadb_backup(server, target, durable=False):
    with mb.client_option_file({'user': 'root', 'password': server.password, 'host': '127.0.0.1',
                                'port': server.port, 'protocol': 'TCP'},
                               groups=('client', 'mariadb-backup')) as cnf:
        subprocess.run(['mariadb-backup', '--defaults-file=' + cnf, '--backup', '--target-dir=' + target,
                        '--datadir=' + server.data_dir, '--parallel=2'], check=True, capture_output=True)
    if durable:
        subprocess.run(['sync', '-f', target], check=True)


def breakdown(result, wall):
    """Where a db_backup module run spent its time, from its manifest (the engine's start/stop
    times have microseconds; the catalog's finished_at only seconds, so it is not used)."""
    if not result or 'backup' not in result:
        return
    with open(os.path.join(result['backup']['path'], 'manifest.json')) as f:
        man = json.load(f)

    def ts(text):
        return datetime.datetime.fromisoformat(text.replace('Z', '+00:00'))

    engine = (ts(man['stop_time']) - ts(man['start_time'])).total_seconds()
    details = man.get('details') or {}
    print('    (engine %.2f s; module start, probes, verification of the rest, catalog and publication %.2f s%s)'
          % (engine, wall - engine, '; table data: %s%s' % (details['table_data'], ' (%s)' % details['tsv_unavailable']
                                                            if details.get('tsv_unavailable') else '')
             if details.get('table_data') else ''))


class CpuMeter:
    """CPU seconds of this benchmark's finished child processes (the module and every program it
    ran) and of the server, around one run: robust where wall times of a shared box are not."""

    def __init__(self, server):
        self.pid = server.proc.pid if getattr(server, 'proc', None) else None

    def server(self):
        try:
            with open('/proc/%d/stat' % self.pid) as f:
                fields = f.read().rsplit(')', 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')
        except (OSError, TypeError, ValueError, IndexError):
            return 0.0

    def __enter__(self):
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.start = (usage.ru_utime + usage.ru_stime, self.server())
        return self

    def __exit__(self, *exc):
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.client = usage.ru_utime + usage.ru_stime - self.start[0]
        self.server_cpu = self.server() - self.start[1]
        return False

    def text(self):
        return 'cpu: client %.2f s, server %.2f s' % (self.client, self.server_cpu)


def load_average():
    return ', '.join('%.2f' % v for v in os.getloadavg())


def median(values):
    values = sorted(values)
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def save(rows, db_mb, opts, mode):
    os.makedirs(WORK, exist_ok=True)
    name = 'backup_mariadb%s.json' % ('.' + opts.only if opts.only else '')
    with open(os.path.join(WORK, name), 'w') as f:
        json.dump({'database_mb': round(db_mb, 1), 'tables': opts.tables, 'table_size': opts.table_size,
                   'db_backup_mode': mode, 'results': rows}, f, indent=2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--tables', type=int, default=8)
    parser.add_argument('--table-size', type=int, default=int(os.environ.get('BENCH_TABLE_SIZE', 500000)))
    parser.add_argument('--keep', action='store_true', help='keep the work directory')
    parser.add_argument('--only', choices=['logical', 'physical'], help='run one half only')
    parser.add_argument('--repeat', type=int, default=1, help='alternate db_backup and the community dump (logical) '
                        'or the bare mariadb-backup (physical) this many times and print best and median ratios '
                        '(the sandbox is noisy)')
    opts = parser.parse_args()
    # a SIGTERM still stops the throw-away server and removes the work directory
    signal.signal(signal.SIGTERM, lambda *_args: sys.exit(143))

    base = make_workdir('dbops-bench-my-', 'mysql')
    server = MariadbServer(settings={'innodb_buffer_pool_size': '512M', 'innodb_log_file_size': '256M'})
    rows = []
    try:
        server.init().start()
        t_prep, (db_bytes, db_rows) = timed(lambda: sysbench_prepare(server, opts.tables, opts.table_size))
        db_mb = db_bytes / 1e6
        print('# MariaDB %s, sysbench %d tables x %d rows: %.0f MB (data+index), ~%d rows, prepared in %.0f s'
              % (server.sql('SELECT VERSION()')[0][0], opts.tables, opts.table_size, db_mb, db_rows, t_prep))
        mode = 'module' if have_module('db_backup') else 'engine (db_backup module not present)'
        print('# db_backup run as: %s; community.mysql.mysql_db run as a bare module process (%s -m '
              'ansible_collections.community.mysql.plugins.modules.mysql_db args.json); no ansible CLI start-up '
              'on either side' % (mode, os.path.relpath(community_venv(), REPO)))
        print('# %d CPUs, load average before: %s' % (os.cpu_count(), load_average()), flush=True)

        def record(name, seconds, path):
            size = du(path) if path else 0
            rows.append({'name': name, 'seconds': round(seconds, 2), 'size_mb': round(size / 1e6, 1),
                         'mb_per_s': round(db_mb / seconds, 1) if seconds else None})
            print('%-52s %8.2f s %10.1f MB %8.1f MB/s' % (name, seconds, size / 1e6, db_mb / seconds), flush=True)

        # ---- logical (with --repeat, db_backup and the community dump alternate; medians are printed)
        if opts.only != 'physical':
            extra = {'verify': True} if have_module('db_backup') else {}
            ours, theirs = [], []
            for run in range(opts.repeat):
                repo = os.path.join(base, 'repo-logical-%d' % run)
                os.makedirs(repo)
                with CpuMeter(server) as cpu:
                    t, res = timed(lambda repo=repo: db_backup(server, repo, method='logical', databases=['sbtest'],
                                                               compression='zstd', jobs=2, **extra))
                record('db_backup logical zstd jobs=2%s' % (' (verify)' if extra else ''), t, repo)
                breakdown(res, t)
                print('    (%s)' % cpu.text())
                ours.append((t, du(repo), cpu.client + cpu.server_cpu))
                for suffix in ('sql',) if opts.only or run else ('sql', 'sql.gz'):
                    target = os.path.join(base, 'community-%d.%s' % (run, suffix))
                    with CpuMeter(server) as cpu:
                        tc, _done = timed(lambda target=target: community_dump(server, target))
                    record('community.mysql.mysql_db state=dump (.%s)' % suffix, tc, target)
                    print('    (%s)' % cpu.text())
                    print('    -> db_backup logical is %.2fx faster, %.2fx smaller'
                          % (tc / t, du(target) / max(1, du(repo))))
                    if suffix == 'sql':
                        theirs.append((tc, du(target), cpu.client + cpu.server_cpu))
                        os.unlink(target)
                shutil.rmtree(repo, ignore_errors=True)
            if theirs:
                mine, other = median([r[0] for r in ours]), median([r[0] for r in theirs])
                print('# runs (s): db_backup %s; community .sql %s'
                      % (' '.join('%.2f' % r[0] for r in ours), ' '.join('%.2f' % r[0] for r in theirs)))
                print('%-52s %8.2f s vs %.2f s: db_backup logical is %.2fx faster' % (
                    'best db_backup / community (.sql)', min(r[0] for r in ours), min(r[0] for r in theirs),
                    min(r[0] for r in theirs) / min(r[0] for r in ours)))
                print('%-52s %8.2f s vs %.2f s: db_backup logical is %.2fx faster (median of %d), %.2fx smaller'
                      % ('median db_backup / community (.sql)', mine, other, other / mine, len(theirs),
                         median([r[1] for r in theirs]) / max(1, median([r[1] for r in ours]))))
                print('%-52s %8.2f s vs %.2f s (client + server, median)'
                      % ('cpu db_backup / community (.sql)', median([r[2] for r in ours]),
                         median([r[2] for r in theirs])))
            print('# load average after the logical runs: %s' % load_average(), flush=True)

        # ---- physical
        if opts.only == 'logical':
            save(rows, db_mb, opts, mode)
            return
        # with --repeat, the bare runs and db_backup (none, zstd) take turns in a shuffled order each
        # round; best and median ratios
        times = {'bare': [], 'bare+sync': [], 'none': [], 'zstd': []}
        shuffle = random.Random(20261127)
        res = None
        for _run in range(max(1, opts.repeat)):
            order = list(times)
            shuffle.shuffle(order)
            for kind in order:
                subprocess.run(['sync'], check=True)  # no run pays for the write-back of the one before
                if kind.startswith('bare'):
                    bare = os.path.join(base, 'bare-backup')
                    shutil.rmtree(bare, ignore_errors=True)
                    subprocess.run(['sync'], check=True)
                    t_bare, _ = timed(lambda bare=bare, kind=kind: bare_mariadb_backup(server, bare, kind == 'bare+sync'))
                    record('bare mariadb-backup --backup%s' % (' + sync' if kind == 'bare+sync' else ''), t_bare, bare)
                    times[kind].append(t_bare)
                    continue
                prepo = os.path.join(base, 'repo-physical-' + kind)
                shutil.rmtree(prepo, ignore_errors=True)
                os.makedirs(prepo)
                subprocess.run(['sync'], check=True)
                kw = dict(method='physical', compression=kind, jobs=2)
                if have_module('db_backup'):
                    kw['verify'] = True
                t, out = timed(lambda kw=kw, prepo=prepo: db_backup(server, prepo, **kw))
                record('db_backup physical %s%s' % (kind, ' (verify)' if kw.get('verify') else ''), t, prepo)
                breakdown(out, t)
                times[kind].append(t)
                if kind == 'zstd':
                    res = out
        runs = ['%s %s' % (k, ' '.join('%.2f' % x for x in v)) for k, v in times.items()]
        print('# physical runs (s): %s' % '; '.join(runs))
        for comp in ('none', 'zstd'):
            for base_kind in ('bare', 'bare+sync'):
                print('%-52s best %.2fx, median %.2fx the %s time' % (
                    'db_backup physical %s / %s' % (comp, base_kind), min(times[comp]) / min(times[base_kind]),
                    median(times[comp]) / median(times[base_kind]),
                    'bare mariadb-backup' if base_kind == 'bare' else 'bare mariadb-backup + sync'))

        # ---- restore drill: prepare + move-back + start of the last physical backup (engine)
        if have_module('db_backup'):
            path = res['backup']['path']
            with open(os.path.join(path, 'manifest.json')) as f:
                man = json.load(f)
            path = os.path.join(path, 'data')
        else:
            man, path = dict(res, type='full', method='physical', id='bench'), res['path']
        data_dir = os.path.join(base, 'drill', 'data')
        os.makedirs(os.path.dirname(data_dir))
        os.chmod(os.path.dirname(data_dir), 0o755)
        t, out = timed(lambda: mb.restore_physical({'chain': [{'manifest': man, 'path': path}],
                                                    'data_dir': data_dir, 'port': free_port(), 'os_user': 'mysql',
                                                    'force': False}))
        mb.stop_instance(data_dir)
        print('%-52s %8.2f s  (RTO: unpack + prepare + move-back + start)' % ('restore_physical', t))
        rows.append({'name': 'restore_physical (RTO)', 'seconds': round(t, 2)})
        if have_module('db_restore'):
            drill_dir = os.path.join(base, 'drill2')
            t, out = timed(lambda: modrun.run_module('db_restore', dict(
                server.conn, repo=os.path.join(base, 'repo-physical-zstd'), state='verified',
                data_dir=os.path.join(drill_dir, 'data'), port=free_port()), timeout=3600))
            print('%-52s %8.2f s  rto_seconds=%s failed=%s %s' % ('db_restore state=verified (drill)', t,
                  out.get('rto_seconds'), out.get('failed'), (out.get('msg') or '')[:300]))
            rows.append({'name': 'db_restore state=verified', 'seconds': round(t, 2),
                         'rto_seconds': out.get('rto_seconds')})
        save(rows, db_mb, opts, mode)
    finally:
        server.destroy()
        if not opts.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == '__main__':
    main()
