// The node program of the image-size benchmark: says ready, then a timer
// fires every 100 ms forever.
let ticks = 0;
setInterval(() => {
  ticks++;
}, 100);
process.stdout.write('ready\n');
