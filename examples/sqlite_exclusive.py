# sqlite in exclusive locking mode across a checkpoint
# (test/files-locks.test.ts): the database's POSIX locks must be held again
# after a restart, so that an outside writer is refused ("database is
# locked") and its row can never be lost.
#
#   sqlite_exclusive.py DIR   writes 10 rows to DIR/db.sqlite (exclusive
#                             locking: sqlite keeps its locks after the
#                             first write), then counts steps without
#                             writing; when DIR/release exists it writes
#                             one more row and checks the database.
import os
import sqlite3
import sys
import time


def say(line):
    print(line, flush=True)


def main():
    d = sys.argv[1]
    con = sqlite3.connect(os.path.join(d, 'db.sqlite'), isolation_level=None)
    con.execute('PRAGMA locking_mode=EXCLUSIVE')
    con.execute('CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)')
    for i in range(10):
        con.execute('INSERT INTO t (v) VALUES (?)', (f'row {i}',))
    say('sqlite: 10 rows, exclusive')
    step = 0
    while True:
        time.sleep(0.03)
        step += 1
        say(f'step {step}')
        if os.path.exists(os.path.join(d, 'release')):
            break
    con.execute("INSERT INTO t (v) VALUES ('last')")
    rows = [r[0] for r in con.execute('SELECT v FROM t ORDER BY id')]
    check = con.execute('PRAGMA integrity_check').fetchone()[0]
    if rows != [f'row {i}' for i in range(10)] + ['last'] or check != 'ok':
        say(f'FAIL: rows {rows}, integrity {check}')
    say('sqlite: done')


main()
