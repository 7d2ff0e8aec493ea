# A TCP connection with urgent data (MSG_OOB) the program has not read yet:
# a checkpoint then fails, naming the connection (ckrun cannot set the
# urgent mark again), and the program runs on. Once a file named "go"
# appears in the working directory the program reads the urgent byte
# ("urgent read !"), then the stream around it, and counts steps to "done".
import os, socket, time

srv = socket.socket()
srv.bind(('127.0.0.1', 0))
srv.listen(1)
cli = socket.create_connection(srv.getsockname())
conn, _ = srv.accept()
cli.send(b'abc')
cli.send(b'!', socket.MSG_OOB)
cli.send(b'def')
time.sleep(0.2)
print('urgent sent', flush=True)
while not os.path.exists('go'):
    time.sleep(0.05)
print('urgent read', conn.recv(1, socket.MSG_OOB).decode(), flush=True)
data = b''
while len(data) < 6:
    data += conn.recv(16)
print('stream', data.decode(), flush=True)
for i in range(1, 41):
    cli.send(b'%d\n' % i)
    got = conn.recv(16)
    if got != b'%d\n' % i:
        print('FAIL step', i, got, flush=True)
        raise SystemExit(1)
    print('step', i, flush=True)
    time.sleep(0.05)
print('done', flush=True)
