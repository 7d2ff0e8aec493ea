// timer.js: a Node program driven by timers, with its state in memory.
//
// A setInterval ticks every 12 ms; each tick updates a Map, an array and a
// BigInt total from a small seeded generator and prints a digest of the
// state. Every 25th tick also schedules a setTimeout (5 ms) that changes the
// state, and every 40th a resolved promise does. The last line prints the
// sha256 of the whole state. Two runs print exactly the same lines.
import { createHash } from 'node:crypto';

const STEPS = 200;
const PACE_MS = 12;

let seed = 12345;
function rand(n) {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed % n;
}

const state = { map: new Map(), list: [], total: 0n, timeouts: 0, promises: 0 };

function digest() {
  const h = createHash('sha256');
  h.update(JSON.stringify([...state.map.entries()].sort()));
  h.update(JSON.stringify(state.list));
  h.update(`${state.total} ${state.timeouts} ${state.promises}`);
  return h.digest('hex');
}

console.log(`timer.js: start steps=${STEPS}`);
let step = 0;
const iv = setInterval(() => {
  step++;
  const key = `k${rand(30)}`;
  state.map.set(key, (state.map.get(key) ?? 0) + step);
  state.list.push(rand(1000));
  if (state.list.length > 40) state.list.shift();
  state.total += BigInt(rand(100000)) * BigInt(step);
  if (step % 25 === 0) {
    const at = step;
    setTimeout(() => {
      state.timeouts++;
      state.map.set(`t${at}`, at);
    }, 5);
  }
  if (step % 40 === 0) {
    Promise.resolve(step).then((at) => {
      state.promises++;
      state.list.push(-at);
    });
  }
  console.log(`step ${step} total=${state.total} keys=${state.map.size} digest=${digest().slice(0, 16)}`);
  if (step === STEPS) {
    clearInterval(iv);
    setTimeout(() => {
      console.log(`timer.js: done steps=${STEPS} timeouts=${state.timeouts} promises=${state.promises} digest=${digest()}`);
    }, 20);
  }
}, PACE_MS);
