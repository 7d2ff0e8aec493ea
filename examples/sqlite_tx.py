#!/usr/bin/env python3
# Transactions into a sqlite database, slowly enough that a checkpoint
# lands inside one (files rolled back by content, issue 12). Each
# transaction inserts ROWS rows (tx, k); before each one the program
# checks the database against what it remembers having committed, and
# prints one line per commit:
#   tx N ok rows=R integrity=ok
# Usage: sqlite_tx.py DB MODE(delete|wal) TRANSACTIONS [SLEEP]
import sqlite3
import sys
import time

ROWS = 20

def main():
    db, mode, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
    pause = float(sys.argv[4]) if len(sys.argv) > 4 else 0.01
    con = sqlite3.connect(db, isolation_level=None, timeout=30)
    con.execute(f'PRAGMA journal_mode={mode}')
    con.execute('CREATE TABLE IF NOT EXISTS t (tx INTEGER, k INTEGER, pad TEXT, PRIMARY KEY (tx, k))')
    committed = con.execute('SELECT COUNT(DISTINCT tx) FROM t').fetchone()[0]
    print(f'start mode={con.execute("PRAGMA journal_mode").fetchone()[0]} committed={committed}', flush=True)
    while committed < total:
        rows = con.execute('SELECT COUNT(*), COALESCE(MAX(tx), 0) FROM t').fetchone()
        if rows != (committed * ROWS, committed):
            print(f'MISMATCH before tx {committed + 1}: rows={rows[0]} max={rows[1]}, remembered {committed} transactions', flush=True)
            sys.exit(3)
        tx = committed + 1
        con.execute('BEGIN')
        for k in range(ROWS):
            # a page's worth of text, so the file grows and pages are rewritten in place
            con.execute('INSERT INTO t VALUES (?, ?, ?)', (tx, k, f'{tx}-{k}-' + 'x' * 400))
            time.sleep(pause)
        con.execute('UPDATE t SET pad = pad || ? WHERE tx = ?', ('u', max(1, tx - 3)))
        con.execute('COMMIT')
        committed = tx
        integrity = con.execute('PRAGMA integrity_check').fetchone()[0]
        print(f'tx {tx} ok rows={committed * ROWS} integrity={integrity}', flush=True)
        if integrity != 'ok':
            sys.exit(4)
    con.close()
    print('done', flush=True)

main()
