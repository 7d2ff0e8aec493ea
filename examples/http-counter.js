// A node HTTP server that counts its requests in memory
// (test/server-node.test.ts). It listens on the port given (0: one the
// kernel picks), prints it, and answers every request with the count.
import * as http from 'node:http';

let count = 0;
const server = http.createServer((req, res) => {
  count += 1;
  res.setHeader('content-type', 'text/plain');
  res.end(`count ${count}\n`);
});
server.listen(Number(process.argv[2] || 0), process.argv[3] || '127.0.0.1', () => {
  console.log(`listening ${server.address().port}`);
});
// a timer keeps the event loop's other descriptors busy as real servers do
setInterval(() => {}, 1000);
